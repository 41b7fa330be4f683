// What the JetStream backend does beyond the conformance suite: its state comes back from the
// stream on reopen, instances on one stream share seqs and land checkpoints in order, it refuses a
// stream it did not make as it would make it, a record past the servers' max_payload, a queue past
// its limit, and a message on its subjects that vecwal did not write; consumers, keys and followers
// shared by instances; retention that carries consumers forward.
import { connect } from '@nats-io/transport-node'
import { jetstream } from '@nats-io/jetstream'
import fc from 'fast-check'
import t from 'tap'
import { JetStreamLog } from '../../src/jetstream/jetstream-log.js'
import type { LogRecord } from '../../src/log.js'
import { entry } from '../helpers/bodies.js'
import { freshStreamName, openJetStreamLog, startNatsCluster } from '../helpers/nats-cluster.js'
import type { EntryInput } from '../../src/entry.js'

const cluster = await startNatsCluster(t)

async function records (log: JetStreamLog, after = 0): Promise<LogRecord[]> {
  const out: LogRecord[] = []
  for await (const record of log.read({ after }).records) out.push(record)
  return out
}

t.test('reopened on its stream, a log has the last seq and checkpoint it left', async t => {
  await fc.assert(fc.asyncProperty(fc.array(entry, { minLength: 2, maxLength: 12 }), fc.nat(), async (sent, at) => {
    const stream = freshStreamName()
    const first = await openJetStreamLog(t, cluster, { stream })
    for (const e of sent) await first.append(e as EntryInput)
    const checkpoint = at % sent.length
    await first.checkpoint(checkpoint)
    await first.close()
    const again = await openJetStreamLog(t, cluster, { stream })
    if (again.lastSeq !== sent.length + 1) throw new Error(`lastSeq ${again.lastSeq}, not ${sent.length + 1}`)
    if (again.status().checkpoint !== checkpoint) throw new Error(`checkpoint ${again.status().checkpoint}, not ${checkpoint}`)
    const read = await records(again, checkpoint)
    if (read.map(r => r.seq).join() !== sent.slice(checkpoint).map((_, i) => checkpoint + 1 + i).join()) throw new Error('the records after the checkpoint do not read back')
    return true
  }), { numRuns: 5 })
})

t.test('two logs on one stream: one run of seqs, and concurrent checkpoints land in order whichever instance takes them, even past the last seq one of them has seen', async t => {
  const stream = freshStreamName()
  const a = await openJetStreamLog(t, cluster, { stream })
  const b = await openJetStreamLog(t, cluster, { stream })
  const seqs = await Promise.all(Array.from({ length: 20 }, async (_, i) => await (i % 2 === 0 ? a : b).append({ op: 'delete', id: `d${i}` })))
  t.same([...seqs].sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 1), 'gap-free across both')
  const asked = [3, 9, 5, 14, 11, 18]
  const results = await Promise.allSettled(asked.map(async (seq, i) => await (i % 2 === 0 ? a : b).checkpoint(seq)))
  const landed = results.flatMap((r, i) => r.status === 'fulfilled' ? [{ checkpoint: asked[i], seq: r.value.seq }] : [])
  const refused = results.flatMap(r => r.status === 'rejected' ? [(r.reason as { code: string }).code] : [])
  t.same([...new Set(refused)].filter(c => c !== 'WAL_CHECKPOINT_BACKWARDS'), [], 'a checkpoint not landed was refused as backwards')
  landed.sort((x, y) => x.seq - y.seq)
  t.same(landed.map(l => l.checkpoint), [...landed.map(l => l.checkpoint)].sort((x, y) => x - y), 'checkpoint records never go backwards in the stream')
  t.ok(landed.some(l => l.checkpoint === 18), 'the highest landed')
  const reopened = await openJetStreamLog(t, cluster, { stream })
  t.equal(reopened.status().checkpoint, 18)
})

