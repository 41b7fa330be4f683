// Every route's success and error paths against a real service on 127.0.0.1 and a real data directory.
import t from 'tap'
import { LogStatusSchema } from '../../src/log.js'
import {
  assertError, failingIO, gatedIO, lastSeq, ndjson, onJetStream, recoverAll, sampleEntry, startTestService
} from '../helpers/http.js'

const insert = (id: string, vector: number[] = [0.5, 1], metadata?: Record<string, string>): Record<string, unknown> =>
  metadata === undefined ? { op: 'insert', id, vector } : { op: 'insert', id, vector, metadata }

t.test('POST /v1/entries answers 201 {seq} for each op, seqs in order', async t => {
  const service = await startTestService(t)
  const bodies = [insert('a', [0.5, 1], { k: 'v' }), { op: 'update', id: 'a', vector: [2, 3] }, { op: 'delete', id: 'a' }]
  for (const [i, body] of bodies.entries()) {
    const response = await service.call('POST', '/v1/entries', body)
    t.equal(response.status, 201)
    t.match(response.headers.get('content-type'), /^application\/json/)
    t.same(await response.json(), { seq: i + 1 }, `${String(body.op)} gets seq ${i + 1}`)
  }
  const lines = await recoverAll(service)
  t.same(lines.map(l => [l.seq, l.op, l.id]), [[1, 'insert', 'a'], [2, 'update', 'a'], [3, 'delete', 'a']])
})

t.test('POST /v1/batch answers 201 {seq,count}: one record, one seq', async t => {
  const service = await startTestService(t)
  const entries = [insert('a'), insert('b'), { op: 'delete', id: 'a' }]
  const response = await service.call('POST', '/v1/batch', { entries })
  t.equal(response.status, 201)
  t.same(await response.json(), { seq: 1, count: 3 })
  const next = await service.call('POST', '/v1/entries', insert('c'))
  t.same(await next.json(), { seq: 2 }, 'the batch took one seq only')
  const lines = await recoverAll(service)
  t.equal(lines.length, 2)
  t.equal(lines[0].op, 'batch')
  t.same((lines[0].entries as unknown[]).map(e => (e as { id: string }).id), ['a', 'b', 'a'])
  t.notOk('txId' in lines[0], 'a plain batch carries no txId')
})

t.test('POST /v1/checkpoints', async t => {
  t.test('with no body at all, or {}, checkpoints the last seq', async t => {
    const service = await startTestService(t)
    for (let i = 0; i < 3; i++) await service.call('POST', '/v1/entries', insert(`a${i}`))
    const bare = await service.call('POST', '/v1/checkpoints')
    t.equal(bare.status, 201)
    // On JetStream deletedSegments counts the messages purged: those below the checkpoint but the
    // last entry record (README: The JetStream backend, Retention); the engine's one open segment stays.
    t.same(await bare.json(), { checkpoint: 3, seq: 4, deletedSegments: onJetStream() ? 2 : 0 }, 'the checkpoint record takes the next seq')
    const empty = await service.call('POST', '/v1/checkpoints', {})
    t.equal(empty.status, 201)
    t.same(await empty.json(), { checkpoint: 4, seq: 5, deletedSegments: 0 }, 'default: the last seq, now the previous checkpoint record')
    const status = await (await service.call('GET', '/v1/status')).json() as { checkpoint: number, lastSeq: number }
    t.equal(status.checkpoint, 4)
    t.equal(status.lastSeq, 5)
  })

  t.test('an explicit seq; 409 when it moves back or passes the last seq', async t => {
    const service = await startTestService(t)
    for (let i = 0; i < 5; i++) await service.call('POST', '/v1/entries', insert(`a${i}`))
    const at3 = await service.call('POST', '/v1/checkpoints', { seq: 3 })
    t.equal(at3.status, 201)
    t.same(await at3.json(), { checkpoint: 3, seq: 6, deletedSegments: onJetStream() ? 3 : 0 })
    const same = await service.call('POST', '/v1/checkpoints', { seq: 3 })
    t.equal(same.status, 201, 'the same checkpoint again is not a move back')

    await assertError(t, await service.call('POST', '/v1/checkpoints', { seq: 2 }), 409, 'WAL_CHECKPOINT_BACKWARDS', /\b2\b.*\b3\b/)
    const last = await lastSeq(service)
    await assertError(t, await service.call('POST', '/v1/checkpoints', { seq: last + 1 }), 409, 'WAL_CHECKPOINT_AHEAD', new RegExp(`${last + 1}`))
    t.equal(await lastSeq(service), last, 'a refused checkpoint writes nothing')
    const status = await (await service.call('GET', '/v1/status')).json() as { checkpoint: number }
    t.equal(status.checkpoint, 3)
  })
})

