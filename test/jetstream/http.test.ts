// The HTTP contract on the JetStream backend: suites written for any backend (transactions,
// msgpack bodies and reads, idempotency keys and conditional appends, consumers, follow reads) run
// here against services on a 3-node cluster on 127.0.0.1, each on a fresh R3 stream (onJetStream
// marks where the backends rightly differ: a key past the instance's cap, segment rotation,
// VECWAL_RETAIN_MAX_BYTES, the failed state); then what differs on this backend: the status
// (no segments, durability quorum), retention by purge (410 below the checkpoint); followers and
// consumers served by either of two instances.
import fc from 'fast-check'
import t from 'tap'
import { LogStatusSchema } from '../../src/log.js'
import { asStored, assertError, lastSeq, ndjson, recoverAll, sampleEntry, startTestService, useJetStream } from '../helpers/http.js'
import { deleteStream, freshStreamName, startNatsCluster } from '../helpers/nats-cluster.js'
import { ACCEPT, holds, openStream, parseFollowed, type FollowForm } from '../helpers/follow.js'
import { entry, entryBody } from '../helpers/bodies.js'

const cluster = await startNatsCluster(t)
useJetStream(cluster.servers)

await import('../http/transactions.test.js')
await import('../http/msgpack.test.js')
await import('../http/idempotency.test.js')
await import('../http/consumers.test.js')
await import('../http/follow.test.js')

t.test('GET /v1/status on JetStream: the documented fields, no segments, durability quorum, bytes of the stream', async t => {
  const service = await startTestService(t)
  for (let i = 0; i < 3; i++) t.equal((await service.call('POST', '/v1/entries', sampleEntry(i))).status, 201)
  const status = await (await service.call('GET', '/v1/status')).json() as Record<string, unknown>
  t.same(Object.keys(status).sort(), Object.keys(LogStatusSchema.properties).filter(k => k !== 'segments' && k !== 'freeBytes').sort())
  t.match(status, { lastSeq: 3, checkpoint: 0, state: 'ok', durability: 'quorum', queuedBytes: 0, openTransactions: 0, diskFull: false })
})

t.test('a checkpoint purges the stream below it: the stream starts after it, and 410 before it', async t => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 1, max: 11 }), async (count, at) => {
    const checkpointAt = Math.min(at, count - 1)
    const service = await startTestService(t)
    const posted = Array.from({ length: count }, (_, i) => sampleEntry(i))
    for (const entry of posted) await service.call('POST', '/v1/entries', entry)
    const checkpoint = await service.call('POST', '/v1/checkpoints', { seq: checkpointAt })
    const result = await checkpoint.json() as { checkpoint: number, seq: number, deletedSegments: number }
    if (checkpoint.status !== 201 || result.checkpoint !== checkpointAt || result.seq !== count + 1) throw new Error(`checkpoint answered ${JSON.stringify(result)}`)
    if (result.deletedSegments !== checkpointAt) throw new Error(`purged ${result.deletedSegments} messages, not ${checkpointAt}`)
    const lines = await ndjson(await service.call('GET', '/v1/recovery'))
    if (JSON.stringify(lines.map(l => l.seq)) !== JSON.stringify(posted.slice(checkpointAt).map((_, i) => checkpointAt + 1 + i))) throw new Error('the stream does not start after the checkpoint')
    lines.forEach((line, i) => {
      const { seq, timestamp, ...entry } = line
      if (typeof timestamp !== 'number') throw new Error('no timestamp')
      // The line prints each float32 in its shortest decimal: compared as float32 again.
      const read = Array.isArray(entry.vector) ? { ...entry, vector: (entry.vector as number[]).map(v => Math.fround(v)) } : entry
      if (JSON.stringify(read) !== JSON.stringify(asStored(posted[checkpointAt + i]))) throw new Error(`seq ${String(seq)} reads back otherwise`)
    })
    if (checkpointAt >= 2) await assertError(t, await service.call('GET', `/v1/recovery?after=${checkpointAt - 2}`), 410, 'WAL_RANGE_GONE')
    await service.stop()
    return true
  }), { numRuns: 4 })
})

t.test('two services on one stream: each serves the other\'s writes and checkpoint, seqs shared and gap-free', async t => {
  const stream = freshStreamName()
  t.teardown(async () => { await deleteStream(cluster.servers, stream) })
  const first = await startTestService(t, { VECWAL_NATS_STREAM: stream })
  const second = await startTestService(t, { VECWAL_NATS_STREAM: stream })
  const posted = Array.from({ length: 8 }, (_, i) => sampleEntry(i))
  const seqs = await Promise.all(posted.map(async (entry, i) => {
    const response = await (i % 2 === 0 ? first : second).call('POST', '/v1/entries', entry)
    return ((await response.json()) as { seq: number }).seq
  }))
  t.same([...seqs].sort((a, b) => a - b), posted.map((_, i) => i + 1), 'one run of seqs across both')
  for (const service of [first, second]) {
    // Another instance's writes show once its state poll (every second) has seen them.
    for (let i = 0; i < 50 && await lastSeq(service) < posted.length; i++) await new Promise(resolve => setTimeout(resolve, 100))
    t.same((await recoverAll(service)).map(l => l.id), seqs.map((_, i) => posted[seqs.indexOf(i + 1)].id), 'either reads every entry in seq order')
  }
  t.equal((await first.call('POST', '/v1/checkpoints', { seq: 4 })).status, 201)
  await assertError(t, await second.call('POST', '/v1/checkpoints', { seq: 3 }), 409, 'WAL_CHECKPOINT_BACKWARDS')
  t.equal(second.log.status().checkpoint, 4, 'the other service learnt the checkpoint it was refused by')
})

