// Named consumers in the engine: their state is records in the log, rebuilt at open from what
// retention kept, carried forward before retention deletes the records that stated it; retention
// waits for the lowest checkpoint, or passes it past retainMaxBytes (and says so); timestamps never
// decrease, whatever the clock does, and a read by time finds exactly the records at or after it,
// reading from the mark before the moment rather than the whole log.
import fc from 'fast-check'
import t from 'tap'
import type { EntryInput } from '../../src/entry.js'
import { RecordType } from '../../src/wal/format.js'
import { DEFAULT_CHUNK_BYTES } from '../../src/wal/frame-reader.js'
import { MARK_BYTES } from '../../src/wal/seq-marks.js'
import { entry as entryArbitrary } from '../helpers/bodies.js'
import { collect, openLog, rawRecords, RecordingIO, segmentFiles, tempDir } from '../helpers/wal.js'

const entryList = (min: number, max: number): fc.Arbitrary<EntryInput[]> => fc.array(entryArbitrary, { minLength: min, maxLength: max }) as fc.Arbitrary<EntryInput[]>

t.test('consumers outlive the deletion of the records that created them: carried forward, rebuilt at open exactly', async t => {
  await fc.assert(fc.asyncProperty(entryList(30, 60), fc.uniqueArray(fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/), { minLength: 1, maxLength: 4 }), async (sent, names) => {
    const dir = tempDir(t)
    let log = await openLog(t, { dir, segmentBytes: 1024, durability: 'none' })
    for (const name of names) await log.consumers.create(name)
    for (const e of sent) await log.append(e)
    // Every consumer moves to the end, so retention may delete every segment that holds their creation.
    for (const name of names) await log.consumers.checkpoint(name)
    await log.checkpoint()
    const before = log.consumers.list()
    const oldest = log.status().segments[0].firstSeq
    const creations = rawRecords(dir).filter(r => r.type === RecordType.consumer && (r.body as { event: string }).event === 'create')
    if (oldest <= names.length) throw new Error(`retention deleted nothing (oldest seq ${oldest})`)
    if (creations.length !== 0) throw new Error('creation records survived retention')
    await log.close()
    log = await openLog(t, { dir, segmentBytes: 1024, durability: 'none' })
    t.same(log.consumers.list(), before, 'every consumer, its start, checkpoint and checkpoint time are rebuilt from the kept records')
    await log.close()
    return true
  }), { numRuns: 5 })
})

t.test('retention deletes only below the lowest checkpoint of all consumers; deleting a consumer lets it go further', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir, segmentBytes: 1024, durability: 'none' })
  const sent = fc.sample(entryArbitrary, 80) as EntryInput[]
  await log.consumers.create('slow')
  await log.consumers.create('fast')
  for (const e of sent) await log.append(e)
  await log.consumers.checkpoint('fast')
  await log.checkpoint()
  t.equal(log.status().segments[0].firstSeq, 1, 'nothing goes while slow is at 0')
  await log.consumers.checkpoint('slow', 40)
  const oldest = log.status().segments[0]
  t.ok(oldest.firstSeq > 1 && oldest.firstSeq <= 41, `the oldest segment starts at ${oldest.firstSeq}, at or below seq 41, which slow has not read`)
  t.same(log.consumers.list().map(c => c.passedByRetention), [false, false, false], 'no consumer is passed')
  await log.consumers.delete('slow')
  t.ok(log.status().segments[0].firstSeq > 41, 'without slow, retention goes up to the others\' checkpoints')
  t.same(segmentFiles(dir), log.status().segments.map(s => s.name))
})

