// Safe retries over HTTP: Idempotency-Key and Vecwal-Expected-Last-Seq on the three write routes,
// the Idempotent-Replayed answer, 422 and 412 (with the last seq in body and header), 400 naming
// a bad header, keys kept across a restart, the metrics, and OpenAPI's 412 and 422.
import fc from 'fast-check'
import t from 'tap'
import { assertError, lastSeq, onJetStream, recoverAll, sampleEntry, startTestService, type TestService } from '../helpers/http.js'

const printableKey = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map(c => String.fromCharCode(c)), minLength: 1, maxLength: 255 })

async function commitRoute (service: TestService, entries: unknown[]): Promise<string> {
  const txId = ((await (await service.call('POST', '/v1/transactions')).json()) as { txId: string }).txId
  await service.call('POST', `/v1/transactions/${txId}/entries`, { entries })
  return `/v1/transactions/${txId}/commit`
}

t.test('each write route: a repeat is answered as the first was with Idempotent-Replayed, writing nothing; other content is 422 naming the key', async t => {
  const service = await startTestService(t)
  // The cases share one service, whose keys last: a key generated again (short ones often are)
  // would rightly be refused as other content.
  const used = new Set<string>()
  await fc.assert(fc.asyncProperty(printableKey, fc.constantFrom('entries', 'batch', 'commit'), async (key, route) => {
    fc.pre(!used.has(key))
    used.add(key)
    const before = await lastSeq(service)
    const body = route === 'entries' ? sampleEntry(before) : { entries: [sampleEntry(before), sampleEntry(before + 1)] }
    const path = route === 'commit' ? await commitRoute(service, (body as { entries: unknown[] }).entries) : `/v1/${route}`
    const send = async (): Promise<Response> => await service.call('POST', path, route === 'commit' ? undefined : body, { 'idempotency-key': key })
    const first = await send()
    const firstBody = await first.json()
    const again = await send()
    if (first.status !== 201 || again.status !== 201) throw new Error(`${first.status} then ${again.status}`)
    if (first.headers.get('idempotent-replayed') !== null || again.headers.get('idempotent-replayed') !== 'true') throw new Error('Idempotent-Replayed is not on the repeat alone')
    if (JSON.stringify(await again.json()) !== JSON.stringify(firstBody)) throw new Error('the repeat answered otherwise')
    if (await lastSeq(service) !== before + 1) throw new Error('the repeat wrote')
    const other = await service.call('POST', '/v1/entries', sampleEntry(before + 7), { 'idempotency-key': key })
    const error = await other.json() as { code: string, message: string }
    if (other.status !== 422 || error.code !== 'WAL_IDEMPOTENCY_KEY_REUSED' || !error.message.includes(JSON.stringify(key))) throw new Error(`other content: ${other.status} ${JSON.stringify(error)}`)
    return true
  }), { numRuns: 20 })
  t.pass('held for 20 generated cases')
})

t.test('Vecwal-Expected-Last-Seq: written when it holds; else 412 with the last seq in the body and the Vecwal-Last-Seq header', async t => {
  const service = await startTestService(t)
  const ok = await service.call('POST', '/v1/entries', sampleEntry(1), { 'vecwal-expected-last-seq': '0' })
  t.equal(ok.status, 201)
  const refused = await service.call('POST', '/v1/batch', { entries: [sampleEntry(2)] }, { 'vecwal-expected-last-seq': '0' })
  t.equal(refused.status, 412)
  t.equal(refused.headers.get('vecwal-last-seq'), '1')
  t.has(await refused.json(), { statusCode: 412, code: 'WAL_SEQ_MISMATCH', lastSeq: 1 })
  const commit = await commitRoute(service, [sampleEntry(3)])
  t.equal((await service.call('POST', commit, undefined, { 'vecwal-expected-last-seq': '5' })).status, 412, 'a commit too')
  const retried = await service.call('POST', commit, undefined, { 'vecwal-expected-last-seq': '1' })
  t.same([retried.status, await retried.json()], [201, { seq: 2, count: 1 }], 'the transaction stayed open for a retry')
  t.equal(await lastSeq(service), 2)
})

t.test('concurrent conditional writers over HTTP: exactly one is 201 for each seq', async t => {
  const service = await startTestService(t)
  for (let round = 0; round < 4; round++) {
    const expected = await lastSeq(service)
    const answers = await Promise.all(Array.from({ length: 6 }, async (_, w) =>
      await service.call('POST', '/v1/entries', sampleEntry(w), { 'vecwal-expected-last-seq': String(expected) })))
    t.same(answers.map(a => a.status).sort(), [201, 412, 412, 412, 412, 412], `round ${round}`)
    await Promise.all(answers.map(async a => await a.arrayBuffer()))
  }
  t.equal(await lastSeq(service), 4)
})

t.test('a bad header is 400 naming it', async t => {
  const service = await startTestService(t)
  for (const key of ['x'.repeat(256), 'café']) {
    await assertError(t, await service.call('POST', '/v1/entries', sampleEntry(1), { 'idempotency-key': key }), 400, 'HTTP_INVALID_REQUEST', 'idempotency-key')
  }
  for (const seq of ['-1', '1.5', 'one', '99999999999999999999']) {
    await assertError(t, await service.call('POST', '/v1/batch', { entries: [sampleEntry(1)] }, { 'vecwal-expected-last-seq': seq }), 400, 'HTTP_INVALID_REQUEST', 'vecwal-expected-last-seq')
  }
  t.equal(await lastSeq(service), 0)
})

t.test('keys survive a restart; the metrics count keys and replays; recovery shows no key', async t => {
  const first = await startTestService(t)
  const dir = first.dir
  const answer = await (await first.call('POST', '/v1/batch', { entries: [sampleEntry(1)] }, { 'idempotency-key': 'restart-key' })).json()
  await first.stop()
  const service = await startTestService(t, {}, dir)
  const again = await service.call('POST', '/v1/batch', { entries: [sampleEntry(1)] }, { 'idempotency-key': 'restart-key' })
  t.equal(again.headers.get('idempotent-replayed'), 'true')
  t.same(await again.json(), answer)
  const metrics = await (await service.call('GET', '/metrics')).text()
  t.match(metrics, /^vecwal_idempotency_keys 1$/m)
  t.match(metrics, /^vecwal_idempotent_replays_total 1$/m)
  t.match(metrics, /^vecwal_idempotency_keys_evicted_total 0$/m)
  t.same(Object.keys((await recoverAll(service))[0]).sort(), ['entries', 'op', 'seq', 'timestamp'])
})

t.test('VECWAL_IDEMPOTENCY_MAX_KEYS: past it the oldest key is evicted and counted', async t => {
  const service = await startTestService(t, { VECWAL_IDEMPOTENCY_MAX_KEYS: '2' })
  for (let i = 0; i < 3; i++) await (await service.call('POST', '/v1/entries', sampleEntry(i), { 'idempotency-key': `k${i}` })).arrayBuffer()
  const metrics = await (await service.call('GET', '/metrics')).text()
  t.match(metrics, /^vecwal_idempotency_keys 2$/m)
  t.match(metrics, /^vecwal_idempotency_keys_evicted_total 1$/m)
  t.equal((await service.call('POST', '/v1/entries', sampleEntry(0), { 'idempotency-key': 'k0' })).status, 201)
  if (onJetStream()) t.equal(await lastSeq(service), 3, 'on JetStream the key lives on in the stream\'s duplicate window: the cap bounds only what the instance counts')
  else t.equal(await lastSeq(service), 4, 'the evicted key wrote again')
})
