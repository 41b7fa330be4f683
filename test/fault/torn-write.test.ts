// A power cut that writes back a later page of the last, unsynced write and not an earlier one
// (test/helpers/power-cut-io.ts): whole records then follow a hole of zeros. The log writes some
// acknowledged groups (each one write, one fdatasync), then one multi-page group whose fdatasync the
// power cut stops. For every 512-byte sector and every 4 KiB page of that last write, on a copy:
//   - the page zeroed, later ones written back: the log opens by itself and holds exactly the
//     acknowledged records and the unsynced ones before the first the hole damaged, and the cut
//     bytes are kept in a `.broken` file unless they are all zeros;
//   - the same sector or page zeroed inside the acknowledged writes instead (media damage): opening
//     refuses with WAL_CORRUPT naming the segment and the first damaged record.
// Then the real service starts by itself on such a log, and `vecwal verify` names the cut serve makes;
// and a whole record whose write index does not fit the writes before it is corruption.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import type { EntryInput } from '../../src/entry.js'
import { CorruptLogError } from '../../src/errors.js'
import { MAX_PAYLOAD_BYTES, readU64, RECORD_HEADER_BYTES, writeRecord, type RecordTypeCode } from '../../src/wal/format.js'
import { WriteAheadLog } from '../../src/wal/log.js'
import { startChild } from '../helpers/child-service.js'
import { seeded } from '../helpers/fault-ledger.js'
import { ndjson } from '../helpers/http.js'
import { PowerCutIO, writeBackHole } from '../helpers/power-cut-io.js'
import { CLI } from '../helpers/project.js'
import { brokenFiles, ioError, rawRecords, RecordingIO, segmentFiles, tempDir, type RawRecord, type TeardownTarget } from '../helpers/wal.js'

const SECTOR_BYTES = 512

const PAGE_BYTES = 4096
const RUNS = 4

const text = fc.string({ minLength: 1, maxLength: 16 })
const largeEntry: fc.Arbitrary<EntryInput> = fc.record({
  op: fc.constantFrom('insert' as const, 'update' as const),
  id: text,
  vector: fc.float32Array({ minLength: 128, maxLength: 600, noNaN: true, noDefaultInfinity: true }),
  metadata: fc.dictionary(text.filter(key => key !== '__proto__'), fc.string({ maxLength: 24 }), { maxKeys: 4, noNullPrototype: true })
})
const smallEntry: fc.Arbitrary<EntryInput> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), id: text }),
  fc.record({ op: fc.constant('insert' as const), id: text, vector: fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 8 }) })
)
interface Scenario {
  /** Groups appended together, each one write acknowledged after its fdatasync. */
  acknowledged: EntryInput[][]
  /** The last group: one multi-page write whose fdatasync the power cut stops. */
  unsynced: EntryInput[]
}
const scenarioArbitrary: fc.Arbitrary<Scenario> = fc.record({
  acknowledged: fc.array(fc.array(fc.oneof(largeEntry, smallEntry), { minLength: 1, maxLength: 6 }), { minLength: 2, maxLength: 8 }),
  // At least sixteen records of more than 512 bytes: the last write spans two pages or more.
  unsynced: fc.array(fc.tuple(fc.option(smallEntry, { nil: undefined }), largeEntry), { minLength: 16, maxLength: 20 })
    .map(pairs => pairs.flatMap(([small, large]) => small === undefined ? [large] : [small, large]))
})

interface TornLog {
  dir: string
  segment: string
  /** The last acknowledged seq. */
  acknowledged: number
  /** Bytes of the segment the last completed fdatasync made durable. */
  synced: number
  bytes: Buffer
  frames: RawRecord[]
  /** The NDJSON lines of every record, the unsynced write whole: what the cases expect a prefix of. */
  lines: string[]
}