t.test('past retainMaxBytes retention passes a stalled consumer: it reads 410 naming the oldest seq, is marked, and a warning is logged', async t => {
  const dir = tempDir(t)
  const warnings: Array<{ fields: Record<string, unknown>, message: string }> = []
  const logger = { info () {}, error () {}, warn (fields: object, message: string) { warnings.push({ fields: fields as Record<string, unknown>, message }) } }
  const log = await openLog(t, { dir, segmentBytes: 1024, retainMaxBytes: 8 * 1024, logger, durability: 'none' })
  await log.consumers.create('stalled')
  await log.consumers.create('keeping-up')
  // Entries of at most 400 bytes: ten of them and a checkpoint stay well within the cap, so only
  // 'stalled' can be passed (an entry the size of the cap would rightly pass 'keeping-up' too).
  const small = entryArbitrary.filter(e => Buffer.byteLength(JSON.stringify({ ...e, vector: 'vector' in e ? e.vector.length * 4 : 0 })) + ('vector' in e ? e.vector.length * 4 : 0) <= 400)
  for (const e of fc.sample(small, 200) as EntryInput[]) {
    await log.append(e)
    if (log.lastSeq % 10 === 0) await log.consumers.checkpoint('keeping-up')
  }
  // Retention runs as each segment starts (its turn comes among the consumer changes, after the
  // append that started the segment is answered), never deletes the newest, and looks again when
  // the records it carries forward start a segment of their own.
  await log.consumers.serial(async () => {})
  const status = log.status()
  const sealed = status.bytes - (status.segments.at(-1)?.bytes ?? 0)
  t.ok(sealed <= 8 * 1024, `the sealed segments hold ${sealed} bytes, within the cap`)
  const oldest = status.segments[0].firstSeq
  t.match(log.consumers.get('stalled'), { checkpoint: 0, passedByRetention: true }, 'its checkpoint stays where it was, marked passed')
  t.match(log.consumers.get('keeping-up'), { passedByRetention: false })
  t.throws(() => log.read({ consumer: 'stalled' }), { code: 'WAL_RANGE_GONE', message: new RegExp(`oldest retained seq is ${oldest}\\b`) }, 'reading from it is 410, naming the oldest seq held')
  t.equal(warnings.filter(w => w.fields.consumer === 'stalled').length, 1, 'one warning, when retention passed it')
  t.match(warnings.find(w => w.fields.consumer === 'stalled')?.message, /retention passed a consumer/)
  await log.consumers.checkpoint('stalled')
  t.match(log.consumers.get('stalled'), { passedByRetention: false }, 'a checkpoint past the gap brings it back')
})

t.test('timestamps never decrease, whatever the clock does, and since finds exactly the records at or after a moment', async t => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.integer({ min: 1_000_000, max: 1_000_600 }), { minLength: 5, maxLength: 60 }),
    fc.integer({ min: 999_990, max: 1_000_610 }),
    async (clockValues, since) => {
      const dir = tempDir(t)
      let tick = 0
      const clock = (): number => clockValues[Math.min(tick++, clockValues.length - 1)]
      // Small segments and one record a write: marks and segments across the range.
      const log = await openLog(t, { dir, segmentBytes: 256, clock, durability: 'none' })
      for (let i = 0; i < clockValues.length; i++) await log.append({ op: 'delete', id: `d${i}` })
      const all = await collect(log.read({ after: 0 }).records)
      for (let i = 1; i < all.length; i++) if (all[i].timestamp < all[i - 1].timestamp) throw new Error(`seq ${all[i].seq} is stamped before seq ${all[i - 1].seq}`)
      const got = (await collect(log.read({ since }).records)).map(r => r.seq)
      const want = all.filter(r => r.timestamp >= since).map(r => r.seq)
      if (got.join() !== want.join()) throw new Error(`since ${since}: ${got.join()} for ${want.join()}`)
      await log.close()
      return true
    }), { numRuns: 25 })
  t.pass('for 25 generated clocks, timestamps never decreased and since found exactly the records at or after it')
})

t.test('the newest timestamp is recovered at open: a clock set back after a restart stamps no earlier record', async t => {
  const dir = tempDir(t)
  const first = await openLog(t, { dir, clock: () => 2_000_000 })
  await first.append({ op: 'delete', id: 'a' })
  await first.close()
  const second = await openLog(t, { dir, clock: () => 1_000_000 })
  await second.append({ op: 'delete', id: 'b' })
  t.same((await collect(second.read({ after: 0 }).records)).map(r => r.timestamp), [2_000_000, 2_000_000])
})

t.test('at most 64 consumers: the next is refused until one goes', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir, durability: 'none' })
  for (let i = 0; i < 64; i++) await log.consumers.create(`c${i}`)
  await t.rejects(log.consumers.create('one-more'), { code: 'WAL_CONSUMER_LIMIT' })
  await log.consumers.delete('c0')
  t.match(await log.consumers.create('one-more'), { created: true })
})