t.test('an existing stream with other settings is refused at open, naming them', async t => {
  const stream = freshStreamName()
  await openJetStreamLog(t, cluster, { stream, replicas: 1 })
  await t.rejects(JetStreamLog.open({ servers: cluster.servers, stream, replicas: 3 }), { code: 'WAL_OPEN_FAILED', message: /1 replicas, not the 3 configured/ })
  await t.rejects(JetStreamLog.open({ servers: ['nats://127.0.0.1:1'], stream, timeoutMs: 500 }), { code: 'WAL_OPEN_FAILED', message: /reach the NATS servers/ })
})

t.test('a record past max_payload is 413-class WAL_RECORD_TOO_LARGE; past the queue limit WAL_QUEUE_FULL', async t => {
  const log = await openJetStreamLog(t, cluster, { queueLimitBytes: 64 * 1024 })
  const huge = Array.from({ length: 3000 }, (_, i) => ({ op: 'insert' as const, id: `v${i}`, vector: new Float32Array(1000) }))
  await t.rejects(log.appendBatch(huge), { code: 'WAL_RECORD_TOO_LARGE' })
  const many = Array.from({ length: 40 }, (_, i) => log.appendBatch([{ op: 'insert', id: `q${i}`, vector: new Float32Array(1000) }]))
  const settled = await Promise.allSettled(many)
  t.ok(settled.some(s => s.status === 'rejected' && (s.reason as { code: string }).code === 'WAL_QUEUE_FULL'), 'some are refused while 64 KiB are in flight')
  t.ok(settled.some(s => s.status === 'fulfilled'), 'the others are stored')
  t.equal(log.status().queuedBytes, 0, 'nothing is left counted once every ack is in')
})

t.test('a read of more bytes than one fetch brings every record, in order, to a reader that takes them slowly', async t => {
  const log = await openJetStreamLog(t, cluster)
  // Records of 200 to 500 KB: a fetch's byte budget (the servers' max_payload and a margin) runs
  // out part-way through one, and the server ends that fetch with a 409.
  const sizes = fc.sample(fc.integer({ min: 50, max: 125 }), { numRuns: 30, seed: 1414 })
  for (const [b, count] of sizes.entries()) {
    await log.appendBatch(Array.from({ length: count }, (_, i) => ({ op: 'insert' as const, id: `b${b}-${i}`, vector: new Float32Array(1000).fill(b) })))
  }
  const seen: number[] = []
  for await (const record of log.read({ after: 0 }).records) {
    seen.push(record.seq)
    // A reader slower than the stream: messages the fetch brought wait in the client meanwhile.
    await new Promise(resolve => setImmediate(resolve))
  }
  t.same(seen, sizes.map((_, i) => i + 1), `all ${sizes.length} records, about ${Math.round(sizes.reduce((a, b) => a + b, 0) * 4 / 1000)} MB`)
})

t.test('a read of more records than one fetch brings does not wait out a fetch\'s expiry between fetches', async t => {
  // A plain read's fetch expires after the timeout: 30 s here. Three fetches' worth of records must
  // come well inside one expiry (the client library ended a fetch only at its expiry once it had
  // its 100 messages: 5 s a hundred records at the default timeout).
  const log = await openJetStreamLog(t, cluster, { timeoutMs: 30_000 })
  const sent = fc.sample(entry, 350) as EntryInput[]
  for (let i = 0; i < sent.length; i += 50) await Promise.all(sent.slice(i, i + 50).map(async e => await log.append(e)))
  const started = Date.now()
  const read = await records(log)
  const elapsed = Date.now() - started
  t.same(read.map(r => r.seq), sent.map((_, i) => i + 1), 'every record, in order')
  t.ok(elapsed < 10_000, `read in ${elapsed} ms, not held by a 30 s fetch expiry`)
})

