// A crash mid-write leaves the newest segment with a partial, zeroed or garbled last record, or a
// newest segment whose header was cut short. The log must open every time, hold exactly the whole
// records before the tear, and keep the cut bytes in a `.broken` file.
import fs from 'node:fs'
import path from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import t from 'tap'
import { encodeSegmentHeader, segmentFileName, SEGMENT_HEADER_BYTES } from '../../src/wal/format.js'
import {
  bodyOf, brokenFiles, collect, copyDir, entries, entry, noSyncIO, openLog, rawRecords, segmentFiles, storedForm,
  tempDir, writeLog, type TeardownTarget
} from '../helpers/wal.js'
import { below, seeded } from '../helpers/fault-ledger.js'

const segmentBytes = 600
// The last record, the one torn, is the largest, so that its tears cover header, vector and metadata.
const written = [...entries(11), { op: 'insert' as const, id: 'last', vector: new Array(64).fill(0.5), metadata: { note: 'the torn one' } }]

/** A closed log of two or more segments, and where its last record lies. */
async function template (t: TeardownTarget): Promise<{ dir: string, file: string, offset: number, size: number }> {
  const dir = tempDir(t)
  await writeLog({ dir, segmentBytes }, written)
  const last = rawRecords(dir).at(-1)
  if (last === undefined || segmentFiles(dir).length < 2) throw new Error('the template needs records in two segments')
  return { dir, file: last.file, offset: last.offset, size: last.size }
}

/**
 * Opens a damaged copy and checks that it holds exactly the records before the last one. Without
 * flushes: this is about what the opener decides, and hundreds of cases would otherwise wait on disk.
 */
async function expectTornTailCut (t: TeardownTarget, dir: string, file: string, offset: number, cutBytes: Buffer): Promise<string[]> {
  const problems: string[] = []
  const log = await openLog(t, { dir, segmentBytes, io: noSyncIO })
  if (log.lastSeq !== written.length - 1) problems.push(`lastSeq ${log.lastSeq}`)
  const records = await collect(log.read({ after: 0 }).records)
  if (!isDeepStrictEqual(records.map(bodyOf), written.slice(0, -1).map(storedForm))) problems.push('records differ')
  await log.close()
  if (fs.statSync(path.join(dir, file)).size !== offset) problems.push('segment not truncated at the tear')
  const broken = brokenFiles(dir)
  // Bytes that are all zero hold nothing worth keeping.
  if (cutBytes.every(b => b === 0)) {
    if (broken.length !== 0) problems.push(`unexpected ${broken.join(', ')}`)
  } else if (broken.length !== 1 || broken[0] !== `${file}.at-${offset}.broken`) {
    problems.push(`broken files ${broken.join(', ')}`)
  } else if (!fs.readFileSync(path.join(dir, broken[0])).equals(cutBytes)) {
    problems.push('the broken file does not hold the cut bytes')
  }
  return problems
}

t.test('the last record cut at every byte offset', async t => {
  const { dir, file, offset, size } = await template(t)
  const original = fs.readFileSync(path.join(dir, file))
  const failures: string[] = []
  for (let cut = offset; cut < offset + size; cut++) {
    const copy = copyDir(t, dir)
    fs.truncateSync(path.join(copy, file), cut)
    const problems = await expectTornTailCut(t, copy, file, offset, original.subarray(offset, cut))
    if (problems.length > 0) failures.push(`cut at ${cut}: ${problems.join('; ')}`)
    fs.rmSync(copy, { recursive: true, force: true })
  }
  t.same(failures, [], `all ${size} cuts of the ${size}-byte last record open with the ${written.length - 1} whole records before it`)
})