t.test('a transaction stays on the instance that began it: another answers 404 WAL_TX_NOT_FOUND on every route of it, and the first then commits it', async t => {
  const stream = freshStreamName()
  t.teardown(async () => { await deleteStream(cluster.servers, stream) })
  const first = await startTestService(t, { VECWAL_NATS_STREAM: stream })
  const second = await startTestService(t, { VECWAL_NATS_STREAM: stream })
  const { txId } = await (await first.call('POST', '/v1/transactions')).json() as { txId: string }
  const staged = [sampleEntry(0), sampleEntry(1), sampleEntry(4)]
  for (const entry of staged) t.equal((await first.call('POST', `/v1/transactions/${txId}/entries`, entry)).status, 202)
  for (const route of ['entries', 'commit', 'abort']) {
    await assertError(t, await second.call('POST', `/v1/transactions/${txId}/${route}`, route === 'entries' ? sampleEntry(2) : undefined), 404, 'WAL_TX_NOT_FOUND', txId)
  }
  t.equal(await lastSeq(second), 0, 'the other instance wrote nothing')
  const committed = await first.call('POST', `/v1/transactions/${txId}/commit`)
  t.equal(committed.status, 201, 'the instance that began it commits it, the other\'s abort notwithstanding')
  t.same(await committed.json(), { seq: 1, count: staged.length }, 'with what it staged, the other\'s refused entry not among it')
  // The other instance sees the commit once its state poll (every second) has.
  for (let i = 0; i < 50 && await lastSeq(second) < 1; i++) await new Promise(resolve => setTimeout(resolve, 100))
  const lines = await recoverAll(second)
  t.same(lines.map(l => [l.seq, l.op, l.txId]), [[1, 'batch', txId]], 'either instance reads the committed transaction as one batch record')
  t.same((lines[0].entries as Array<Record<string, unknown>>).map(e => e.id), staged.map(e => e.id))
})

t.test('any instance serves any follower: followers of each form on one service get every record written on the other, once, in order, then a shutdown line', async t => {
  const stream = freshStreamName()
  t.teardown(async () => { await deleteStream(cluster.servers, stream) })
  const writer = await startTestService(t, { VECWAL_NATS_STREAM: stream })
  const reader = await startTestService(t, { VECWAL_NATS_STREAM: stream, VECWAL_HEARTBEAT_MS: '50' })
  const forms: FollowForm[] = ['ndjson', 'msgpack', 'sse']
  const followers = await Promise.all(forms.map(async form => await openStream(reader.url, '/v1/recovery?after=0&follow=true', { accept: ACCEPT[form] })))
  const posted = fc.sample(entry, { numRuns: 30, seed: 1414 })
  await Promise.all([0, 1, 2].map(async w => {
    for (let i = w; i < posted.length; i += 3) t.equal((await writer.call('POST', '/v1/entries', entryBody(posted[i], 'json', keys => keys).toString())).status, 201)
  }))
  const expected = await recoverAll(writer, 0)
  await Promise.all(forms.map(async (form, i) => { await followers[i].until(holds(form, posted.length)) }))
  await reader.stop()
  for (const [i, form] of forms.entries()) {
    const got = parseFollowed(form, await followers[i].ended)
    t.same(got.records.map(r => r.seq), expected.map(r => r.seq), `${form}: every seq once, in order`)
    t.same(got.end, { end: 'shutdown' }, `${form}: the last line says the server stopped`)
  }
})

t.test('a consumer made on one service is checkpointed and read on the other; the rules hold across them', async t => {
  const stream = freshStreamName()
  t.teardown(async () => { await deleteStream(cluster.servers, stream) })
  const first = await startTestService(t, { VECWAL_NATS_STREAM: stream })
  const second = await startTestService(t, { VECWAL_NATS_STREAM: stream })
  for (let i = 0; i < 6; i++) t.equal((await first.call('POST', '/v1/entries', sampleEntry(i))).status, 201)
  t.equal((await first.call('PUT', '/v1/consumers/index-a', { after: 2 })).status, 201)
  const moved = await second.call('POST', '/v1/consumers/index-a/checkpoint', { seq: 4 })
  t.equal(moved.status, 201, 'the other service checkpoints it at once')
  await assertError(t, await first.call('POST', '/v1/consumers/index-a/checkpoint', { seq: 3 }), 409, 'WAL_CHECKPOINT_BACKWARDS')
  const lines = await ndjson(await first.call('GET', '/v1/recovery?consumer=index-a'))
  t.same(lines.map(l => l.seq), [5, 6], 'a read for it starts after the checkpoint the other service took')
})
