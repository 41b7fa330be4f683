// Version 2 logs, written before consumers (format version 3), still open, read back exactly as the
// version 2 code read them, and take appends in a new version 3 segment, their own files untouched:
// test/fixtures/format-v2/ was written once by the version 2 code (three segments, a batch with a
// txId, a checkpoint, a write of six records across a rotation) and test/fixtures/format-v2.ndjson
// is how that code read it back.
import { crc32c } from '@node-rs/crc32'
import fs from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import type { EntryInput } from '../../src/entry.js'
import { CorruptLogError } from '../../src/errors.js'
import { encodeSegmentHeader, FORMAT_VERSION, RECORD_HEADER_BYTES, segmentFileName, writeRecord } from '../../src/wal/format.js'
import { WriteAheadLog } from '../../src/wal/log.js'
import { encodeCheckpoint, encodeConsumer } from '../../src/payload/payload.js'
import { entry } from '../helpers/bodies.js'
import { ROOT } from '../helpers/project.js'
import { collect, copyDir, openLog, segmentFiles } from '../helpers/wal.js'

const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'format-v2')
const FIXTURE_LINES = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'format-v2.ndjson'), 'utf8')
const FIXTURE_LAST_SEQ = 11

t.test('a version 2 log opens, reads back as the version 2 code read it, and its checkpoint is the consumer default\'s', async t => {
  const dir = copyDir(t, FIXTURE)
  const log = await openLog(t, { dir })
  t.equal(Buffer.concat(await collect(log.read({ after: 0, includeCheckpoints: true }).ndjson)).toString('utf8'), FIXTURE_LINES)
  t.equal(log.checkpointSeq, 2)
  t.same(log.consumers.list().map(c => [c.name, c.checkpoint, c.start]), [['default', 2, 0]])
  t.same(log.status().segments.map(s => s.name), [...segmentFiles(FIXTURE), segmentFileName(FIXTURE_LAST_SEQ + 1)], 'a new segment takes the appends')
})

t.test('appends and consumers after opening a version 2 log go to a version 3 segment; the version 2 files stay as they were', async t => {
  await fc.assert(fc.asyncProperty(fc.array(entry, { minLength: 1, maxLength: 12 }), async sent => {
    const dir = copyDir(t, FIXTURE)
    let log = await openLog(t, { dir, durability: 'none' })
    for (const e of sent) await log.append(e as EntryInput)
    await log.consumers.create('reader', 3)
    await log.consumers.checkpoint('reader', 5)
    await log.close()
    for (const name of segmentFiles(FIXTURE)) {
      if (!fs.readFileSync(path.join(dir, name)).equals(fs.readFileSync(path.join(FIXTURE, name)))) throw new Error(`${name} changed`)
    }
    const newest = fs.readFileSync(path.join(dir, segmentFileName(FIXTURE_LAST_SEQ + 1)))
    if (newest.readUInt16LE(4) !== FORMAT_VERSION) throw new Error('the new segment is not of the current version')
    log = await openLog(t, { dir, durability: 'none' })
    const lines = Buffer.concat(await collect(log.read({ after: 0, includeCheckpoints: true }).ndjson)).toString('utf8')
    if (!lines.startsWith(FIXTURE_LINES)) throw new Error('the version 2 records do not read back first')
    if (log.lastSeq !== FIXTURE_LAST_SEQ + sent.length + 2) throw new Error(`last seq ${log.lastSeq}`)
    t.same(log.consumers.list().map(c => [c.name, c.checkpoint]), [['default', 2], ['reader', 5]])
    await log.close()
    return true
  }), { numRuns: 5 })
})

t.test('a newest version 2 segment that holds no record is written again as version 3 in place, and takes the appends', async t => {
  const dir = copyDir(t, FIXTURE)
  // A header-only version 2 segment after the fixture's last: what a version 2 writer leaves when it
  // rotated and stopped before the next record.
  const header = encodeSegmentHeader(FIXTURE_LAST_SEQ + 1)
  header.writeUInt16LE(2, 4)
  header.writeUInt32LE(crc32c(header.subarray(0, 16)), 16)
  const name = segmentFileName(FIXTURE_LAST_SEQ + 1)
  fs.writeFileSync(path.join(dir, name), header)
  const log = await openLog(t, { dir })
  t.same(log.status().segments.map(s => s.name), [...segmentFiles(FIXTURE), name], 'no other segment is made')
  t.equal(fs.readFileSync(path.join(dir, name)).readUInt16LE(4), FORMAT_VERSION, 'its header now says version 3')
  const [sent] = fc.sample(entry, 1)
  t.equal(await log.append(sent as EntryInput), FIXTURE_LAST_SEQ + 1)
  t.same(segmentFiles(dir), [...segmentFiles(FIXTURE), name], 'the append went into it')
})

t.test('a version 2 segment holding a version 3 record (a consumer record, or a checkpoint naming a consumer) refuses to open', async t => {
  await fc.assert(fc.asyncProperty(fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/), fc.boolean(), async (name, asConsumerRecord) => {
    const dir = copyDir(t, FIXTURE)
    const newest = path.join(dir, segmentFiles(FIXTURE).at(-1) ?? '')
    const payload = asConsumerRecord
      ? encodeConsumer({ name, event: 'create', start: 0, checkpoint: 0, checkpointedAt: 0 })
      : encodeCheckpoint(1, name)
    const frame = Buffer.alloc(RECORD_HEADER_BYTES + payload.bytes.length)
    writeRecord(frame, 0, FIXTURE_LAST_SEQ + 1, Date.now(), payload.type, payload.bytes)
    const offset = fs.statSync(newest).size
    fs.appendFileSync(newest, frame)
    const outcome = await WriteAheadLog.open({ dir }).then(async log => { await log.close(); return undefined }, (err: unknown) => err)
    if (!(outcome instanceof CorruptLogError) || outcome.offset !== offset || !/version 2 segment holds a version 3 record/.test(outcome.reason)) {
      throw new Error(`opening gave ${String(outcome)}`)
    }
    return true
  }), { numRuns: 6 })
  t.pass('refused, naming the record\'s offset')
})
