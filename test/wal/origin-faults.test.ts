// The faults of the origin, the write-ahead log vecwal grew from, that must never return: one test
// for each, named for the behaviour that rules the fault out and failing if the fault came back; the
// comment above each test says what the origin did.
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { isDeepStrictEqual } from 'node:util'
import { unpackMultiple } from 'msgpackr'
import t from 'tap'
import type { EntryInput } from '../../src/entry.js'
import { CorruptLogError } from '../../src/errors.js'
import { DEFAULT_CHUNK_BYTES } from '../../src/wal/frame-reader.js'
import { RecordType, segmentFileName, SEGMENT_HEADER_BYTES } from '../../src/wal/format.js'
import { WriteAheadLog } from '../../src/wal/log.js'
import {
  bodyOf, collect, entries, entry, failNext, flipBit, openFailure, openLog, plain, rawRecords, RecordingIO,
  segmentFiles, storedForm, tempDir, writeLog
} from '../helpers/wal.js'

const SEG = /\.seg$/

// The origin acknowledged appends still in a user-space buffer, or paid one fsync per append.
t.test('an append resolves only after an fdatasync covering its bytes, and concurrent appends share fdatasyncs', async t => {
  const dir = tempDir(t)
  const io = new RecordingIO()
  const log = await openLog(t, { dir, io })
  t.equal(log.status().durability, 'fsync', 'fsync is the default durability')

  const acks: Array<{ seq: number, eventsSeen: number }> = []
  const track = (p: Promise<number>): Promise<void> => p.then(seq => { acks.push({ seq, eventsSeen: io.events.length }) })
  for (const e of entries(5)) await track(log.append(e))
  const syncsBefore = io.completed('fdatasync', SEG)
  const concurrent = 200
  await Promise.all(entries(concurrent, 5).map(e => track(log.append(e))))
  const syncs = io.completed('fdatasync', SEG) - syncsBefore

  // For every acknowledgement: the write that carried the record's bytes, then an fdatasync of
  // that file, both completed before the append resolved.
  const onDisk = new Map(rawRecords(dir).map(r => [r.seq, r]))
  const early: number[] = []
  for (const ack of acks) {
    const record = onDisk.get(ack.seq)
    if (record === undefined) { early.push(ack.seq); continue }
    const file = path.join(dir, record.file)
    const written = io.events.findIndex(e => e.op === 'writeAll' && e.phase === 'end' && e.path === file &&
      e.position !== undefined && e.length !== undefined &&
      e.position <= record.offset && e.position + e.length >= record.offset + record.size)
    const synced = io.events.findIndex((e, i) => i > written && e.op === 'fdatasync' && e.phase === 'end' && e.path === file)
    if (written < 0 || synced < 0 || synced >= ack.eventsSeen) early.push(ack.seq)
  }
  t.equal(acks.length, 5 + concurrent, 'every append was acknowledged')
  t.same(early, [], 'no append resolved before an fdatasync covering its bytes completed')
  t.ok(syncs >= 1 && syncs * 10 <= concurrent, `${concurrent} concurrent appends shared ${syncs} fdatasync(s)`)
})

// The origin took the seq under one lock and wrote the bytes under another: disk order could differ.
t.test('records lie on disk in seq order, gap-free from 1, each seq holding the entry its append returned it for', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir, segmentBytes: 16 * 1024 })
  const appended = new Map<number, unknown>()
  const pending: Array<Promise<void>> = []
  for (let i = 0; i < 600; i++) {
    if (i % 5 === 0) {
      const batch = entries(1 + (i % 4), i)
      pending.push(log.appendBatch(batch).then(seq => { appended.set(seq, { op: 'batch', entries: batch.map(storedForm) }) }))
    } else {
      const e = entry(i)
      pending.push(log.append(e).then(seq => { appended.set(seq, storedForm(e)) }))
    }
    if (i % 50 === 0) await new Promise(resolve => setImmediate(resolve))
  }
  await Promise.all(pending)

  const onDisk = rawRecords(dir)
  t.ok(segmentFiles(dir).length > 1, 'the records span several segments')
  t.same(onDisk.map(r => r.seq), Array.from({ length: 600 }, (_, i) => i + 1), 'disk order is seq order, gap-free from 1')
  const mismatched = onDisk.filter(r => !isDeepStrictEqual(plain(r.body as object), appended.get(r.seq)))
  t.same(mismatched.map(r => r.seq), [], 'each seq on disk holds the entry whose append returned that seq')
})