t.test('the last record overwritten with zeros or garbage', async t => {
  const { dir, file, offset, size } = await template(t)
  const fills: Array<[string, Buffer]> = [['zeros', Buffer.alloc(size)]]
  const random = seeded(2024)
  for (let i = 0; i < 20; i++) fills.push([`garbage ${i}`, Buffer.from(Array.from({ length: size }, () => below(random, 256)))])
  // The header intact and the payload zeroed: the length is plausible, the checksum is not.
  const headerKept = fs.readFileSync(path.join(dir, file)).subarray(offset, offset + size)
  fills.push(['zeroed payload', Buffer.concat([headerKept.subarray(0, 28), Buffer.alloc(size - 28)])])
  const failures: string[] = []
  for (const [label, fill] of fills) {
    const copy = copyDir(t, dir)
    const fd = fs.openSync(path.join(copy, file), 'r+')
    fs.writeSync(fd, fill, 0, size, offset)
    fs.closeSync(fd)
    const problems = await expectTornTailCut(t, copy, file, offset, fill)
    if (problems.length > 0) failures.push(`${label}: ${problems.join('; ')}`)
  }
  t.same(failures, [], `${fills.length} overwrites of the last record all open with the whole records before it`)
})

t.test('a torn tail is cut once, and the log goes on from it', async t => {
  const { dir, file, offset, size } = await template(t)
  fs.truncateSync(path.join(dir, file), offset + Math.floor(size / 2))
  const log = await openLog(t, { dir, segmentBytes })
  t.equal(await log.append(entry(99)), written.length, 'the next append takes the seq of the record that was cut')
  await log.close()
  const reopened = await openLog(t, { dir, segmentBytes })
  const records = await collect(reopened.read({ after: 0 }).records)
  t.same(records.map(bodyOf), [...written.slice(0, -1), entry(99)].map(storedForm))
  t.equal(brokenFiles(dir).length, 1, 'reopening cut nothing more')
})

t.test('a newest segment whose own header was cut short', async t => {
  const { dir } = await template(t)
  const next = written.length + 1
  const header = encodeSegmentHeader(next)
  const failures: string[] = []
  const cases: Array<[string, Buffer]> = []
  for (let length = 0; length < SEGMENT_HEADER_BYTES; length++) cases.push([`${length} header bytes`, header.subarray(0, length)])
  cases.push(['a zeroed header', Buffer.alloc(SEGMENT_HEADER_BYTES)])
  for (const [label, bytes] of cases) {
    const copy = copyDir(t, dir)
    const name = segmentFileName(next)
    fs.writeFileSync(path.join(copy, name), bytes)
    const log = await openLog(t, { dir: copy, segmentBytes, io: noSyncIO })
    const problems: string[] = []
    if (log.lastSeq !== written.length) problems.push(`lastSeq ${log.lastSeq}`)
    const seq = await log.append(entry(99))
    if (seq !== next) problems.push(`next append got seq ${seq}`)
    await log.close()
    if (!fs.readFileSync(path.join(copy, `${name}.broken`)).equals(bytes)) problems.push('the torn segment was not kept aside')
    if (rawRecords(copy).map(r => r.seq).join() !== Array.from({ length: next }, (_, i) => i + 1).join()) problems.push('the records on disk are not seqs 1 to the new one')
    if (problems.length > 0) failures.push(`${label}: ${problems.join('; ')}`)
  }
  t.same(failures, [], `${cases.length} torn segment headers all set aside, the log opening with every record`)

  const whole = copyDir(t, dir)
  fs.writeFileSync(path.join(whole, segmentFileName(next)), header)
  const log = await openLog(t, { dir: whole, segmentBytes })
  t.equal(log.status().segments.at(-1)?.name, segmentFileName(next), 'a whole header with no record is an empty active segment')
  t.same(brokenFiles(whole), [])
})

t.test('a zero tail (a preallocated segment) is cut without a copy', async t => {
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1, max: 40 }),
    fc.oneof(fc.integer({ min: 1, max: 2 * 1024 * 1024 }), fc.constant(64 * 1024 * 1024)),
    async (count, zeros) => {
      const dir = tempDir(t)
      await writeLog({ dir }, entries(count))
      const [name] = segmentFiles(dir)
      const file = path.join(dir, name)
      const whole = fs.statSync(file).size
      // As fallocate leaves it: the file longer, its new bytes reading as zeros.
      fs.truncateSync(file, whole + zeros)
      const log = await openLog(t, { dir })
      const lastSeq = log.lastSeq
      await log.close()
      const ok = lastSeq === count && fs.statSync(file).size === whole && brokenFiles(dir).length === 0
      fs.rmSync(dir, { recursive: true, force: true })
      return ok
    }
  ), { numRuns: 8 })
  t.pass('every zero tail was cut, no .broken copy written, every record kept')
})