t.test('GET /v1/recovery', async t => {
  t.test('headers, NDJSON, after defaults to the last checkpoint, limit', async t => {
    const service = await startTestService(t)
    for (let i = 0; i < 5; i++) await service.call('POST', '/v1/entries', insert(`a${i}`))
    // Read from the start before the checkpoint: on JetStream a checkpoint purges what it covers.
    const all = await service.call('GET', '/v1/recovery?after=0')
    t.same((await ndjson(all)).map(l => l.id), ['a0', 'a1', 'a2', 'a3', 'a4'])
    const limited = await service.call('GET', '/v1/recovery?after=1&limit=2')
    t.equal(limited.status, 200)
    t.same((await ndjson(limited)).map(l => l.seq), [2, 3])
    await service.call('POST', '/v1/checkpoints', { seq: 3 })

    const response = await service.call('GET', '/v1/recovery')
    t.equal(response.status, 200)
    t.match(response.headers.get('content-type'), /^application\/x-ndjson/)
    t.equal(response.headers.get('x-vecwal-checkpoint'), '3')
    t.equal(response.headers.get('x-vecwal-last-seq'), '6', 'the checkpoint record is the last seq')
    t.same((await ndjson(response)).map(l => l.seq), [4, 5], 'after the checkpoint, the checkpoint record left out')
    const atEnd = await service.call('GET', '/v1/recovery?after=6')
    t.equal(atEnd.status, 200)
    t.equal(await atEnd.text(), '', 'after the last seq: nothing, but no error')
  })

  t.test('416 past the last seq', async t => {
    const service = await startTestService(t)
    await service.call('POST', '/v1/entries', insert('a'))
    await assertError(t, await service.call('GET', '/v1/recovery?after=2'), 416, 'WAL_RANGE_AHEAD', /\b2\b.*\b1\b/)
  })

  t.test('410 once retention deleted the segments asked for', async t => {
    const service = await startTestService(t, { VECWAL_SEGMENT_BYTES: '4096' })
    for (let round = 0; round < 4; round++) {
      await Promise.all(Array.from({ length: 15 }, (_, i) => service.call('POST', '/v1/entries', insert(`r${round}-${i}`, Array.from({ length: 32 }, (_, d) => d)))))
    }
    const before = await (await service.call('GET', '/v1/status')).json() as { segments?: unknown[], lastSeq: number }
    // JetStream has no segments: its retention purges messages, which deletedSegments then counts.
    if (!onJetStream()) t.ok((before.segments?.length ?? 0) >= 3, `rotated into ${before.segments?.length ?? 0} segments`)
    const checkpoint = await service.call('POST', '/v1/checkpoints')
    const result = await checkpoint.json() as { deletedSegments: number }
    t.ok(result.deletedSegments >= 2, `the checkpoint deleted ${result.deletedSegments} segments`)
    await assertError(t, await service.call('GET', '/v1/recovery?after=0'), 410, 'WAL_RANGE_GONE', /oldest retained seq/)
    const after = await service.call('GET', `/v1/recovery?after=${before.lastSeq}`)
    t.equal(after.status, 200, 'from the checkpoint on, the log still reads')
    t.same(await ndjson(after), [], 'only the checkpoint record follows, and it is left out')
  })
})

t.test('GET /v1/status has exactly the documented fields', { skip: onJetStream() ? 'segments, freeBytes and durability none are the segment engine\'s (the JetStream status: test/jetstream/http.test.ts)' : false }, async t => {
  const service = await startTestService(t, { VECWAL_DURABILITY: 'none' })
  await service.call('POST', '/v1/entries', insert('a'))
  await service.call('POST', '/v1/checkpoints', { seq: 1 })
  const response = await service.call('GET', '/v1/status')
  t.equal(response.status, 200)
  const status = await response.json() as Record<string, unknown>
  t.same(Object.keys(status).sort(), Object.keys(LogStatusSchema.properties).sort(), 'every field of the status schema, no other')
  t.match(status, { lastSeq: 2, checkpoint: 1, state: 'ok', durability: 'none', queuedBytes: 0, openTransactions: 0, diskFull: false })
  const segments = status.segments as Array<Record<string, unknown>>
  t.equal(segments.length, 1)
  t.same(Object.keys(segments[0]).sort(), ['bytes', 'firstSeq', 'lastSeq', 'name'])
  t.match(segments[0], { firstSeq: 1, lastSeq: 2, name: String })
  t.ok((segments[0].bytes as number) > 0)
  t.equal(status.bytes, segments[0].bytes, 'bytes sums the segments')
})