/** Writes the scenario; the power is cut at the fdatasync of the unsynced group's write. */
async function tornLog (t: TeardownTarget, scenario: Scenario): Promise<TornLog> {
  const dir = tempDir(t)
  const io = new PowerCutIO(seeded(1))
  const log = await WriteAheadLog.open({ dir, io })
  for (const group of scenario.acknowledged) await Promise.all(group.map(async e => await log.append(e)))
  const acknowledged = log.lastSeq
  const segment = segmentFiles(dir)[0]
  // Mutating call 1 is the group's write, which goes through; call 2, its fdatasync, cuts the power.
  io.arm(2)
  const outcomes = await Promise.allSettled(scenario.unsynced.map(async e => await log.append(e)))
  await log.close()
  const refused = outcomes.filter(o => o.status === 'rejected' && (o.reason as { code?: string }).code === 'WAL_FAILED').length
  if (refused !== scenario.unsynced.length || io.cutAt !== 'fdatasync #2') throw new Error(`the cut missed the unsynced write: ${String(io.cutAt)}, ${refused} refused`)
  const file = path.join(dir, segment)
  const synced = io.syncedBytes(file)
  const bytes = fs.readFileSync(file)
  const frames = rawRecords(dir)
  if (frames.length !== acknowledged + scenario.unsynced.length || frames[acknowledged].offset !== synced) throw new Error('the unsynced write is not whole after the synced bytes')
  if (bytes.length - synced < 2 * PAGE_BYTES) throw new Error(`the unsynced write is ${bytes.length - synced} bytes, not several pages`)
  const whole = copyOf(dir)
  try {
    return { dir, segment, acknowledged, synced, bytes, frames, lines: (await openAndRead(whole)).lines }
  } finally {
    fs.rmSync(whole, { recursive: true, force: true })
  }
}

function copyOf (dir: string): string {
  const to = fs.mkdtempSync(path.join(os.tmpdir(), 'vecwal-torn-write-'))
  for (const name of fs.readdirSync(dir)) if (name !== 'LOCK') fs.copyFileSync(path.join(dir, name), path.join(to, name))
  return to
}

/** Opens the log on real files, reads every record as NDJSON lines, appends one, closes. */
async function openAndRead (dir: string): Promise<{ lines: string[], lastSeq: number, nextSeq: number }> {
  const log = await WriteAheadLog.open({ dir })
  try {
    const chunks: Buffer[] = []
    for await (const chunk of log.read({ after: 0, includeCheckpoints: true }).ndjson) chunks.push(chunk)
    const lastSeq = log.lastSeq
    const nextSeq = await log.append({ op: 'delete', id: 'after the reopen' })
    return { lines: Buffer.concat(chunks).toString('utf8').split('\n').filter(line => line !== ''), lastSeq, nextSeq }
  } finally {
    await log.close()
  }
}

/** Aligned ranges of `unit` bytes overlapping [from, to), each clipped to it. */
function ranges (unit: number, from: number, to: number): Array<{ from: number, to: number }> {
  const found: Array<{ from: number, to: number }> = []
  for (let start = Math.floor(from / unit) * unit; start < to; start += unit) found.push({ from: Math.max(start, from), to: Math.min(start + unit, to) })
  return found
}

/**
 * Whether the hole left the mark of a torn write the log may cut (docs/format.md): walking by the
 * lengths the headers give, from the damaged frame to the first whole one after it, a header all
 * zeros comes before any header that is neither zero nor whole (length 0 or past the maximum, or
 * an unknown type). With no whole frame after the damage it is an ordinary torn tail, cut in any case.
 */
function tornMarked (frames: readonly RawRecord[], damaged: RawRecord, before: Buffer, after: Buffer): boolean {
  const unchanged = (f: RawRecord): boolean => after.subarray(f.offset, f.offset + f.size).equals(before.subarray(f.offset, f.offset + f.size))
  const whole = frames.find(f => f.offset > damaged.offset && unchanged(f))
  if (whole === undefined) return true
  for (let at = damaged.offset; at + RECORD_HEADER_BYTES <= whole.offset;) {
    const header = after.subarray(at, at + RECORD_HEADER_BYTES)
    if (header.every(b => b === 0)) return true
    const length = header.readUInt32LE(4)
    if (length === 0 || length > MAX_PAYLOAD_BYTES || header[24] < 1 || header[24] > 5) return false
    at += RECORD_HEADER_BYTES + length
  }
  return false
}

/** The first frame whose bytes differ between the two images, if any. */
function firstChanged (frames: readonly RawRecord[], before: Buffer, after: Buffer): RawRecord | undefined {
  return frames.find(f => !before.subarray(f.offset, f.offset + f.size).equals(after.subarray(f.offset, f.offset + f.size)))
}

