// Named consumers over HTTP, on a real server: create, list, read one, delete, checkpoint, with
// their answers and refusals; recovery from a consumer's checkpoint and by time; the metrics; and
// consumers that survive a kill -9 and the byte cap passing a stalled one, on a real child process.
import fc from 'fast-check'
import t from 'tap'
import { startChild } from '../helpers/child-service.js'
import { assertError, ndjson, onJetStream, startTestService, type TestService } from '../helpers/http.js'
import { batchBody, entry, entryBody } from '../helpers/bodies.js'

/** Keys in the order written. */
const asWritten = (keys: string[]): string[] => keys
import { scrape, value } from '../helpers/metrics-scrape.js'
import { tempDir } from '../helpers/wal.js'

const consumerKeys = ['checkpoint', 'checkpointedAt', 'lagBytes', 'lagSeqs', 'name', 'passedByRetention', 'start']

async function json (response: Response): Promise<Record<string, unknown>> {
  return await response.json() as Record<string, unknown>
}

async function appendSome (call: TestService['call'], count: number): Promise<void> {
  for (const e of fc.sample(entry, count)) {
    const response = await call('POST', '/v1/entries', entryBody(e, 'json', asWritten))
    if (response.status !== 201) throw new Error(`append answered ${response.status}: ${await response.text()}`)
  }
}

t.test('consumer routes: create (201, 200 no change, 409), list, get, checkpoint (201, 409 back or ahead), delete (204), 404 and 400', async t => {
  const service = await startTestService(t)
  const { call } = service
  await appendSome(call, 6)
  const created = await call('PUT', '/v1/consumers/index-a', { after: 2 })
  t.equal(created.status, 201)
  const body = await json(created)
  t.same(Object.keys(body).sort(), consumerKeys)
  t.match(body, { name: 'index-a', checkpoint: 2, start: 2, lagSeqs: 4, checkpointedAt: null, passedByRetention: false })
  t.ok((body.lagBytes as number) > 0, 'it lags by bytes too')
  t.equal((await call('PUT', '/v1/consumers/index-a', { after: 2 })).status, 200, 'the same start again: no change')
  t.equal((await call('PUT', '/v1/consumers/index-a')).status, 200, 'no start: no change')
  await assertError(t, await call('PUT', '/v1/consumers/index-a', { after: 3 }), 409, 'WAL_CONSUMER_EXISTS', /index-a/)
  await assertError(t, await call('PUT', '/v1/consumers/bad%20name', {}), 400, 'HTTP_INVALID_REQUEST', /name/)
  await assertError(t, await call('PUT', '/v1/consumers/late', { after: 99 }), 416, 'WAL_RANGE_AHEAD')
  await assertError(t, await call('PUT', '/v1/consumers/x', { start: 1 }), 400, 'HTTP_INVALID_REQUEST', /start/)
  await assertError(t, await call('GET', '/v1/consumers/nobody'), 404, 'WAL_CONSUMER_NOT_FOUND', /nobody/)

  const moved = await call('POST', '/v1/consumers/index-a/checkpoint', { seq: 4 })
  t.equal(moved.status, 201)
  // The engine never deletes the segment being written; JetStream purges every message below the lowest checkpoint at once.
  t.match(await json(moved), { checkpoint: 4, deletedSegments: onJetStream() ? 4 : 0 })
  await assertError(t, await call('POST', '/v1/consumers/index-a/checkpoint', { seq: 3 }), 409, 'WAL_CHECKPOINT_BACKWARDS')
  await assertError(t, await call('POST', '/v1/consumers/index-a/checkpoint', { seq: 1000 }), 409, 'WAL_CHECKPOINT_AHEAD')
  await assertError(t, await call('POST', '/v1/consumers/nobody/checkpoint', {}), 404, 'WAL_CONSUMER_NOT_FOUND')
  const got = await json(await call('GET', '/v1/consumers/index-a'))
  t.match(got, { checkpoint: 4 })
  t.ok(typeof got.checkpointedAt === 'string' && !Number.isNaN(Date.parse(got.checkpointedAt)), 'its checkpoint time is RFC 3339')

  t.equal((await call('POST', '/v1/checkpoints', { seq: 1 })).status, 201, 'POST /v1/checkpoints moves the consumer default')
  const list = await json(await call('GET', '/v1/consumers'))
  t.same((list.consumers as Array<Record<string, unknown>>).map(c => [c.name, c.checkpoint]), [['default', 1], ['index-a', 4]])
  t.equal(((await json(await call('GET', '/v1/status'))).checkpoint), 1, 'the status checkpoint stays the default\'s')

  const recovery = await call('GET', '/v1/recovery?consumer=index-a')
  t.equal(recovery.headers.get('x-vecwal-checkpoint'), '4')
  t.same((await ndjson(recovery)).map(r => r.seq), [5, 6], 'recovery for a consumer starts after its checkpoint')
  await assertError(t, await call('GET', '/v1/recovery?consumer=nobody'), 404, 'WAL_CONSUMER_NOT_FOUND')

  const s = await scrape(service)
  t.equal(value(s, 'vecwal_consumer_checkpoint_seq', { consumer: 'index-a' }), 4)
  t.equal(value(s, 'vecwal_consumer_lag_seqs', { consumer: 'index-a' }), (await json(await call('GET', '/v1/consumers/index-a'))).lagSeqs)
  t.ok(value(s, 'vecwal_consumer_lag_bytes', { consumer: 'index-a' }) > 0)
  t.equal(value(s, 'vecwal_consumer_passed_by_retention', { consumer: 'index-a' }), 0)
  t.ok(s.samples.some(x => x.name === 'vecwal_consumer_passed_by_retention' && x.labels.consumer === 'index-a'), 'the series exists')

  t.equal((await call('DELETE', '/v1/consumers/index-a')).status, 204)
  await assertError(t, await call('DELETE', '/v1/consumers/index-a'), 404, 'WAL_CONSUMER_NOT_FOUND')
  t.notOk((await scrape(service)).samples.some(x => x.labels.consumer === 'index-a'), 'a deleted consumer\'s series go with it')
})

