// Transactions over HTTP: staging counts, commit as one batch record carrying the txId, abort and
// expiry leaving nothing, and 404 on every transaction route once a txId is done with.
import t, { type Test } from 'tap'
import { assertError, lastSeq, recoverAll, startTestService, type TestService } from '../helpers/http.js'

const insert = (id: string, vector: number[] = [0.25, 0.5]): Record<string, unknown> => ({ op: 'insert', id, vector })

async function open (service: TestService): Promise<string> {
  const response = await service.call('POST', '/v1/transactions')
  if (response.status !== 201) throw new Error(`opening a transaction answered ${response.status}`)
  return ((await response.json()) as { txId: string }).txId
}

async function stage (service: TestService, txId: string, body: unknown): Promise<Response> {
  return await service.call('POST', `/v1/transactions/${txId}/entries`, body)
}

/** Every transaction route answers 404 WAL_TX_NOT_FOUND, naming the txId. */
async function assertGone (t: Test, service: TestService, txId: string): Promise<void> {
  await assertError(t, await stage(service, txId, insert('late')), 404, 'WAL_TX_NOT_FOUND', txId)
  await assertError(t, await service.call('POST', `/v1/transactions/${txId}/commit`), 404, 'WAL_TX_NOT_FOUND', txId)
  await assertError(t, await service.call('POST', `/v1/transactions/${txId}/abort`), 404, 'WAL_TX_NOT_FOUND', txId)
}

t.test('open, stage (cumulative count), commit: one batch record with the txId', async t => {
  const service = await startTestService(t)
  await service.call('POST', '/v1/entries', insert('before'))
  const opened = await service.call('POST', '/v1/transactions')
  t.equal(opened.status, 201)
  const { txId } = await opened.json() as { txId: string }
  t.match(txId, /^[0-9a-f-]{36}$/, 'a UUID')

  const one = await stage(service, txId, insert('a'))
  t.equal(one.status, 202)
  t.same(await one.json(), { txId, staged: 1 })
  const two = await stage(service, txId, { entries: [{ op: 'update', id: 'a', vector: [1, 2] }, { op: 'delete', id: 'b' }] })
  t.equal(two.status, 202)
  t.same(await two.json(), { txId, staged: 3 }, 'staged counts every entry so far')
  await assertError(t, await stage(service, txId, insert('c', ['1'] as unknown as number[])), 400, 'HTTP_INVALID_REQUEST', 'vector/0')
  await assertError(t, await stage(service, txId, { entries: [insert('c'), { op: 'delete', id: 'd', extra: 1 }] }), 400, 'HTTP_INVALID_REQUEST', 'entries/1/extra')
  const three = await stage(service, txId, insert('c', [0.1]))
  t.same(await three.json(), { txId, staged: 4 }, 'refused bodies staged nothing, not even their valid entries')
  t.equal(await lastSeq(service), 1, 'nothing reaches the log before commit')

  const committed = await service.call('POST', `/v1/transactions/${txId}/commit`)
  t.equal(committed.status, 201)
  t.same(await committed.json(), { seq: 2, count: 4 })
  await assertGone(t, service, txId)

  const lines = await recoverAll(service)
  t.equal(lines.length, 2)
  t.match(lines[1], { seq: 2, op: 'batch', txId })
  t.same((lines[1].entries as unknown[]), [
    { op: 'insert', id: 'a', vector: [0.25, 0.5] },
    { op: 'update', id: 'a', vector: [1, 2] },
    { op: 'delete', id: 'b' },
    { op: 'insert', id: 'c', vector: [0.1] }
  ], 'the staged entries, in order')
})

t.test('abort drops everything staged; the txId is gone', async t => {
  const service = await startTestService(t)
  const txId = await open(service)
  await stage(service, txId, { entries: [insert('a'), insert('b')] })
  const aborted = await service.call('POST', `/v1/transactions/${txId}/abort`)
  t.equal(aborted.status, 200)
  t.same(await aborted.json(), { txId, aborted: true })
  await assertGone(t, service, txId)
  t.equal(await lastSeq(service), 0)
  t.same(await recoverAll(service), [])
})

t.test('an idle transaction expires; the txId is gone', async t => {
  const service = await startTestService(t, { VECWAL_TX_IDLE_MS: '250' })
  const txId = await open(service)
  t.equal((await stage(service, txId, insert('a'))).status, 202)
  await new Promise(resolve => setTimeout(resolve, 1000))
  await assertGone(t, service, txId)
  t.equal(await lastSeq(service), 0)
})

t.test('unknown, malformed and empty transactions', async t => {
  const service = await startTestService(t)
  await assertGone(t, service, '00000000-0000-4000-8000-000000000000')
  await assertError(t, await stage(service, 'x'.repeat(65), insert('a')), 400, 'HTTP_INVALID_REQUEST', 'txId')
  const txId = await open(service)
  await assertError(t, await service.call('POST', `/v1/transactions/${txId}/commit`), 409, 'WAL_TX_EMPTY', txId)
  t.equal((await stage(service, txId, insert('a'))).status, 202, 'an empty commit leaves the transaction open')
  t.equal((await service.call('POST', `/v1/transactions/${txId}/commit`)).status, 201)
})