t.test('a hole of zeros at any sector or page of the unsynced last write is cut at open, and nothing acknowledged is lost', async t => {
  const problems: string[] = []
  let cases = 0
  let cutWithWholeRecordsAfter = 0
  let refusedInsidePayload = 0
  await fc.assert(fc.asyncProperty(scenarioArbitrary, async scenario => {
    const torn = await tornLog(t, scenario)
    const { synced, bytes, acknowledged, frames, segment } = torn
    // Every hole leaves a later page of the write written back.
    const holes = [...ranges(SECTOR_BYTES, synced, bytes.length), ...ranges(PAGE_BYTES, synced, bytes.length)].filter(h => h.to < bytes.length)
    for (const hole of holes) {
      cases++
      const dir = copyOf(torn.dir)
      try {
        const file = path.join(dir, segment)
        writeBackHole(file, synced, hole.from, hole.to)
        const holed = fs.readFileSync(file)
        const damaged = firstChanged(frames, bytes, holed)
        const kept = damaged === undefined ? frames.length : damaged.seq - 1
        const where = `hole [${hole.from}, ${hole.to}) of a write at [${synced}, ${bytes.length})`
        if (damaged !== undefined && !tornMarked(frames, damaged, bytes, holed)) {
          // Zeros only inside one record's payload, whole records after it: media damage to an
          // acknowledged record looks the same, so the log refuses, as for any damage.
          refusedInsidePayload++
          const outcome = await openAndRead(dir).then(() => undefined, (err: unknown) => err)
          if (!(outcome instanceof CorruptLogError) || outcome.file !== segment || outcome.offset !== damaged.offset) problems.push(`${where}: opening gave ${String(outcome)}, not WAL_CORRUPT at ${segment} byte ${damaged.offset}`)
          if (!fs.readFileSync(file).equals(holed) || brokenFiles(dir).length > 0) problems.push(`${where}: the refused open changed the directory`)
          continue
        }
        let opened: Awaited<ReturnType<typeof openAndRead>>
        try {
          opened = await openAndRead(dir)
        } catch (err) {
          problems.push(`${where}: the log did not open: ${String(err)}`)
          continue
        }
        if (kept < acknowledged) problems.push(`${where}: the hole damaged acknowledged record ${kept + 1}`)
        if (opened.lastSeq !== kept || opened.nextSeq !== kept + 1) problems.push(`${where}: last seq ${opened.lastSeq}, next ${opened.nextSeq}; expected ${kept}`)
        if (JSON.stringify(opened.lines) !== JSON.stringify(torn.lines.slice(0, kept))) problems.push(`${where}: the records read back are not the ${kept} written before the hole`)
        if (damaged === undefined) continue
        if (frames.some(f => f.offset > damaged.offset && f.offset >= hole.to && holed.subarray(f.offset, f.offset + f.size).equals(bytes.subarray(f.offset, f.offset + f.size)))) cutWithWholeRecordsAfter++
        const tail = holed.subarray(damaged.offset)
        const copies = brokenFiles(dir)
        const expected = tail.every(b => b === 0) ? [] : [`${segment}.at-${damaged.offset}.broken`]
        if (JSON.stringify(copies) !== JSON.stringify(expected)) problems.push(`${where}: .broken files ${JSON.stringify(copies)}, expected ${JSON.stringify(expected)}`)
        else if (expected.length > 0 && !fs.readFileSync(path.join(dir, expected[0])).equals(tail)) problems.push(`${where}: the .broken copy is not the cut bytes`)
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }
  }), { numRuns: RUNS })
  t.same(problems.slice(0, 10), [], `no problem in ${cases} holes (${problems.length} problems)`)
  t.ok(cutWithWholeRecordsAfter > 0, `${cutWithWholeRecordsAfter} holes were cut with whole records of the write after them`)
  t.ok(refusedInsidePayload > 0, `${refusedInsidePayload} holes zeroed no frame header and refused to open`)
})

t.test('the same sector or page zeroed inside acknowledged writes refuses to open, naming the file and the damaged record', async t => {
  const problems: string[] = []
  let cases = 0
  await fc.assert(fc.asyncProperty(scenarioArbitrary, async scenario => {
    const torn = await tornLog(t, scenario)
    const { synced, bytes, frames, segment } = torn
    for (const hole of [...ranges(SECTOR_BYTES, 0, synced), ...ranges(PAGE_BYTES, 0, synced)]) {
      const zeroed = Buffer.from(bytes)
      zeroed.fill(0, hole.from, hole.to)
      const damaged = firstChanged(frames, bytes, zeroed)
      const headerChanged = !zeroed.subarray(0, frames[0].offset).equals(bytes.subarray(0, frames[0].offset))
      if (damaged === undefined && !headerChanged) continue
      cases++
      const offset = headerChanged ? 0 : damaged?.offset
      const dir = copyOf(torn.dir)
      try {
        fs.writeFileSync(path.join(dir, segment), zeroed)
        const where = `zeros at [${hole.from}, ${hole.to}) of acknowledged bytes [0, ${synced})`
        const outcome = await WriteAheadLog.open({ dir }).then(async log => { await log.close(); return undefined }, (err: unknown) => err)
        if (!(outcome instanceof CorruptLogError)) problems.push(`${where}: opening gave ${String(outcome)}, not WAL_CORRUPT`)
        else if (outcome.file !== segment || outcome.offset !== offset) problems.push(`${where}: WAL_CORRUPT names ${outcome.file} at ${outcome.offset}, expected ${segment} at ${String(offset)}`)
        if (!fs.readFileSync(path.join(dir, segment)).equals(zeroed) || brokenFiles(dir).length > 0) problems.push(`${where}: the refused open changed the directory`)
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }
  }), { numRuns: RUNS })
  t.same(problems.slice(0, 10), [], `no problem in ${cases} holes (${problems.length} problems)`)
  t.ok(cases > 0, `${cases} holes damaged acknowledged records`)
})

t.test('the service starts by itself on a log with a torn last write, and verify names the cut', async t => {
  const [scenario] = fc.sample(scenarioArbitrary, { numRuns: 1, seed: Math.floor(Math.random() * 2 ** 30) })
  const torn = await tornLog(t, scenario)
  // A page from the sector holding a frame header of the write (not its first frame's, whose sector
  // may hold synced bytes): the mark a power cut leaves, with later pages written back.
  const marked = torn.frames.find(f => f.seq > torn.acknowledged + 1 && Math.floor(f.offset / SECTOR_BYTES) * SECTOR_BYTES > torn.synced)
  const from = Math.floor((marked?.offset ?? 0) / SECTOR_BYTES) * SECTOR_BYTES
  const hole = { from, to: from + PAGE_BYTES }
  t.ok(marked !== undefined && hole.to < torn.bytes.length, 'a header of the write is zeroed, and a later page of it written back')
  const dir = tempDir(t)
  for (const name of fs.readdirSync(torn.dir)) if (name !== 'LOCK') fs.copyFileSync(path.join(torn.dir, name), path.join(dir, name))
  writeBackHole(path.join(dir, torn.segment), torn.synced, hole.from, hole.to)
  const damaged = firstChanged(torn.frames, torn.bytes, fs.readFileSync(path.join(dir, torn.segment)))
  t.ok(damaged !== undefined && damaged.seq > torn.acknowledged, 'the hole damages an unsynced record')
  const kept = (damaged?.seq ?? 1) - 1

  const verify = spawnSync(process.execPath, [CLI, 'verify', dir], { timeout: 20_000, env: { PATH: process.env.PATH } })
  t.equal(verify.status, 1, 'verify reports damage')
  t.match(verify.stdout.toString(), new RegExp(`torn: serve would cut the torn tail of ${torn.segment} at byte ${String(damaged?.offset)} .*sectors of zeros tore the last write`), 'verify names the cut serve makes')

  const service = await startChild({ dataDir: dir })
  t.teardown(async () => { await service.stop() })
  const response = await fetch(`${service.url}/v1/recovery?after=0`)
  t.equal(response.status, 200)
  const records = await ndjson(response)
  t.same(records, torn.lines.slice(0, kept).map(line => JSON.parse(line) as unknown), `the service serves the ${kept} records before the hole, the ${torn.acknowledged} acknowledged among them`)
  t.match(service.output, /cut a torn tail/, 'the service logs the cut')
})

t.test('a whole record whose write index does not follow the record before it is corruption, wherever it stands', async t => {
  const problems: string[] = []
  await fc.assert(fc.asyncProperty(scenarioArbitrary, fc.nat(), fc.integer({ min: 1, max: 2 ** 24 - 2 }), async (scenario, pick, shift) => {
    const dir = tempDir(t)
    const log = await WriteAheadLog.open({ dir })
    try {
      for (const group of [...scenario.acknowledged, scenario.unsynced]) await Promise.all(group.map(async e => await log.append(e)))
    } finally {
      await log.close()
    }
    const [segment] = segmentFiles(dir)
    const file = path.join(dir, segment)
    const bytes = fs.readFileSync(file)
    const frames = rawRecords(dir)
    const victim = frames[pick % frames.length]
    const index = bytes.readUIntLE(victim.offset + 25, 3)
    // Another index, not 0 (which would start a write), sealed with a matching CRC: a whole record
    // that does not fit the writes.
    const wrongIndex = 1 + (index + shift - 1) % (2 ** 24 - 1)
    const payload = bytes.subarray(victim.offset + 28, victim.offset + victim.size)
    writeRecord(bytes, victim.offset, victim.seq, readU64(bytes, victim.offset + 16), victim.type as RecordTypeCode, payload, wrongIndex)
    fs.writeFileSync(file, bytes)
    const outcome = await WriteAheadLog.open({ dir }).then(async opened => { await opened.close(); return undefined }, (err: unknown) => err)
    if (!(outcome instanceof CorruptLogError) || outcome.offset !== victim.offset || !/write index/.test(outcome.reason)) {
      problems.push(`index ${index} -> ${wrongIndex} at seq ${victim.seq}: ${String(outcome)}`)
    }
  }), { numRuns: 20 })
  t.same(problems, [], 'every such record refuses to open, named at its offset')
})

t.test('a flipped bit in an acknowledged last write of sparse vectors refuses to open: zeros in payloads are no torn write', async t => {
  // Vectors mostly zeros: their payloads hold whole sectors of zeros, as sparse embeddings do.
  const sparse = fc.tuple(fc.integer({ min: 256, max: 1024 }), fc.nat(), fc.float({ noNaN: true, noDefaultInfinity: true }))
    .map(([dims, at, value]): number[] => Array.from({ length: dims }, (_, i) => i === at % dims ? value : 0))
  await fc.assert(fc.asyncProperty(fc.array(sparse, { minLength: 4, maxLength: 20 }), fc.nat(), fc.nat(31), async (vectors, pick, bit) => {
    const dir = tempDir(t)
    const log = await WriteAheadLog.open({ dir })
    await log.append({ op: 'delete', id: 'first' })
    // One write, acknowledged once its fdatasync returned.
    await Promise.all(vectors.map(async (vector, i) => await log.append({ op: 'insert', id: `v${i}`, vector })))
    await log.close()
    const frames = rawRecords(dir)
    // Not the last record: damage there, with nothing after it, is an ordinary torn tail.
    const victim = frames[1 + pick % (vectors.length - 1)]
    const file = path.join(dir, victim.file)
    const damaged = fs.readFileSync(file)
    damaged[victim.offset + (bit >> 3)] ^= 1 << (bit & 7)
    fs.writeFileSync(file, damaged)
    const outcome = await openAndRead(dir).then(() => undefined, (err: unknown) => err)
    if (!(outcome instanceof CorruptLogError) || outcome.offset !== victim.offset) throw new Error(`opening gave ${String(outcome)}, not WAL_CORRUPT at ${victim.offset}`)
    if (!fs.readFileSync(file).equals(damaged) || brokenFiles(dir).length > 0) throw new Error('the refused open changed the directory')
    return true
  }), { numRuns: 25 })
  t.pass('every flipped bit refused, nothing cut')
})

t.test('a torn last write whose copy finds the disk full is not cut: its whole records go only with their copy', async t => {
  const [scenario] = fc.sample(scenarioArbitrary, { numRuns: 1, seed: 11 })
  const torn = await tornLog(t, scenario)
  const dir = copyOf(torn.dir)
  t.teardown(() => { fs.rmSync(dir, { recursive: true, force: true }) })
  const file = path.join(dir, torn.segment)
  // The first page of the write zeroed, the rest written back: a header lies in it.
  const from = Math.ceil((torn.synced + 1) / SECTOR_BYTES) * SECTOR_BYTES
  writeBackHole(file, torn.synced, from, from + PAGE_BYTES)
  const holed = fs.readFileSync(file)
  const io = new RecordingIO()
  io.fault = (op, name) => op === 'create' && name.endsWith('.broken') ? ioError('ENOSPC', 'open') : undefined
  const outcome = await WriteAheadLog.open({ dir, io }).then(async log => { await log.close() }, (err: unknown) => err)
  t.match(outcome, { code: 'WAL_OPEN_FAILED' }, 'opening refuses rather than cut whole records without their copy')
  t.ok(fs.readFileSync(file).equals(holed), 'the segment is untouched')
  t.same(brokenFiles(dir), [], 'no partial copy is left')
  const opened = await openAndRead(dir)
  t.ok(opened.lastSeq >= torn.acknowledged, 'with room again, it opens with everything acknowledged')
})