// The origin had no checksum: a flipped bit decoded as another entry, a bad length ended the file.
t.test('a damaged record is refused at open and named by file and offset', async t => {
  t.test('a flipped bit in a record is refused, not decoded as another entry', async t => {
    const dir = tempDir(t)
    await writeLog({ dir }, entries(6))
    const victim = rawRecords(dir)[2]
    // A bit inside the vector's bytes: it would still decode, as a different vector.
    flipBit(path.join(dir, victim.file), victim.offset + victim.size - 3)
    const err = await openFailure({ dir })
    t.type(err, CorruptLogError)
    t.match(err, { file: victim.file, offset: victim.offset, reason: /checksum/ })
  })

  t.test('a damaged length field is reported, not taken as the end of the file', async t => {
    for (const [label, length] of [['longer', 200], ['shorter', 3], ['far past the file', 0x00ffffff]] as const) {
      const dir = tempDir(t)
      await writeLog({ dir }, entries(6))
      const victim = rawRecords(dir)[2]
      const fd = fs.openSync(path.join(dir, victim.file), 'r+')
      const field = Buffer.alloc(4)
      field.writeUInt32LE(length)
      fs.writeSync(fd, field, 0, 4, victim.offset + 4)
      fs.closeSync(fd)
      const err = await openFailure({ dir })
      t.type(err, CorruptLogError, `length made ${label}`)
      t.match(err, { file: victim.file, offset: victim.offset }, `length made ${label}: the damaged record is named`)
    }
  })
})

// The origin skipped what it could not decode and served a log with a hole as if it were whole.
t.test('reads stop at a corrupt record, reopening refuses the log, and repair keeps only what precedes the record', async t => {
  const dir = tempDir(t)
  const written = entries(10)
  const log = await openLog(t, { dir, segmentBytes: 400 })
  for (const e of written) await log.append(e)
  const victim = rawRecords(dir).find(r => r.seq === 5)
  if (victim === undefined) throw new Error('seq 5 is not on disk')
  flipBit(path.join(dir, victim.file), victim.offset + 10)

  const seen: number[] = []
  const read = (async () => { for await (const record of log.read({ after: 0 }).records) seen.push(record.seq) })()
  await t.rejects(read, { code: 'WAL_CORRUPT', file: victim.file, offset: victim.offset }, 'the open log\'s read stops at the hole')
  t.same(seen, [1, 2, 3, 4], 'nothing after the hole is served')
  for (const form of ['ndjson', 'msgpack'] as const) {
    const chunks: Buffer[] = []
    const streamed = (async () => { for await (const chunk of log.read({ after: 0 })[form]) chunks.push(chunk) })()
    await t.rejects(streamed, { code: 'WAL_CORRUPT', file: victim.file, offset: victim.offset }, `the ${form} stream stops at the hole`)
    const bytes = Buffer.concat(chunks)
    const served = form === 'ndjson'
      ? bytes.toString('utf8').split('\n').filter(line => line !== '').map(line => (JSON.parse(line) as { seq: number }).seq)
      : (unpackMultiple(bytes) as Array<{ seq: number }>).map(record => record.seq)
    t.same(served, [1, 2, 3, 4], `the ${form} stream serves what lies before the hole, and nothing after it`)
  }
  await log.close()

  const err = await openFailure({ dir })
  t.type(err, CorruptLogError, 'reopening refuses too')

  const repaired = await openLog(t, { dir, repair: true })
  t.equal(repaired.lastSeq, 4, 'repair keeps only what comes before the hole')
  t.same((await collect(repaired.read({ after: 0 }).records)).map(bodyOf), written.slice(0, 4).map(storedForm))
})

// The origin named segments by the second: two rotations in one second wrote a header into a file's middle.
t.test('each segment is a new file, named by the seq it starts with', async t => {
  t.test('rotations within one second make distinct files, each with one header', async t => {
    const dir = tempDir(t)
    const log = await openLog(t, { dir, segmentBytes: 64 })
    const started = Date.now()
    for (const e of entries(50)) await log.append(e)
    t.comment(`50 rotations in ${Date.now() - started} ms`)
    const files = segmentFiles(dir)
    t.equal(files.length, 50, 'one segment per record')
    const onDisk = rawRecords(dir)
    t.same(onDisk.map(r => [r.file, r.offset]), files.map(file => [file, SEGMENT_HEADER_BYTES]), 'each file is one header and one record')
    t.same(files, onDisk.map(r => segmentFileName(r.seq)), 'each file is named by the seq it starts with')
  })

  t.test('a segment is never created over an existing file', async t => {
    const dir = tempDir(t)
    const log = await openLog(t, { dir, segmentBytes: 64 })
    await log.append(entry(0))
    const squatter = path.join(dir, segmentFileName(2))
    fs.writeFileSync(squatter, 'not a segment')
    await t.rejects(log.append(entry(1)), { code: 'WAL_FAILED' })
    t.equal(fs.readFileSync(squatter, 'utf8'), 'not a segment', 'the existing file was not written to')
  })
})

