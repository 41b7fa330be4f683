// Follow reads of the segment engine: every record exactly once and in order while writers append
// concurrently and segments rotate, in all three forms; a failure ends them with WAL_FAILED after
// every durable record, close and abort end them cleanly; long poll wakes on a commit of an entry,
// not on a checkpoint or consumer record.
import { getEventListeners } from 'node:events'
import path from 'node:path'
import t from 'tap'
import fc from 'fast-check'
import { unpackMultiple } from 'msgpackr'
import type { LogRead, LogRecord } from '../../src/log.js'
import { entry } from '../helpers/bodies.js'
import { collect, failNext, openLog, plain, RecordingIO, tempDir } from '../helpers/wal.js'

const WRITERS = 4
const PER_WRITER = 60

/** Seqs and bodies of records, as the NDJSON form prints them, for comparing the three forms. */
function keyed (records: ReadonlyArray<{ seq: number }>): unknown[] {
  return records.map(r => plain(r))
}

/** What each form of a read yields, parsed: records of the decoded form, lines, maps. */
async function drain (read: LogRead, form: 'records' | 'ndjson' | 'msgpack'): Promise<unknown[]> {
  if (form === 'records') return keyed(await collect(read.records))
  const bytes = Buffer.concat(await collect(read[form]))
  if (form === 'ndjson') return bytes.toString('utf8').split('\n').filter(l => l !== '').map(l => JSON.parse(l) as unknown)
  return unpackMultiple(bytes) as unknown[]
}

t.test('followers of each form get every record once, in order, across rotation, under concurrent writers', async t => {
  const log = await openLog(t, { dir: tempDir(t), segmentBytes: 4096, durability: 'none' })
  const generated = fc.sample(entry, { numRuns: WRITERS * PER_WRITER + 10, seed: 12 })
  for (const e of generated.slice(0, 10)) await log.append(e)
  const forms = ['records', 'ndjson', 'msgpack'] as const
  const followers = forms.map(form => drain(log.read({ after: 3, follow: true }), form))
  await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
    for (let i = 0; i < PER_WRITER; i++) {
      const e = generated[10 + w * PER_WRITER + i]
      if (i % 5 === 4) await log.appendBatch([e, e])
      else await log.append(e)
    }
  }))
  const everything = await collect(log.read({ after: 3 }).records)
  t.ok(log.status().segments.length > 5, `${log.status().segments.length} segments: the followers crossed rotations`)
  await log.close()
  const [records, lines, maps] = await Promise.all(followers)
  t.same(records, keyed(everything), 'the decoded follower got the bounded read\'s records')
  t.same((lines as LogRecord[]).map(l => l.seq), everything.map(r => r.seq), 'NDJSON: every seq once, in order')
  t.same((maps as LogRecord[]).map(m => m.seq), everything.map(r => r.seq), 'msgpack: every seq once, in order')
  t.same(everything.map(r => r.seq), Array.from({ length: everything.length }, (_, i) => i + 4), 'gap-free from after + 1')
})

t.test('a follower keeps its place: each segment is opened once and no byte is read twice', async t => {
  const io = new RecordingIO()
  const log = await openLog(t, { dir: tempDir(t), segmentBytes: 4096, durability: 'none', io })
  const generated = fc.sample(entry, { numRuns: 120, seed: 21 })
  const read = log.read({ after: 0, follow: true })
  const following = collect(read.records)
  // One at a time: the follower is woken, and catches up, after every append.
  for (const e of generated) {
    await log.append(e)
    await new Promise(resolve => setImmediate(resolve))
  }
  const segments = log.status().segments.map(s => s.name)
  await log.close()
  t.equal((await following).length, generated.length)
  const reads = io.events.filter(e => e.op === 'read' && e.phase === 'start')
  const opens = io.events.filter(e => e.op === 'openRead' && e.phase === 'start').map(e => path.basename(e.path))
  t.same(opens, segments, 'each segment opened once, in order')
  for (const name of segments) {
    const ranges = reads.filter(e => path.basename(e.path) === name).map(e => [e.position ?? 0, (e.position ?? 0) + (e.length ?? 0)])
    const overlaps = ranges.filter(([from], i) => i > 0 && from < ranges[i - 1][1])
    t.same(overlaps, [], `${name}: ${ranges.length} reads, each after the one before`)
  }
})

t.test('a follower with a signal holds one abort listener at most, however many commits wake it', async t => {
  const log = await openLog(t, { dir: tempDir(t), durability: 'none' })
  const stop = new AbortController()
  const read = log.read({ after: 0, follow: true, signal: stop.signal })
  const following = collect(read.records)
  const most = { listeners: 0 }
  for (const e of fc.sample(entry, { numRuns: 200, seed: 5 })) {
    await log.append(e)
    await new Promise(resolve => setImmediate(resolve))
    most.listeners = Math.max(most.listeners, getEventListeners(stop.signal, 'abort').length)
  }
  t.ok(most.listeners <= 1, `at most ${most.listeners} listener: each wait takes its own away when a commit ends it`)
  stop.abort()
  t.equal((await following).length, 200, 'the abort ends the read after every record')
  t.equal(getEventListeners(stop.signal, 'abort').length, 0, 'and leaves no listener behind')
})

t.test('a caught-up byte stream sends what it has, then waits for the next commit', async t => {
  const log = await openLog(t, { dir: tempDir(t), durability: 'none' })
  const [first, second] = fc.sample(entry, { numRuns: 2, seed: 3 })
  await log.append(first)
  const read = log.read({ after: 0, follow: true })
  const chunks = read.ndjson[Symbol.asyncIterator]()
  const one = await chunks.next()
  t.same(JSON.parse(one.value.toString()).seq, 1, 'the partial chunk holding seq 1 came out before any wait')
  const pending = chunks.next()
  await new Promise(resolve => setImmediate(resolve))
  t.ok(read.caughtUp(), 'the read says it waits, its bytes so far ending on a record boundary')
  await log.append(second)
  const two = await pending
  t.same(JSON.parse(two.value.toString()).seq, 2, 'woken by the commit')
  t.notOk(read.caughtUp())
  await chunks.return?.(undefined)
})