t.test('a read by time that starts after a seq passes over the records before it without waiting out a fetch\'s expiry', async t => {
  const log = await openJetStreamLog(t, cluster, { timeoutMs: 30_000 })
  const sent = fc.sample(entry, 260) as EntryInput[]
  for (let i = 0; i < sent.length; i += 50) await Promise.all(sent.slice(i, i + 50).map(async e => await log.append(e)))
  const [first] = await records(log)
  const started = Date.now()
  const read: LogRecord[] = []
  for await (const record of log.read({ after: 230, since: first.timestamp }).records) read.push(record)
  const elapsed = Date.now() - started
  t.same(read.map(r => r.seq), sent.slice(230).map((_, i) => 231 + i), 'the records after seq 230, in order')
  t.ok(elapsed < 10_000, `read in ${elapsed} ms past 230 records, not held by a 30 s fetch expiry`)
})

t.test('a message on its subjects that vecwal did not write fails the read with WAL_CORRUPT naming its seq, after the records before it', async t => {
  const stream = freshStreamName()
  const log = await openJetStreamLog(t, cluster, { stream })
  await log.append({ op: 'delete', id: 'mine' })
  const nc = await connect({ servers: cluster.servers })
  t.teardown(async () => { await nc.close() })
  await jetstream(nc).publish(`vecwal.${stream}.records`, 'not a record')
  await log.append({ op: 'delete', id: 'after' })
  const seen: number[] = []
  await t.rejects((async () => { for await (const r of log.read({ after: 0 }).records) seen.push(r.seq) })(), { code: 'WAL_CORRUPT', message: /seq 2/ })
  t.same(seen, [1], 'the record before it was read')
  const lines: string[] = []
  await t.rejects((async () => { for await (const chunk of log.read({ after: 0 }).ndjson) lines.push(chunk.toString()) })(), { code: 'WAL_CORRUPT' })
  t.match(lines.join(''), /"id":"mine"/, 'the byte forms send what came before it too')
})

/** Polls `check` until it holds, for at most a few poll intervals of the instances. */
async function eventually (check: () => boolean): Promise<boolean> {
  for (let i = 0; i < 40 && !check(); i++) await new Promise(resolve => setTimeout(resolve, 100))
  return check()
}

t.test('two instances on one stream share consumers: one made on either is seen, moved and deleted by the other, its rules checked against what the stream holds', async t => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 2, max: 8 }), fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/), async (count, name) => {
    const stream = freshStreamName()
    const a = await openJetStreamLog(t, cluster, { stream })
    const b = await openJetStreamLog(t, cluster, { stream })
    for (let i = 0; i < count; i++) await a.append({ op: 'delete', id: `d${i}` })
    await a.consumers.create(name, 1)
    // b has not polled yet: it reads the consumer's subject when asked of it.
    if ((await b.consumers.create(name, 1)).created) throw new Error('b created it again')
    await b.consumers.checkpoint(name, count)
    const back = await a.consumers.checkpoint(name, count - 1).then(() => undefined, (err: { code?: string }) => err.code)
    if (back !== 'WAL_CHECKPOINT_BACKWARDS') throw new Error(`a moved it back past b's checkpoint: ${String(back)}`)
    if (!await eventually(() => a.consumers.get(name).checkpoint === count)) throw new Error('a never learnt b\'s checkpoint')
    await a.consumers.delete(name)
    if (!await eventually(() => b.consumers.list().every(c => c.name !== name))) throw new Error('b never learnt of the deletion')
    const c = await openJetStreamLog(t, cluster, { stream })
    if (c.consumers.list().some(s => s.name === name)) throw new Error('a reopened log has the deleted consumer')
    return true
  }), { numRuns: 5 })
})