// The origin kept segments by count, so it could delete entries no checkpoint covered.
t.test('retention deletes only segments a checkpoint covers', async t => {
  const dir = tempDir(t)
  const written = entries(40)
  const log = await openLog(t, { dir, segmentBytes: 200 })
  for (const e of written) await log.append(e)
  const segmentCount = log.status().segments.length
  t.ok(segmentCount > 10, `${segmentCount} segments`)
  t.equal((await log.checkpoint(0)).deletedSegments, 0, 'checkpoint 0 deletes nothing')
  t.equal(log.status().segments[0].firstSeq, 1, 'no checkpoint covers seq 1, so it stays')

  const checkpoint = 23
  const { deletedSegments } = await log.checkpoint(checkpoint)
  t.ok(deletedSegments > 0, `retention deleted ${deletedSegments} segments`)
  const kept = log.status().segments
  t.ok(kept[0].firstSeq <= checkpoint + 1, 'the oldest kept segment starts at or below the first seq no checkpoint covers')
  const reread = await collect(log.read({ after: checkpoint }).records)
  t.same(reread.map(bodyOf), written.slice(checkpoint).map(storedForm), 'every entry above the checkpoint is still there')
  await log.close()

  const reopened = await openLog(t, { dir })
  t.same((await collect(reopened.read().records)).map(bodyOf), written.slice(checkpoint).map(storedForm), 'and still there after reopening')
})

// The origin wrote a checkpoint every 10,000 appends, claiming entries the consumer had not stored.
t.test('the log writes no checkpoint of its own', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir })
  const total = 20_000
  for (let start = 0; start < total; start += 2_000) {
    await Promise.all(entries(2_000, start).map(async e => await log.append(e)))
  }
  t.equal(log.lastSeq, total)
  t.equal(log.checkpointSeq, 0, 'the log set no checkpoint of its own')
  let checkpointRecords = 0
  let records = 0
  for await (const record of log.read({ after: 0, includeCheckpoints: true }).records) {
    records++
    if (record.op === 'checkpoint') checkpointRecords++
  }
  t.equal(records, total)
  t.equal(checkpointRecords, 0, 'no checkpoint record was written')
  t.equal(rawRecords(dir).filter(r => r.type === RecordType.checkpoint).length, 0, 'none on disk either')
  await log.close()

  const reopened = await openLog(t, { dir })
  const first = await collect(reopened.read({ limit: 1 }).records)
  t.equal(first[0].seq, 1, 'after reopening, a default read still starts at the first entry')
})

// The origin could not tell a checkpoint at 0 from no checkpoint.
t.test('a checkpoint at seq 1 survives reopening and no checkpoint reads as 0', async t => {
  const withCheckpoint = tempDir(t)
  const without = tempDir(t)
  for (const dir of [withCheckpoint, without]) {
    const log = await WriteAheadLog.open({ dir })
    t.equal(await log.append(entry(0)), 1, 'the first record is seq 1')
    await log.append(entry(1))
    if (dir === withCheckpoint) await log.checkpoint(1)
    await log.close()
  }
  const a = await openLog(t, { dir: withCheckpoint })
  const b = await openLog(t, { dir: without })
  t.equal(a.checkpointSeq, 1, 'a checkpoint at the first seq survives reopening')
  t.equal(b.checkpointSeq, 0, 'no checkpoint reads as 0')
  t.same((await collect(a.read().records)).map(r => r.seq), [2], 'checkpoint 1 covers seq 1')
  t.same((await collect(b.read().records)).map(r => r.seq), [1, 2], 'no checkpoint covers nothing')
})