t.test('staging bodies are validated like writes', async t => {
  const service = await startTestService(t)
  const txId = await open(service)
  await assertError(t, await stage(service, txId, undefined), 400, 'HTTP_INVALID_REQUEST', 'body')
  await assertError(t, await stage(service, txId, { entries: [] }), 400, 'HTTP_INVALID_REQUEST', 'entries')
  await assertError(t, await stage(service, txId, { entries: [insert('a')], extra: 1 }), 400, 'HTTP_INVALID_REQUEST', 'extra')
  await assertError(t, await stage(service, txId, '{"op":"insert","id":"a","vector":[1e400]}'), 400, 'HTTP_INVALID_REQUEST', 'vector/0')
  await assertError(t, await stage(service, txId, '{"op":'), 400, 'HTTP_MALFORMED_BODY')
  await assertError(t, await service.call('POST', `/v1/transactions/${txId}/entries`, 'a', { 'content-type': 'text/plain' }), 415, 'HTTP_UNSUPPORTED_MEDIA_TYPE')
  t.same(await (await stage(service, txId, insert('a'))).json(), { txId, staged: 1 }, 'nothing refused was staged')
})

t.test('non-object staging bodies are 400', async t => {
  const service = await startTestService(t)
  const txId = await open(service)
  await assertError(t, await stage(service, txId, '"insert"'), 400, 'HTTP_INVALID_REQUEST', 'body')
  await assertError(t, await stage(service, txId, [insert('a')]), 400, 'HTTP_INVALID_REQUEST', 'body')
  await assertError(t, await stage(service, txId, { entries: [5] }), 400, 'HTTP_INVALID_REQUEST', 'entries/0')
})

t.test('transaction memory limits: 413 for one transaction, 503 with Retry-After for all', async t => {
  // Room for two open transactions (1 KiB each) and 1 KiB staged among them.
  const service = await startTestService(t, { VECWAL_TX_MAX_BYTES: '1024', VECWAL_TX_TOTAL_BYTES: '3072' })
  const vector = new Array(120).fill(0.5)
  const first = await open(service)
  const second = await open(service)
  t.equal((await stage(service, first, insert('a', vector))).status, 202)
  await assertError(t, await stage(service, first, insert('b', vector)), 413, 'WAL_TX_TOO_LARGE', '1024')
  const full = await stage(service, second, insert('c', vector))
  t.equal(full.headers.get('retry-after'), '1')
  await assertError(t, full, 503, 'WAL_TX_MEMORY_FULL', '3072')
  await service.call('POST', `/v1/transactions/${first}/abort`)
  t.same(await (await stage(service, second, insert('c', vector))).json(), { txId: second, staged: 1 }, 'aborting frees the memory')
  await open(service)
  const fourth = await service.call('POST', '/v1/transactions')
  t.equal(fourth.headers.get('retry-after'), '1', 'an empty transaction is refused too once there is no room for it')
  await assertError(t, fourth, 503, 'WAL_TX_MEMORY_FULL', '3072')
})

t.test('after a restart: the committed transaction is there, aborted and open ones never', async t => {
  const first = await startTestService(t)
  const committed = await open(first)
  const aborted = await open(first)
  const left = await open(first)
  await stage(first, committed, { entries: [insert('c1'), insert('c2')] })
  await stage(first, aborted, { entries: [insert('a1'), insert('a2')] })
  await stage(first, left, insert('o1'))
  await first.call('POST', '/v1/entries', insert('plain'))
  await first.call('POST', `/v1/transactions/${aborted}/abort`)
  const { seq } = await (await first.call('POST', `/v1/transactions/${committed}/commit`)).json() as { seq: number }
  await first.stop()

  const second = await startTestService(t, {}, first.dir)
  const lines = await recoverAll(second)
  t.same(lines.map(l => l.seq), [1, seq])
  t.match(lines[0], { op: 'insert', id: 'plain' })
  t.notOk('txId' in lines[0])
  t.match(lines[1], { op: 'batch', txId: committed })
  t.same((lines[1].entries as Array<{ id: string }>).map(e => e.id), ['c1', 'c2'])
  // Compared field by field: a substring search would find 'a1' inside some random txId.
  const ids = lines.flatMap(l => l.op === 'batch' ? (l.entries as Array<{ id: string }>).map(e => e.id) : [l.id as string])
  const txIds = lines.map(l => l.txId)
  for (const gone of ['a1', 'a2', 'o1']) t.notOk(ids.includes(gone), `${gone} never reaches the log`)
  for (const gone of [aborted, left]) t.notOk(txIds.includes(gone), `${gone} never reaches the log`)
  await assertGone(t, second, left)
})