t.test('retention purges below the lowest checkpoint of all consumers; consumers whose state lay below are carried forward and survive a reopen; reads below answer 410', async t => {
  await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 3 }), fc.integer({ min: 0, max: 20 }), async (places, defaultAt) => {
    const stream = freshStreamName()
    const log = await openJetStreamLog(t, cluster, { stream, replicas: 1 })
    for (let i = 0; i < 20; i++) await log.append({ op: 'delete', id: `d${i}` })
    for (const [i, place] of places.entries()) await log.consumers.create(`c${i}`, place)
    // Retention runs at the checkpoint, every consumer made by then.
    await log.checkpoint(defaultAt)
    const lowest = Math.min(defaultAt, ...places)
    const oldest = lowest === 0 ? 1 : lowest + 1
    if (lowest > 0) {
      const gone = (() => { try { log.read({ after: lowest - 1 }); return undefined } catch (err) { return (err as { code?: string }).code } })()
      if (gone !== 'WAL_RANGE_GONE') throw new Error(`a read below the lowest checkpoint ${lowest}: ${String(gone)}`)
    }
    const kept: number[] = []
    for await (const record of log.read({ after: oldest - 1, includeCheckpoints: true }).records) kept.push(record.seq)
    if (kept[0] !== oldest || kept.some((seq, i) => seq !== oldest + i)) throw new Error(`held ${kept.join()} from ${oldest}, not gap-free`)
    const reopened = await openJetStreamLog(t, cluster, { stream, replicas: 1 })
    const want = [['default', defaultAt], ...places.map((place, i) => [`c${i}`, place])].sort((x, y) => x[0] < y[0] ? -1 : 1)
    const got = reopened.consumers.list().map(c => [c.name, c.checkpoint])
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`reopened with ${JSON.stringify(got)}, not ${JSON.stringify(want)}`)
    if (reopened.consumers.list().some(c => c.passedByRetention)) throw new Error('retention passed a consumer')
    return true
  }), { numRuns: 8 })
})

t.test('idempotency keys hold across instances: a retry on the other instance is answered with the first write\'s seq, other content there is 422', async t => {
  await fc.assert(fc.asyncProperty(fc.array(entry, { minLength: 1, maxLength: 4 }), fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map(c => String.fromCharCode(c)), minLength: 1, maxLength: 255 }), async (sent, key) => {
    const stream = freshStreamName()
    const a = await openJetStreamLog(t, cluster, { stream })
    const b = await openJetStreamLog(t, cluster, { stream })
    const batch = sent as EntryInput[]
    const first = await a.appendBatchWith(batch, { idempotencyKey: key })
    const retried = await b.appendBatchWith(batch, { idempotencyKey: key, expectedLastSeq: 0 })
    if (!retried.replayed || retried.seq !== first.seq) throw new Error(`the retry on b: ${JSON.stringify(retried)}`)
    const other = await b.appendWith({ op: 'delete', id: 'other' }, { idempotencyKey: key }).then(() => undefined, (err: { code?: string }) => err.code)
    if (other !== 'WAL_IDEMPOTENCY_KEY_REUSED') throw new Error(`other content on b: ${String(other)}`)
    if ((await records(b)).length !== 1) throw new Error('more than one record')
    return true
  }), { numRuns: 5 })
})

t.test('a keyed retry whose first write retention purged, inside the duplicate window, is 410: its content can no longer be compared', async t => {
  const log = await openJetStreamLog(t, cluster)
  const e: EntryInput = { op: 'delete', id: 'once' }
  await log.appendWith(e, { idempotencyKey: 'k' })
  await log.append({ op: 'delete', id: 'later' })
  await log.checkpoint(2)
  await t.rejects(log.appendWith(e, { idempotencyKey: 'k' }), { code: 'WAL_RANGE_GONE' })
  t.equal(log.lastSeq, 3, 'nothing was written')
})

t.test('a follower on one instance gets what the other writes, once each, in order, and ends at its signal', async t => {
  const stream = freshStreamName()
  const a = await openJetStreamLog(t, cluster, { stream })
  const b = await openJetStreamLog(t, cluster, { stream })
  const abort = new AbortController()
  const read = b.read({ after: 0, follow: true, signal: abort.signal })
  const seqs: number[] = []
  const following = (async () => { for await (const record of read.records) seqs.push(record.seq) })()
  const written = await Promise.all(Array.from({ length: 25 }, async (_, i) => await a.append({ op: 'delete', id: `f${i}` })))
  t.ok(await eventually(() => seqs.length === written.length), 'every record reached the follower')
  t.ok(await eventually(() => read.caughtUp()), 'then it is caught up')
  abort.abort()
  await following
  t.same(seqs, Array.from({ length: 25 }, (_, i) => i + 1))
})
