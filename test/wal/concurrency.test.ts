// Thousands of appends in flight at once: group commit must keep seqs gap-free and equal to disk
// order, and share each fdatasync among many appends.
import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import { entries, entry, plain, rawRecords, RecordingIO, storedForm, tempDir, openLog } from '../helpers/wal.js'

const SEG = /\.seg$/

t.test('thousands of concurrent appends and batches', async t => {
  const dir = tempDir(t)
  const io = new RecordingIO()
  const log = await openLog(t, { dir, io, segmentBytes: 256 * 1024 })
  const syncsAtOpen = io.completed('fdatasync', SEG)

  const operations = 4_000
  const appended = new Map<number, unknown>()
  const pending: Array<Promise<void>> = []
  let records = 0
  for (let i = 0; i < operations; i++) {
    if (i % 3 === 0) {
      const batch = entries(1 + (i % 5), i * 10)
      pending.push(log.appendBatch(batch).then(seq => { appended.set(seq, { op: 'batch', entries: batch.map(storedForm) }) }))
    } else {
      const e = entry(i * 10)
      pending.push(log.append(e).then(seq => { appended.set(seq, storedForm(e)) }))
    }
    records++
    // Arrivals spread over many turns of the event loop, so batches form while fsyncs are in flight.
    if (i % 40 === 0) await new Promise(resolve => setImmediate(resolve))
  }
  await Promise.all(pending)
  const syncs = io.completed('fdatasync', SEG) - syncsAtOpen

  t.same([...appended.keys()].sort((a, b) => a - b), Array.from({ length: records }, (_, i) => i + 1), 'every append got its own seq, gap-free from 1')
  const onDisk = rawRecords(dir)
  t.same(onDisk.map(r => r.seq), Array.from({ length: records }, (_, i) => i + 1), 'disk order is seq order')
  const mismatched = onDisk.filter(r => !isDeepStrictEqual(plain(r.body as object), appended.get(r.seq)))
  t.same(mismatched.map(r => r.seq), [], 'each seq on disk holds what its append carried')
  t.equal(log.lastSeq, records)
  t.ok(log.status().segments.length > 1, 'the appends rotated through several segments')

  const ratio = records / syncs
  t.comment(`${records} appends, ${syncs} fdatasyncs (segment headers included): ${ratio.toFixed(1)} appends per fsync`)
  t.ok(syncs * 10 <= records, 'at least ten appends per fsync')
})

t.test('a read runs while appends go on', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir, segmentBytes: 4 * 1024 })
  await Promise.all(entries(300).map(async e => await log.append(e)))
  const read = log.read({ after: 0 })
  t.equal(read.lastSeq, 300, 'the read ends at the last seq durable when it began')

  const seen: number[] = []
  const more: Array<Promise<number>> = []
  let n = 300
  for await (const record of read.records) {
    seen.push(record.seq)
    for (let i = 0; i < 3; i++) more.push(log.append(entry(n++)))
    if (seen.length % 25 === 0) await new Promise(resolve => setImmediate(resolve))
  }
  const later = await Promise.all(more)
  t.same(seen, Array.from({ length: 300 }, (_, i) => i + 1), 'the read saw exactly the records durable when it began')
  t.same(later.sort((a, b) => a - b), Array.from({ length: 900 }, (_, i) => 301 + i), 'the appends made during the read continued the log')
  t.same(rawRecords(dir).map(r => r.seq), Array.from({ length: 1_200 }, (_, i) => i + 1), 'and landed in order on disk')
})