// The origin replayed the entries of aborted and never committed transactions.
t.test('only committed transactions reach the log: aborted, expired and open ones leave nothing on disk', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir, transactions: { idleMs: 50 } })
  const aborted = log.transactions.begin()
  log.transactions.stage(aborted, entries(3, 100))
  log.transactions.abort(aborted)

  const expired = log.transactions.begin()
  log.transactions.stage(expired, entries(3, 200))

  const committed = log.transactions.begin()
  const kept = entries(2, 300)
  log.transactions.stage(committed, kept)
  const { seq } = await log.transactions.commit(committed)

  const open = log.transactions.begin()
  log.transactions.stage(open, entries(3, 400))

  await sleep(150)
  await t.rejects(log.transactions.commit(expired), { code: 'WAL_TX_NOT_FOUND' }, 'an idle transaction expired')
  await t.rejects(log.transactions.commit(aborted), { code: 'WAL_TX_NOT_FOUND' }, 'an aborted transaction cannot be committed')

  const expected = [{ op: 'batch', entries: kept.map(storedForm), txId: committed }]
  t.same((await collect(log.read({ after: 0 }).records)).map(bodyOf), expected, 'only the committed transaction is in the log')
  t.equal(seq, 1)
  await log.close()

  t.same(rawRecords(dir).map(r => plain(r.body as object)), expected, 'only the committed transaction is on disk')
  const reopened = await openLog(t, { dir })
  t.same((await collect(reopened.read({ after: 0 }).records)).map(bodyOf), expected, 'and recovery replays nothing else')
  t.throws(() => reopened.transactions.stage(open, [entry(1)]), { code: 'WAL_TX_NOT_FOUND' }, 'an uncommitted transaction does not outlive the log')
})

// The origin started at seq 0 until a recovery ran, reusing seqs already on disk.
t.test('seqs continue after reopening, with no read before the first append', async t => {
  const dir = tempDir(t)
  await writeLog({ dir, segmentBytes: 200 }, entries(9))
  const log = await openLog(t, { dir, segmentBytes: 200 })
  t.equal(log.lastSeq, 9, 'the last seq is known as soon as the log is open')
  t.equal(await log.append(entry(9)), 10, 'the first append after reopening continues, with no read before it')
  await log.close()
  t.same(rawRecords(dir).map(r => r.seq), Array.from({ length: 10 }, (_, i) => i + 1), 'no seq on disk is used twice')
})

// The origin checked a segment's size with data still in its buffer, so segments overshot it.
t.test('a segment passes its maximum size only to hold one record larger than the maximum', async t => {
  const dir = tempDir(t)
  const segmentBytes = 1_000
  const log = await openLog(t, { dir, segmentBytes })
  const sized = (i: number): EntryInput => ({ op: 'insert', id: `v${i}`, vector: new Array(1 + (i * 37) % 60).fill(i) })
  const pending: Array<Promise<number>> = []
  for (let i = 0; i < 300; i++) {
    pending.push(i % 10 === 0 ? log.appendBatch([sized(i), sized(i + 1)]) : log.append(sized(i)))
  }
  pending.push(log.append({ op: 'insert', id: 'huge', vector: new Array(400).fill(1) }))
  await Promise.all(pending)

  const recordsPerFile = new Map<string, number>()
  for (const r of rawRecords(dir)) recordsPerFile.set(r.file, (recordsPerFile.get(r.file) ?? 0) + 1)
  const oversized = segmentFiles(dir)
    .map(file => ({ file, bytes: fs.statSync(path.join(dir, file)).size, records: recordsPerFile.get(file) }))
    .filter(s => s.bytes > segmentBytes)
  t.ok(recordsPerFile.size > 10, `${recordsPerFile.size} segments`)
  t.same(oversized.map(s => s.records), [1], 'only the segment of the one record larger than the maximum passes it')
})

// The origin read a whole log into one array before returning any of it.
t.test('a read streams the log one segment at a time, in chunks of bounded size', async t => {
  const dir = tempDir(t)
  const segmentBytes = 3 * 1024 * 1024
  const big = (i: number): EntryInput => ({ op: 'insert', id: `v${i}`, vector: new Array(1024).fill(i) })
  const writer = await WriteAheadLog.open({ dir, segmentBytes })
  for (let start = 0; start < 1_800; start += 200) {
    await Promise.all(Array.from({ length: 200 }, async (_, i) => await writer.append(big(start + i))))
  }
  await writer.close()
  const files = segmentFiles(dir)
  t.ok(files.length >= 3, `${files.length} segments of up to ${segmentBytes} bytes`)

  const io = new RecordingIO()
  const log = await openLog(t, { dir, segmentBytes, io })
  const readStart = io.events.length
  const iterator = log.read({ after: 0 }).records[Symbol.asyncIterator]()
  const first = await iterator.next()
  t.equal(first.done !== true && first.value.seq, 1, 'the read yields seq 1 first')
  const opened = io.events.slice(readStart).filter(e => e.op === 'openRead' && e.phase === 'end' && SEG.test(e.path))
  t.same(opened.map(e => e.path), [path.join(dir, files[0])], 'the first record came before any later segment was opened')

  let count = 1
  let open = 0
  let mostOpen = 0
  for (;;) {
    const next = await iterator.next()
    if (next.done === true) break
    count++
  }
  for (const e of io.events.slice(readStart)) {
    if (e.phase !== 'end' || !SEG.test(e.path)) continue
    if (e.op === 'openRead') open++
    if (e.op === 'close') open--
    mostOpen = Math.max(mostOpen, open)
  }
  t.equal(count, 1_800, 'the read yields every record')
  t.equal(mostOpen, 1, 'one segment open at a time')
  const largestRead = Math.max(...io.events.filter(e => e.op === 'read').map(e => e.length ?? 0))
  t.ok(largestRead <= DEFAULT_CHUNK_BYTES, `opening and reading ${files.length} segments asked for at most ${largestRead} bytes at once`)
})

