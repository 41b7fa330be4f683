// The committed OpenAPI document: what the code generates, what the service serves, and the contract
// it states (routes, statuses, body types, headers).
import fs from 'node:fs'
import t from 'tap'
import { generateOpenApiDocument, OPENAPI_FILE } from '../../scripts/openapi.js'
import { startTestService } from '../helpers/http.js'

type Json = Record<string, any>

const ROUTES: Array<[string, string]> = [
  ['post', '/v1/entries'],
  ['post', '/v1/batch'],
  ['post', '/v1/transactions'],
  ['post', '/v1/transactions/{txId}/entries'],
  ['post', '/v1/transactions/{txId}/commit'],
  ['post', '/v1/transactions/{txId}/abort'],
  ['post', '/v1/checkpoints'],
  ['get', '/v1/consumers'],
  ['put', '/v1/consumers/{name}'],
  ['get', '/v1/consumers/{name}'],
  ['delete', '/v1/consumers/{name}'],
  ['post', '/v1/consumers/{name}/checkpoint'],
  ['get', '/v1/recovery'],
  ['get', '/v1/status'],
  ['get', '/health/live'],
  ['get', '/health/ready'],
  ['get', '/metrics']
]
const WRITE_ROUTES = ['/v1/entries', '/v1/batch', '/v1/transactions/{txId}/entries']

t.test('OpenAPI', async t => {
  const committed = fs.existsSync(OPENAPI_FILE) ? fs.readFileSync(OPENAPI_FILE, 'utf8') : ''
  const document = JSON.parse(committed === '' ? '{}' : committed) as Json

  t.test('the committed openapi/openapi.json is what the code generates', async t => {
    t.ok(committed !== '', `${OPENAPI_FILE} exists`)
    t.equal(await generateOpenApiDocument(), committed, 'regenerate with `npm run openapi` and commit the result')
  })

  t.test('the service serves the same document', async t => {
    const service = await startTestService(t)
    t.same(await (await service.call('GET', '/openapi.json')).json(), document)
  })

  t.test('OpenAPI 3.1 with every route, status and body type of the contract', async t => {
    t.match(document.openapi, /^3\.1\.\d+$/)
    for (const [method, route] of ROUTES) t.ok(document.paths?.[route]?.[method] !== undefined, `${method.toUpperCase()} ${route}`)
    for (const route of WRITE_ROUTES) {
      t.same(Object.keys(document.paths[route].post.requestBody.content).sort(), ['application/json', 'application/msgpack'], `${route} takes JSON and msgpack`)
    }
    const success: Array<[string, string, string]> = [
      ['post', '/v1/entries', '201'], ['post', '/v1/batch', '201'], ['post', '/v1/transactions', '201'],
      ['post', '/v1/transactions/{txId}/entries', '202'], ['post', '/v1/transactions/{txId}/commit', '201'],
      ['post', '/v1/transactions/{txId}/abort', '200'], ['post', '/v1/checkpoints', '201'], ['get', '/v1/recovery', '200'],
      ['get', '/health/ready', '503']
    ]
    for (const [method, route, status] of success) t.ok(document.paths[route][method].responses[status] !== undefined, `${route} documents ${status}`)
    const error = document.paths['/v1/entries'].post.responses['4XX'].content['application/json'].schema
    t.same(Object.keys(error.properties).sort(), ['code', 'error', 'lastSeq', 'message', 'statusCode'], 'errors have the one shape (lastSeq for WAL_SEQ_MISMATCH only)')
    for (const route of ['/v1/entries', '/v1/batch', '/v1/transactions/{txId}/commit']) {
      const { parameters, responses } = document.paths[route].post
      t.same(parameters.filter((p: Json) => p.in === 'header').map((p: Json) => p.name).sort(), ['idempotency-key', 'vecwal-expected-last-seq'], `${route} takes the two headers`)
      t.match(responses['412'].description, /WAL_SEQ_MISMATCH/, `${route} documents 412`)
      t.match(responses['422'].description, /WAL_IDEMPOTENCY_KEY_REUSED/, `${route} documents 422`)
    }
    const entry = document.paths['/v1/entries'].post.requestBody.content['application/json'].schema
    t.same(entry.oneOf.map((s: Json) => s.properties.op.enum[0]), ['insert', 'update', 'delete'], 'one schema per op')
    t.ok(entry.oneOf.every((s: Json) => s.additionalProperties === false), 'unknown fields are refused')
    t.same(Object.keys(document.paths['/v1/recovery'].get.responses['200'].content), ['application/x-ndjson', 'application/msgpack', 'text/event-stream'], 'recovery in all three forms')
    const parameters = document.paths['/v1/recovery'].get.parameters.map((p: Json) => `${p.in} ${p.name}`)
    t.same(parameters.sort(), ['header last-event-id', 'query after', 'query consumer', 'query follow', 'query limit', 'query since', 'query wait'], 'every query parameter and header of recovery')
  })

  t.test('the recovery headers are documented as headers', async t => {
    const headers = document.paths['/v1/recovery'].get.responses['200'].headers as Json | undefined
    t.same(Object.keys(headers ?? {}).sort(), ['x-vecwal-checkpoint', 'x-vecwal-last-seq'], 'exactly the two headers')
    for (const name of ['x-vecwal-checkpoint', 'x-vecwal-last-seq']) t.equal(headers?.[name]?.schema?.type, 'integer', `${name} is an integer`)
  })

  t.test('the safe-retry and Retry-After headers are documented where they are sent', async t => {
    for (const route of ['/v1/entries', '/v1/batch', '/v1/transactions/{txId}/commit']) {
      const { responses } = document.paths[route].post
      t.same(responses['201'].headers?.['idempotent-replayed']?.schema, { type: 'string', const: 'true' }, `${route}: Idempotent-Replayed on 201`)
      t.equal(responses['412'].headers?.['vecwal-last-seq']?.schema?.type, 'integer', `${route}: Vecwal-Last-Seq on 412`)
    }
    const retryAfter = (response: Json | undefined): string | undefined =>
      response?.headers?.['retry-after']?.schema?.type === 'integer' ? response.headers['retry-after'].description : undefined
    t.match(retryAfter(document.paths['/v1/recovery'].get.responses['503']), /HTTP_TOO_MANY_STREAMS/, 'recovery\'s 503 HTTP_TOO_MANY_STREAMS')
    for (const [route, methods] of Object.entries(document.paths as Json)) {
      for (const [method, operation] of Object.entries(methods as Json)) {
        const fivexx = (operation as Json).responses['5XX']
        if (fivexx === undefined) continue
        for (const code of ['WAL_QUEUE_FULL', 'WAL_DISK_FULL', 'WAL_SEGMENT_UNAVAILABLE', 'WAL_UNAVAILABLE', 'HTTP_TOO_MANY_BODIES']) {
          t.match(retryAfter(fivexx), code, `${method.toUpperCase()} ${route}: Retry-After with ${code}`)
        }
        t.match(retryAfter((operation as Json).responses['4XX']), /429 HTTP_TOO_MANY_AUTH_FAILURES/, `${method.toUpperCase()} ${route}: Retry-After with 429`)
      }
    }
  })

  t.test('the checkpoint body is optional in the document too', async t => {
    t.equal(document.paths['/v1/checkpoints'].post.requestBody.required, false)
  })
})