t.test('consumers whose states fill more than a segment: retention past the byte cap carries them and stops', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir, segmentBytes: 4096, retainMaxBytes: 4096, durability: 'none' })
  const names = fc.sample(fc.stringMatching(/^[A-Za-z0-9._-]{60,64}$/), 63)
  for (const [i, name] of names.entries()) await log.consumers.create(`${i}${name}`.slice(0, 64))
  for (const e of fc.sample(entryArbitrary, 200) as EntryInput[]) await log.append(e)
  await log.consumers.create('last')
  // Retention takes its turn among the consumer changes: once those queued have run, a retention
  // that set itself off again would still be queued, and write.
  const settled = async (): Promise<void> => { await log.consumers.serial(async () => {}) }
  await settled()
  const lastSeq = log.lastSeq
  for (let i = 0; i < 3; i++) await settled()
  t.equal(log.lastSeq, lastSeq, 'nothing more is written once the writes stop')
  await log.close()
  const reopened = await openLog(t, { dir, durability: 'none' })
  t.equal(reopened.consumers.list().length, 64, 'every consumer is still there')
})

t.test('a read starts at the last seq mark before its start, not at the segment\'s first record', async t => {
  const io = new RecordingIO()
  const log = await openLog(t, { dir: tempDir(t), durability: 'none', io })
  // Batches of generated entries until one segment holds several marks' worth of records.
  const entries = fc.sample(entryArbitrary, { numRuns: 200, seed: 17 }) as EntryInput[]
  while (log.status().bytes < 4 * MARK_BYTES) await log.appendBatch(entries)
  const segment = log.status().segments[0]
  t.equal(log.status().segments.length, 1, 'one segment')
  const from = io.events.length
  const wanted = await collect(log.read({ after: log.lastSeq - 1 }).records)
  t.same(wanted.map(r => r.seq), [log.lastSeq], 'the last record, as asked')
  const read = io.events.slice(from).filter(e => e.op === 'read' && e.phase === 'start').reduce((sum, e) => sum + (e.length ?? 0), 0)
  t.ok(read <= MARK_BYTES + 2 * DEFAULT_CHUNK_BYTES, `${read} bytes read of a ${segment.bytes}-byte segment: from the mark before it on`)
})

t.test('a read by time starts at the last seq mark before the moment, not at the log\'s first record', async t => {
  const io = new RecordingIO()
  // One stamp a write, each a millisecond after the one before: a moment names one write.
  let now = 1_700_000_000_000
  const log = await openLog(t, { dir: tempDir(t), durability: 'none', io, segmentBytes: 8 * MARK_BYTES, clock: () => now++ })
  const entries = fc.sample(entryArbitrary, { numRuns: 200, seed: 19 }) as EntryInput[]
  // Sealed segments before the one the moment is in, and several marks of that one before it.
  const newest = (): number => log.status().segments.at(-1)?.bytes ?? 0
  while (log.status().segments.length < 3 || newest() < 6 * MARK_BYTES) await log.appendBatch(entries)
  const [late] = fc.sample(entryArbitrary, { numRuns: 1, seed: 23 }) as EntryInput[]
  await log.append(late)
  const status = log.status()
  t.ok(status.segments.length >= 3 && newest() >= 6 * MARK_BYTES, `${status.segments.length} segments, the newest of ${newest()} bytes`)
  const [last] = await collect(log.read({ after: log.lastSeq - 1 }).records)
  const from = io.events.length
  const wanted = await collect(log.read({ since: last.timestamp }).records)
  t.same(wanted.map(r => r.seq), [log.lastSeq], 'the late record, the only one stamped at or after its moment')
  const read = io.events.slice(from).filter(e => e.op === 'read' && e.phase === 'start').reduce((sum, e) => sum + (e.length ?? 0), 0)
  t.ok(read <= MARK_BYTES + 2 * DEFAULT_CHUNK_BYTES, `${read} bytes read of a ${status.bytes}-byte log: from the mark before the moment on`)
})