t.test('health, metrics, OpenAPI and docs answer 200', async t => {
  const service = await startTestService(t)
  const live = await service.call('GET', '/health/live')
  t.equal(live.status, 200)
  t.same(await live.json(), { status: 'ok' })
  const ready = await service.call('GET', '/health/ready')
  t.equal(ready.status, 200)
  t.same(await ready.json(), { status: 'ok' })
  const metrics = await service.call('GET', '/metrics')
  t.equal(metrics.status, 200)
  t.match(metrics.headers.get('content-type'), /^text\/plain/)
  t.match(await metrics.text(), /^# HELP vecwal_last_seq /m)
  const openapi = await service.call('GET', '/openapi.json')
  t.equal(openapi.status, 200)
  t.match(await openapi.json(), { openapi: /^3\.1\./, paths: { '/v1/entries': Object } })
  const docs = await service.call('GET', '/docs')
  t.equal(docs.status, 200)
  t.match(docs.headers.get('content-type'), /^text\/html/)
  t.match(await docs.text(), /<html/i)
})

t.test('an unknown route or method is 404 HTTP_NOT_FOUND in the error shape', async t => {
  const service = await startTestService(t)
  await assertError(t, await service.call('GET', '/v1/nothing'), 404, 'HTTP_NOT_FOUND', '/v1/nothing')
  await assertError(t, await service.call('GET', '/v1/entries'), 404, 'HTTP_NOT_FOUND', 'GET /v1/entries')
  await assertError(t, await service.call('DELETE', '/v1/status'), 404, 'HTTP_NOT_FOUND', 'DELETE /v1/status')
})

t.test('a failed log: not ready, 503 on every write, state failed', { skip: onJetStream() ? 'a failing fdatasync (failingIO) is the segment engine\'s file layer; the JetStream backend has no failed state (test/jetstream/faults.test.ts)' : false }, async t => {
  const { io, fail } = failingIO()
  const service = await startTestService(t, {}, undefined, { io })
  t.equal((await service.call('POST', '/v1/entries', insert('a'))).status, 201)
  const { txId } = await (await service.call('POST', '/v1/transactions')).json() as { txId: string }
  t.equal((await service.call('POST', `/v1/transactions/${txId}/entries`, insert('e'))).status, 202)
  fail()
  const failedWrite = await service.call('POST', '/v1/entries', insert('b'))
  await assertError(t, failedWrite, 503, 'WAL_FAILED')

  const ready = await service.call('GET', '/health/ready')
  t.equal(ready.status, 503)
  t.same(await ready.json(), { status: 'failed' })
  t.equal((await service.call('GET', '/health/live')).status, 200, 'the process is still up')
  const status = await (await service.call('GET', '/v1/status')).json() as { state: string, lastSeq: number }
  t.equal(status.state, 'failed')
  t.equal(status.lastSeq, 1, 'nothing past the failure counts as written')

  await assertError(t, await service.call('POST', '/v1/entries', insert('c')), 503, 'WAL_FAILED')
  await assertError(t, await service.call('POST', '/v1/batch', { entries: [insert('d')] }), 503, 'WAL_FAILED')
  await assertError(t, await service.call('POST', '/v1/checkpoints', { seq: 1 }), 503, 'WAL_FAILED')
  await assertError(t, await service.call('POST', `/v1/transactions/${txId}/commit`), 503, 'WAL_FAILED')
  t.match(await (await service.call('GET', '/metrics')).text(), /^vecwal_failed 1$/m, 'the failed gauge says so')
})

t.test('a full write queue: 503 WAL_QUEUE_FULL with Retry-After, then writes flow again', { skip: onJetStream() ? 'holding the fsync (gatedIO) is the segment engine\'s file layer; JetStream\'s queue limit on publishes in flight: test/jetstream/log.test.ts' : false }, async t => {
  const { io, hold, release } = gatedIO()
  const service = await startTestService(t, { VECWAL_QUEUE_LIMIT_BYTES: '4096' }, undefined, { io })
  hold()
  const vector = Array.from({ length: 128 }, (_, d) => d)
  const pending = Array.from({ length: 20 }, async (_, i) => await service.call('POST', '/v1/entries', insert(`q${i}`, vector)))
  const refused: Response[] = []
  const settled: Array<Promise<Response>> = []
  for (const p of pending) settled.push(p.then(r => { if (r.status === 503) refused.push(r); return r }))
  // The accepted writes wait on the held fsync; the refused ones answer at once.
  for (let waited = 0; waited < 200 && refused.length === 0; waited++) await new Promise(resolve => setTimeout(resolve, 10))
  release()
  t.ok(refused.length > 0, 'writes past the queue limit are refused while the fsync is held')
  const first = refused[0]
  t.equal(first.headers.get('retry-after'), '1')
  await assertError(t, first, 503, 'WAL_QUEUE_FULL', /4096/)
  const responses = await Promise.all(settled)
  const accepted = responses.filter(r => r.status === 201)
  t.ok(accepted.length > 0, `${accepted.length} writes were accepted and answered once synced`)
  t.equal(accepted.length + refused.length, responses.length, 'every write was accepted or refused with 503')
  t.equal(await lastSeq(service), accepted.length, 'exactly the accepted writes are in the log')
  t.equal((await service.call('POST', '/v1/entries', sampleEntry(0))).status, 201, 'once drained, writes are accepted again')
})

t.test('media types match with parameters and in any case', async t => {
  const service = await startTestService(t)
  const body = JSON.stringify(insert('a'))
  for (const type of ['application/json; charset=utf-8', 'Application/JSON']) {
    t.equal((await service.call('POST', '/v1/entries', body, { 'content-type': type })).status, 201, type)
  }
  await assertError(t, await service.call('POST', '/v1/entries', body, { 'content-type': 'application/vnd.api+json' }), 415, 'HTTP_UNSUPPORTED_MEDIA_TYPE', 'application/vnd.api+json')
  t.equal(await lastSeq(service), 2)
})