// The origin never synced the directory, so a new segment could vanish in a power cut.
t.test('a new segment\'s directory entry and header are synced before any record goes into it, and deletions are synced', async t => {
  const dir = tempDir(t)
  const io = new RecordingIO()
  const log = await openLog(t, { dir, io, segmentBytes: 200 })
  for (const e of entries(20)) await log.append(e)
  await log.checkpoint(15)

  const created = io.events.flatMap((e, i) => e.op === 'create' && e.phase === 'end' && SEG.test(e.path) ? [i] : [])
  t.ok(created.length > 5, `${created.length} segments created`)
  const dirNotSynced: string[] = []
  const headerNotSynced: string[] = []
  for (const at of created) {
    const file = io.events[at].path
    const firstRecordWrite = io.events.findIndex(e => e.op === 'writeAll' && e.path === file && (e.position ?? 0) >= SEGMENT_HEADER_BYTES)
    const before = firstRecordWrite < 0 ? io.events.length : firstRecordWrite
    const dirSynced = io.events.findIndex((e, i) => i > at && e.op === 'fsyncDir' && e.phase === 'end' && e.path === dir)
    const headerSynced = io.events.findIndex((e, i) => i > at && e.op === 'fdatasync' && e.phase === 'end' && e.path === file)
    if (dirSynced < 0 || dirSynced > before) dirNotSynced.push(path.basename(file))
    if (headerSynced < 0 || headerSynced > before) headerNotSynced.push(path.basename(file))
  }
  t.same(dirNotSynced, [], 'every new segment\'s directory entry was synced before any record went into it')
  t.same(headerNotSynced, [], 'every new segment\'s header was synced before any record went into it')
  const unlinks = io.events.flatMap((e, i) => e.op === 'unlink' && e.phase === 'end' ? [i] : [])
  t.ok(unlinks.length > 0, 'retention deleted segments')
  const lastUnlink = unlinks.at(-1) ?? 0
  t.ok(io.events.some((e, i) => i > lastUnlink && e.op === 'fsyncDir' && e.phase === 'end' && e.path === dir), 'the directory was synced after the deletions')
})

// The origin ignored flush errors and did not treat a failed fsync as fatal.
t.test('a failed fdatasync fails the log, is never retried, and reopening recovers every acknowledged record', async t => {
  const dir = tempDir(t)
  const io = new RecordingIO()
  const log = await openLog(t, { dir, io })
  const acknowledged = entries(3)
  for (const e of acknowledged) await log.append(e)

  const injected = failNext(io, 'fdatasync', 'EIO', { file: SEG })
  const syncCallsBefore = io.calls('fdatasync')
  const batch = [log.append(entry(10)), log.append(entry(11))]
  for (const p of batch) await t.rejects(p, { code: 'WAL_FAILED', cause: { code: 'EIO' } }, 'every append of the failed batch is rejected')
  t.equal(injected.failed(), 1)
  t.equal(log.state, 'failed')
  t.equal(log.status().state, 'failed')
  await t.rejects(log.append(entry(12)), { code: 'WAL_FAILED' }, 'later appends are rejected')
  await t.rejects(log.checkpoint(1), { code: 'WAL_FAILED' }, 'so is a checkpoint')
  await log.close()
  t.equal(io.calls('fdatasync') - syncCallsBefore, 1, 'the failed fdatasync was not retried, not even by close')

  const reopened = await openLog(t, { dir })
  const records = await collect(reopened.read({ after: 0 }).records)
  t.same(records.slice(0, 3).map(bodyOf), acknowledged.map(storedForm), 'reopening recovers every acknowledged record')
  t.equal(reopened.state, 'ok')
  t.equal(await reopened.append(entry(13)), reopened.lastSeq, 'and the reopened log takes appends again')
})