t.test('a commit that lands while a caught-up byte stream hands out its partial chunk is sent without waiting for another', async t => {
  for (const form of ['ndjson', 'msgpack'] as const) {
    const log = await openLog(t, { dir: tempDir(t), durability: 'none' })
    const [first, second] = fc.sample(entry, 2)
    await log.append(first)
    const chunks = log.read({ after: 0, follow: true })[form][Symbol.asyncIterator]()
    t.ok((await chunks.next()).value.length > 0, `${form}: the partial chunk holding seq 1 came out`)
    // Durable while the follower still holds that chunk, before it asks for more.
    await log.append(second)
    let timer: NodeJS.Timeout | undefined
    const next = await Promise.race([chunks.next(), new Promise<'waited'>(resolve => { timer = setTimeout(() => { resolve('waited') }, 5_000) })])
    clearTimeout(timer)
    t.not(next, 'waited', `${form}: seq 2 came without another commit`)
    if (next !== 'waited') t.equal(((form === 'ndjson' ? JSON.parse(next.value.toString()) : unpackMultiple(next.value)[0]) as { seq: number }).seq, 2)
    await log.close()
  }
})

t.test('a failed log ends its followers with WAL_FAILED after every durable record', async t => {
  const io = new RecordingIO()
  const log = await openLog(t, { dir: tempDir(t), io })
  const generated = fc.sample(entry, { numRuns: 4, seed: 5 })
  for (const e of generated.slice(0, 3)) await log.append(e)
  const got: number[] = []
  const following = (async () => { for await (const r of log.read({ after: 0, follow: true }).records) got.push(r.seq) })()
  failNext(io, 'fdatasync', 'EIO')
  await t.rejects(log.append(generated[3]), { code: 'WAL_FAILED' })
  await t.rejects(following, { code: 'WAL_FAILED' }, 'the follower ends with the failure')
  t.same(got, [1, 2, 3], 'after the records that were durable, and nothing else')
})

t.test('close and abort end followers cleanly; limit ends them too', async t => {
  const log = await openLog(t, { dir: tempDir(t), durability: 'none' })
  const generated = fc.sample(entry, { numRuns: 3, seed: 7 })
  await log.append(generated[0])
  const abort = new AbortController()
  const aborted = collect(log.read({ after: 0, follow: true, signal: abort.signal }).ndjson)
  const limited = collect(log.read({ after: 0, follow: true, limit: 2 }).records)
  const closed = collect(log.read({ after: 0, follow: true }).records)
  await log.append(generated[1])
  abort.abort()
  const lines = Buffer.concat(await aborted).toString()
  t.ok(lines.endsWith('\n'), 'an aborted byte stream ends on a record boundary')
  t.same((await limited).map(r => r.seq), [1, 2], 'a limit of 2 ends after 2 records')
  await log.append(generated[2])
  await log.close()
  t.same((await closed).map(r => r.seq), [1, 2, 3], 'close ends the follower after the last record')
})

t.test('long poll: resolves on a commit, on time up, and at once when records are there', async t => {
  const log = await openLog(t, { dir: tempDir(t), durability: 'none' })
  const [one] = fc.sample(entry, { numRuns: 1, seed: 9 })
  const waiting = log.waitForRecords({ after: 0, timeoutMs: 60_000 })
  await log.append(one)
  await waiting
  t.equal(log.lastSeq, 1, 'woken by the commit, long before the time was up')
  await log.waitForRecords({ after: 0, timeoutMs: 60_000 })
  t.pass('a record after `after` answers at once')
  await log.waitForRecords({ after: 1, timeoutMs: 20 })
  t.equal(log.lastSeq, 1, 'time up with nothing new')
  const abort = new AbortController()
  const aborted = log.waitForRecords({ after: 1, timeoutMs: 60_000, signal: abort.signal })
  abort.abort()
  await aborted
  t.pass('an abort ends the wait')
})

t.test('a checkpoint or consumer record does not answer a long poll: time up empty, then an entry answers it', async t => {
  const log = await openLog(t, { dir: tempDir(t), durability: 'none' })
  const [one, two] = fc.sample(entry, { numRuns: 2, seed: 13 })
  await log.append(one)
  const waitMs = 500
  const started = performance.now()
  const timedOut = log.waitForRecords({ after: 1, timeoutMs: waitMs })
  await log.checkpoint()
  await log.consumers.create('reader')
  await log.consumers.checkpoint('reader')
  await timedOut
  const waited = performance.now() - started
  t.ok(waited >= waitMs - 50, `the wait ran its ${waitMs} ms (${Math.round(waited)} ms) though ${log.lastSeq - 1} records came after seq 1`)
  t.ok(log.lastSeq > 1, 'the checkpoint and consumer records took seqs')

  let answered = false
  const waiting = log.waitForRecords({ after: 1, timeoutMs: 60_000 }).then(() => { answered = true })
  await log.checkpoint()
  await log.consumers.create('another')
  await new Promise(resolve => setTimeout(resolve, 50))
  t.notOk(answered, 'a checkpoint and a consumer made during the wait leave it waiting')
  const seq = await log.append(two)
  await waiting
  t.ok(answered, `the entry (seq ${seq}) answers it`)
  t.same((await collect(log.read({ after: 1 }).records)).map(r => r.seq), [seq], 'and is the one record a read after seq 1 gives')
})