t.test('recovery since: RFC 3339 or epoch ms, only the records stamped at or after it', async t => {
  const { call } = await startTestService(t)
  await appendSome(call, 4)
  const all = await ndjson(await call('GET', '/v1/recovery?after=0'))
  const since = all[2].timestamp as number
  const want = all.filter(r => (r.timestamp as number) >= since).map(r => r.seq)
  t.same((await ndjson(await call('GET', `/v1/recovery?since=${since}`))).map(r => r.seq), want, 'epoch ms')
  t.same((await ndjson(await call('GET', `/v1/recovery?since=${new Date(since).toISOString()}`))).map(r => r.seq), want, 'RFC 3339')
  t.same((await ndjson(await call('GET', `/v1/recovery?since=${since + 3_600_000}`))).length, 0, 'a moment after every record: nothing')
  await assertError(t, await call('GET', '/v1/recovery?since=yesterday'), 400, 'HTTP_INVALID_REQUEST', /since/)
  await assertError(t, await call('GET', '/v1/recovery?since=2026-13-01T00:00:00Z'), 400, 'HTTP_INVALID_REQUEST', /since/)
})

t.test('three consumers at different places, one stalled past VECWAL_RETAIN_MAX_BYTES; all survive a kill -9', { skip: onJetStream() ? 'the JetStream backend refuses VECWAL_RETAIN_MAX_BYTES (test/jetstream/config.test.ts); its retention: test/jetstream/log.test.ts' : false }, async t => {
  const dataDir = tempDir(t)
  const env = { VECWAL_SEGMENT_BYTES: '4096', VECWAL_RETAIN_MAX_BYTES: String(32 * 1024), VECWAL_LOG_LEVEL: 'info' }
  let child = await startChild({ dataDir, env })
  t.teardown(async () => { await child.kill9() })
  const call = async (method: string, route: string, body?: unknown): Promise<Response> => await fetch(child.url + route, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  for (const name of ['stalled', 'middle', 'ahead']) t.equal((await call('PUT', `/v1/consumers/${name}`, {})).status, 201)
  const batch = async (): Promise<void> => {
    const response = await fetch(child.url + '/v1/batch', { method: 'POST', headers: { 'content-type': 'application/json' }, body: batchBody(fc.sample(entry, 20), 'json', asWritten) })
    if (response.status !== 201) throw new Error(`batch answered ${response.status}`)
  }
  const status = async (): Promise<{ lastSeq: number, bytes: number, segments: Array<{ firstSeq: number }> }> => await (await call('GET', '/v1/status')).json() as never
  // Below the cap: retention waits for the lowest checkpoint.
  while ((await status()).bytes < 16 * 1024) await batch()
  t.equal((await call('POST', '/v1/consumers/ahead/checkpoint', {})).status, 201)
  t.equal((await status()).segments[0].firstSeq, 1, 'nothing is deleted while stalled is at 0')
  // Past it: the oldest segments go, past stalled; middle keeps checkpointing close behind.
  // Until retention has passed stalled, and a few batches more (bounded, whatever the entries' sizes).
  let more = 5
  for (let round = 0; round < 400 && more > 0; round++) {
    await batch()
    const current = await status()
    if (current.segments[0].firstSeq > 1) more--
    const moved = await call('POST', '/v1/consumers/middle/checkpoint', { seq: current.lastSeq - 5 })
    if (moved.status !== 201) throw new Error(`middle's checkpoint answered ${moved.status}`)
  }
  t.equal((await call('POST', '/v1/consumers/ahead/checkpoint', {})).status, 201)
  const { segments, bytes } = await status()
  const oldest = segments[0].firstSeq
  t.ok(oldest > 1, `retention deleted past stalled: the oldest seq held is ${oldest}`)
  t.ok(bytes <= 32 * 1024 + 2 * 4096, `the log holds ${bytes} bytes, about the cap`)
  const consumers = (await (await call('GET', '/v1/consumers')).json() as { consumers: Array<Record<string, unknown>> }).consumers
  t.same(consumers.map(c => [c.name, c.passedByRetention]), [['ahead', false], ['middle', false], ['stalled', true]])
  t.match(consumers.find(c => c.name === 'stalled'), { checkpoint: 0 }, 'stalled keeps its checkpoint, so it can tell')
  const gone = await call('GET', '/v1/recovery?consumer=stalled')
  t.equal(gone.status, 410)
  t.match(await gone.json(), { code: 'WAL_RANGE_GONE', message: new RegExp(`oldest retained seq is ${oldest}\\b`) }, '410 names the oldest seq held')
  const metrics = await (await call('GET', '/metrics')).text()
  t.match(metrics, /vecwal_consumer_passed_by_retention\{consumer="stalled"\} 1/)
  t.match(child.output, /retention passed a consumer/, 'a warning is logged')

  await child.kill9()
  child = await startChild({ dataDir, env })
  const after = (await (await call('GET', '/v1/consumers')).json() as { consumers: Array<Record<string, unknown>> }).consumers
  t.same(after.map(c => [c.name, c.checkpoint, c.start, c.checkpointedAt, c.passedByRetention]),
    consumers.map(c => [c.name, c.checkpoint, c.start, c.checkpointedAt, c.passedByRetention]), 'every consumer survives the kill -9 as it was')
})
