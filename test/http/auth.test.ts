// Access control with VECWAL_TOKENS: 401 without a valid bearer token, 403 without the scope the
// route needs, admin may do everything, health (and metrics unless protected) stay open.
import { pino } from 'pino'
import t from 'tap'
import { buildApp } from '../../src/http/app.js'
import { createMetrics } from '../../src/http/metrics.js'
import type { Log } from '../../src/log.js'
import { assertError, startTestService, type TestService } from '../helpers/http.js'

const TOKENS = { VECWAL_TOKENS: 'write:wwwwwwww,read:rrrrrrrr,admin:aaaaaaaa' }
const WRITE = { authorization: 'Bearer wwwwwwww' }
const READ = { authorization: 'Bearer rrrrrrrr' }
const ADMIN = { authorization: 'Bearer aaaaaaaa' }
const entry = { op: 'insert', id: 'a', vector: [1, 2] }

async function lastSeqAsAdmin (service: TestService): Promise<number> {
  return ((await (await service.call('GET', '/v1/status', undefined, ADMIN)).json()) as { lastSeq: number }).lastSeq
}

t.test('401 with WWW-Authenticate: Bearer without a valid token', async t => {
  const service = await startTestService(t, TOKENS)
  const attempts: Array<[string, string, unknown]> = [
    ['POST', '/v1/entries', entry],
    ['POST', '/v1/batch', { entries: [entry] }],
    ['POST', '/v1/transactions', undefined],
    ['POST', '/v1/checkpoints', {}],
    ['GET', '/v1/recovery', undefined],
    ['GET', '/v1/status', undefined]
  ]
  const credentials: Array<[string, Record<string, string>]> = [
    ['no token', {}],
    ['a wrong token', { authorization: 'Bearer wwwwwwwx' }],
    ['a token without the Bearer scheme', { authorization: 'wwwwwwww' }],
    ['Basic credentials', { authorization: 'Basic d3d3d3d3d3d3' }],
    ['an empty bearer token', { authorization: 'Bearer ' }]
  ]
  for (const [what, headers] of credentials) {
    await t.test(what, async t => {
      for (const [method, route, body] of attempts) {
        const response = await service.call(method, route, body, headers)
        t.match(response.headers.get('www-authenticate'), /^Bearer\b/, `${method} ${route}: WWW-Authenticate`)
        await assertError(t, response, 401, 'HTTP_UNAUTHORIZED', /bearer token/)
      }
    })
  }
  await t.test('checked before the body is parsed or validated', async t => {
    await assertError(t, await service.call('POST', '/v1/entries', '{"op":', {}), 401, 'HTTP_UNAUTHORIZED')
    await assertError(t, await service.call('POST', '/v1/entries', { op: 'insert' }, {}), 401, 'HTTP_UNAUTHORIZED')
  })
  t.equal(await lastSeqAsAdmin(service), 0, 'nothing was written')
})

t.test('403 for a token without the scope', async t => {
  const service = await startTestService(t, TOKENS)
  const forbidden: Array<[string, string, unknown, Record<string, string>, string]> = [
    ['POST', '/v1/entries', entry, READ, 'write'],
    ['POST', '/v1/batch', { entries: [entry] }, READ, 'write'],
    ['POST', '/v1/transactions', undefined, READ, 'write'],
    ['POST', '/v1/checkpoints', {}, WRITE, 'admin'],
    ['POST', '/v1/checkpoints', {}, READ, 'admin'],
    ['GET', '/v1/recovery', undefined, WRITE, 'read'],
    ['GET', '/v1/status', undefined, WRITE, 'read']
  ]
  for (const [method, route, body, headers, scope] of forbidden) {
    await assertError(t, await service.call(method, route, body, headers), 403, 'HTTP_FORBIDDEN', scope)
  }
  const { txId } = await (await service.call('POST', '/v1/transactions', undefined, WRITE)).json() as { txId: string }
  for (const action of ['entries', 'commit', 'abort']) {
    await assertError(t, await service.call('POST', `/v1/transactions/${txId}/${action}`, action === 'entries' ? entry : undefined, READ), 403, 'HTTP_FORBIDDEN', 'write')
  }
  t.equal(await lastSeqAsAdmin(service), 0, 'nothing was written')
})

