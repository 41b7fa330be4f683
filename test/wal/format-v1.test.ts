// Version 1 logs, written before frames named their write, still open and read back exactly, and
// take appends in a new segment of the current version: test/fixtures/format-v1/ was written once by
// the version 1 code (three segments, a batch, a checkpoint) and test/fixtures/format-v1.ndjson is
// how that code read it back.
import fs from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import type { EntryInput } from '../../src/entry.js'
import { CorruptLogError } from '../../src/errors.js'
import { FORMAT_VERSION, segmentFileName } from '../../src/wal/format.js'
import { WriteAheadLog } from '../../src/wal/log.js'
import { ROOT } from '../helpers/project.js'
import { rawRecords, segmentFiles, tempDir, type TeardownTarget } from '../helpers/wal.js'

const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'format-v1')
const FIXTURE_LINES = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'format-v1.ndjson'), 'utf8')

function fixtureCopy (t: TeardownTarget): string {
  const dir = tempDir(t)
  for (const name of fs.readdirSync(FIXTURE)) fs.copyFileSync(path.join(FIXTURE, name), path.join(dir, name))
  return dir
}

async function ndjsonOf (log: WriteAheadLog): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of log.read({ after: 0, includeCheckpoints: true }).ndjson) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}

const entryArbitrary: fc.Arbitrary<EntryInput> = fc.oneof(
  fc.record({
    op: fc.constantFrom('insert' as const, 'update' as const),
    id: fc.string({ minLength: 1, maxLength: 12 }),
    vector: fc.float32Array({ minLength: 1, maxLength: 300, noNaN: true, noDefaultInfinity: true })
  }),
  fc.record({ op: fc.constant('delete' as const), id: fc.string({ minLength: 1, maxLength: 12 }) })
)

t.test('a version 1 log opens and reads back exactly as the version 1 code read it', async t => {
  const dir = fixtureCopy(t)
  const log = await WriteAheadLog.open({ dir })
  t.teardown(async () => { await log.close() })
  t.equal(await ndjsonOf(log), FIXTURE_LINES)
  t.same(log.status().segments.map(s => s.name), [...segmentFiles(FIXTURE), segmentFileName(12)], 'every segment is kept, and a new one takes the appends')
  t.equal(log.checkpointSeq, 2)
  t.same(log.consumers.list().map(c => [c.name, c.checkpoint]), [['default', 2]], 'the checkpoint is the consumer default\'s')
})

t.test('appends after opening a version 1 log go to a new segment of the current version; the version 1 files stay as they were', async t => {
  await fc.assert(fc.asyncProperty(fc.array(fc.array(entryArbitrary, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 4 }), async groups => {
    const dir = fixtureCopy(t)
    const before = rawRecords(dir).length
    let log = await WriteAheadLog.open({ dir })
    try {
      for (const group of groups) await Promise.all(group.map(async e => await log.append(e)))
    } finally {
      await log.close()
    }
    for (const name of segmentFiles(FIXTURE)) t.ok(fs.readFileSync(path.join(dir, name)).equals(fs.readFileSync(path.join(FIXTURE, name))), `${name} is unchanged`)
    const newest = segmentFiles(dir).at(-1) ?? ''
    t.equal(newest, segmentFileName(before + 1))
    t.equal(fs.readFileSync(path.join(dir, newest)).readUInt16LE(4), FORMAT_VERSION, 'the new segment is of the current version')
    const appended = rawRecords(dir).slice(before)
    t.equal(appended.length, groups.flat().length)
    t.ok(appended.every(r => r.file === newest), 'every appended record is in it')
    log = await WriteAheadLog.open({ dir })
    try {
      const lines = await ndjsonOf(log)
      t.ok(lines.startsWith(FIXTURE_LINES), 'the version 1 records read back first')
      t.equal(log.lastSeq, before + appended.length, 'and every appended record after them')
    } finally {
      await log.close()
    }
  }), { numRuns: 5 })
})

t.test('a version 1 segment with whole records after a frame header of zeros still refuses to open', async t => {
  const dir = fixtureCopy(t)
  const newest = segmentFiles(dir).at(-1) ?? ''
  const file = path.join(dir, newest)
  const bytes = fs.readFileSync(file)
  const [first] = rawRecords(dir).filter(r => r.file === newest)
  // Zeros where its first record's frame header was, its second record whole after them: a torn
  // write in version 2 and 3, which a version 1 segment cannot tell from damage.
  bytes.fill(0, first.offset, first.offset + 28)
  fs.writeFileSync(file, bytes)
  const outcome = await WriteAheadLog.open({ dir }).then(async opened => { await opened.close(); return undefined }, (err: unknown) => err)
  t.ok(outcome instanceof CorruptLogError, `opening refuses: ${String(outcome)}`)
  t.match(outcome, { file: newest, offset: first.offset, reason: /a whole record follows/ })
})