t.test('each scope does its own work; admin does everything', async t => {
  const service = await startTestService(t, TOKENS)
  for (const writer of [WRITE, ADMIN]) {
    t.equal((await service.call('POST', '/v1/entries', entry, writer)).status, 201)
    t.equal((await service.call('POST', '/v1/batch', { entries: [entry] }, writer)).status, 201)
    const { txId } = await (await service.call('POST', '/v1/transactions', undefined, writer)).json() as { txId: string }
    t.equal((await service.call('POST', `/v1/transactions/${txId}/entries`, entry, writer)).status, 202)
    t.equal((await service.call('POST', `/v1/transactions/${txId}/commit`, undefined, writer)).status, 201)
  }
  for (const reader of [READ, ADMIN]) {
    t.equal((await service.call('GET', '/v1/status', undefined, reader)).status, 200)
    const recovery = await service.call('GET', '/v1/recovery?after=0', undefined, reader)
    t.equal(recovery.status, 200)
    t.equal((await recovery.text()).split('\n').filter(l => l !== '').length, 6)
  }
  t.equal((await service.call('POST', '/v1/checkpoints', {}, ADMIN)).status, 201, 'admin checkpoints')
})

t.test('health, metrics and the docs stay open', async t => {
  const service = await startTestService(t, TOKENS)
  for (const route of ['/health/live', '/health/ready', '/metrics', '/openapi.json', '/docs']) {
    t.equal((await service.call('GET', route)).status, 200, `${route} without a token`)
  }
})

t.test('VECWAL_PROTECT_METRICS=true: /metrics needs the read scope; health stays open', async t => {
  const service = await startTestService(t, { ...TOKENS, VECWAL_PROTECT_METRICS: 'true' })
  const bare = await service.call('GET', '/metrics')
  t.match(bare.headers.get('www-authenticate'), /^Bearer\b/)
  await assertError(t, bare, 401, 'HTTP_UNAUTHORIZED')
  await assertError(t, await service.call('GET', '/metrics', undefined, WRITE), 403, 'HTTP_FORBIDDEN', 'read')
  for (const reader of [READ, ADMIN]) {
    const response = await service.call('GET', '/metrics', undefined, reader)
    t.equal(response.status, 200)
    t.match(await response.text(), /^vecwal_last_seq 0$/m)
  }
  t.equal((await service.call('GET', '/health/live')).status, 200)
  t.equal((await service.call('GET', '/health/ready')).status, 200)
})

t.test('without VECWAL_TOKENS every route is open', async t => {
  const service = await startTestService(t)
  t.equal((await service.call('POST', '/v1/entries', entry)).status, 201)
  t.equal((await service.call('POST', '/v1/checkpoints')).status, 201)
  t.equal((await service.call('GET', '/v1/status')).status, 200)
})

t.test('the auth scheme is case-insensitive (RFC 9110 section 11.1)', async t => {
  const service = await startTestService(t, TOKENS)
  t.equal((await service.call('POST', '/v1/entries', entry, { authorization: 'bearer wwwwwwww' })).status, 201)
  t.equal((await service.call('GET', '/v1/status', undefined, { authorization: 'BEARER rrrrrrrr' })).status, 200)
})

t.test('a route that does not say who may call it stops the app from starting, rather than being open', async t => {
  const app = await buildApp({ log: {} as Log, logger: pino({ level: 'silent' }), metrics: createMetrics(() => undefined), bodyLimitBytes: 1024, idleTimeoutMs: 1000, dimensions: undefined })
  t.teardown(async () => { await app.close() })
  t.throws(() => app.get('/v1/forgotten', async () => 'open to anyone'), /route GET \/v1\/forgotten declares no access/)
  t.doesNotThrow(() => app.get('/v1/declared', { config: { access: 'read' } }, async () => 'read only'), 'one that says is taken')
})

t.test('the OpenAPI UI, open by choice, is served without a token', async t => {
  const service = await startTestService(t, TOKENS)
  t.equal((await service.call('GET', '/docs/')).status, 200)
})
