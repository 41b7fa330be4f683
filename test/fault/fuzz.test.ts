// Bad input, fuzzed with fast-check against every route (generators in test/helpers/fault-fuzz.ts):
// every answer is a 4xx JSON error {statusCode, code, error, message} with a code from a fixed set
// (the one the request calls for), never a 5xx, and the service stays healthy with the log, the
// checkpoint and the open transactions unchanged. Most cases go through app.inject() for speed; a
// few hundred go over real sockets. Valid cases are never generated; the few that must be accepted
// (metadata keys like `constructor`) are checked on their own. Inputs the service once answered
// wrongly have regression properties of their own at the end.
import { STATUS_CODES } from 'node:http'
import http from 'node:http'
import fc from 'fast-check'
import { Packr } from 'msgpackr'
import t, { type Test } from 'tap'
import {
  badBatchRequests, badEntryRequests, badStageRequests, checkpointRequests, contentTypeRequests, crossedTypeRequests, JSON_TYPE,
  infiniteLimit, junkMsgpackRequests, malformedJsonRequests, MSGPACK_TYPE, oversizedRequests, recoveryRequests, transactionRequests,
  unknownRouteRequests, validEntry, type FuzzRequest, type Ground
} from '../helpers/fault-fuzz.js'
import { ndjson, segmentLog, startTestService, type TestService } from '../helpers/http.js'

/** Every code a bad request may get. */
const KNOWN_CODES = new Set([
  'HTTP_INVALID_REQUEST', 'HTTP_MALFORMED_BODY', 'HTTP_BODY_TOO_LARGE', 'HTTP_UNSUPPORTED_MEDIA_TYPE', 'HTTP_NOT_FOUND',
  'WAL_TX_NOT_FOUND', 'WAL_TX_EMPTY', 'WAL_CHECKPOINT_BACKWARDS', 'WAL_CHECKPOINT_AHEAD', 'WAL_RANGE_AHEAD', 'WAL_RANGE_GONE', 'WAL_INVALID_ARGUMENT'
])

const BODY_LIMIT = 512 * 1024

const figures = { cases: 0, socketCases: 0, fiveHundreds: 0, validCases: 0 }

interface Answer { statusCode: number, headers: Record<string, unknown>, body: string }

/** Why an answer to a bad request is wrong, or undefined when it is right. */
function wrongAnswer (request: FuzzRequest, answer: Answer): string | undefined {
  const { statusCode } = answer
  if (statusCode >= 500) figures.fiveHundreds++
  if (statusCode < 400 || statusCode > 499) return `status ${statusCode}`
  if (!String(answer.headers['content-type']).startsWith('application/json')) return `content type ${String(answer.headers['content-type'])}`
  let body: Record<string, unknown>
  try {
    body = JSON.parse(answer.body) as Record<string, unknown>
  } catch {
    return 'the body is not JSON'
  }
  if (Object.keys(body).sort().join() !== 'code,error,message,statusCode') return `fields ${Object.keys(body).join()}`
  if (body.statusCode !== statusCode) return `statusCode ${String(body.statusCode)} in the body`
  if (body.error !== STATUS_CODES[statusCode]) return `error ${String(body.error)}`
  if (typeof body.message !== 'string' || body.message === '') return 'no message'
  if (!KNOWN_CODES.has(String(body.code))) return `unknown code ${String(body.code)}`
  if (!request.codes.includes(String(body.code))) return `code ${String(body.code)}, expected one of ${request.codes.join(', ')}`
  return undefined
}

function describe (request: FuzzRequest, answer: Answer, why: string): string {
  const payload = request.payload === undefined ? '' : typeof request.payload === 'string' ? request.payload : `0x${request.payload.toString('hex')}`
  return `${request.what}: ${why}\n  ${request.method} ${request.url.slice(0, 300)} ${JSON.stringify(request.headers)}\n  ` +
    `payload (${payload.length}) ${payload.slice(0, 300)}\n  answer ${answer.statusCode} ${answer.body.slice(0, 300)}`
}

class Fuzz {
  constructor (readonly service: TestService, readonly ground: Ground, private readonly staged: { count: number, bytes: number }) {}

  /** The log, the checkpoint and the open transactions are as set up, and the log is not failed. */
  unchanged (): string | undefined {
    const log = segmentLog(this.service)
    const now = { lastSeq: log.lastSeq, checkpoint: log.checkpointSeq, state: log.state, open: log.transactions.count, staged: log.transactions.stagedBytes }
    const then = { lastSeq: this.ground.lastSeq, checkpoint: this.ground.checkpoint, state: 'ok', open: this.staged.count, staged: this.staged.bytes }
    return JSON.stringify(now) === JSON.stringify(then) ? undefined : `the service changed: ${JSON.stringify(now)}, was ${JSON.stringify(then)}`
  }

  async inject (request: FuzzRequest): Promise<Answer> {
    const res = await this.service.app.inject({
      method: request.method as 'GET',
      url: request.url,
      headers: request.headers,
      ...(request.payload === undefined ? {} : { payload: request.payload })
    })
    return { statusCode: res.statusCode, headers: res.headers, body: res.body }
  }

  async check (request: FuzzRequest, send: (r: FuzzRequest) => Promise<Answer>): Promise<void> {
    const answer = await send(request)
    const why = wrongAnswer(request, answer) ?? this.unchanged()
    if (why !== undefined) throw new Error(describe(request, answer, why))
  }

  /** Runs `runs` cases of a generator through app.inject(). */
  async property (t: Test, name: string, arbitrary: fc.Arbitrary<FuzzRequest>, runs: number): Promise<void> {
    await t.resolves(fc.assert(fc.asyncProperty(arbitrary, async request => {
      figures.cases++
      await this.check(request, async r => await this.inject(r))
    }), { numRuns: runs }), `${name}: ${runs} cases, each a 4xx with its code, the service unchanged`)
    const ready = await this.service.app.inject({ method: 'GET', url: '/health/ready' })
    t.equal(ready.statusCode, 200, `${name}: still ready`)
  }
}

/** Sends a request over a real socket (a body without content-length when it is past the limit: chunked). */
function overSocket (url: string, agent: http.Agent): (request: FuzzRequest) => Promise<Answer> {
  return async request => await new Promise((resolve, reject) => {
    const payload = request.payload === undefined ? undefined : Buffer.from(request.payload)
    const chunked = payload !== undefined && payload.length > BODY_LIMIT
    const headers: Record<string, string | number> = { ...request.headers }
    if (payload !== undefined && !chunked) headers['content-length'] = payload.length
    const req = http.request(url + request.url, { method: request.method, agent, headers }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => { resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body }) })
    })
    req.setTimeout(30_000, () => { req.destroy(new Error('no answer within 30 s')) })
    req.on('error', reject)
    req.end(payload)
  })
}

/** The service of the main properties: a log over several segments, retention past seq 3, two open transactions. */
async function groundService (t: Test): Promise<Fuzz> {
  const service = await startTestService(t, { VECWAL_BODY_LIMIT_BYTES: String(BODY_LIMIT), VECWAL_SEGMENT_BYTES: '4096' })
  const vector = Array.from({ length: 300 }, (_, i) => i / 8)
  for (let i = 0; i < 6; i++) t.equal((await service.call('POST', '/v1/entries', { op: 'insert', id: `seed${i}`, vector })).status, 201)
  const checkpoint = await (await service.call('POST', '/v1/checkpoints', { seq: 4 })).json() as { checkpoint: number, deletedSegments: number }
  t.equal(checkpoint.checkpoint, 4, 'the checkpoint is at 4')
  t.ok(checkpoint.deletedSegments > 0, 'retention deleted the segments it covers')
  const stagingTx = (await (await service.call('POST', '/v1/transactions')).json() as { txId: string }).txId
  t.equal((await service.call('POST', `/v1/transactions/${stagingTx}/entries`, { op: 'delete', id: 'staged' })).status, 202)
  const emptyTx = (await (await service.call('POST', '/v1/transactions')).json() as { txId: string }).txId
  const status = segmentLog(service).status()
  const ground: Ground = { oldest: status.segments[0].firstSeq, checkpoint: status.checkpoint, lastSeq: status.lastSeq, stagingTx, emptyTx, bodyLimit: BODY_LIMIT }
  t.ok(ground.oldest > 2, `records up to ${ground.oldest - 1} are gone (410 territory)`)
  return new Fuzz(service, ground, { count: segmentLog(service).transactions.count, bytes: segmentLog(service).transactions.stagedBytes })
}

t.test('bad requests to every route get a 4xx JSON error with a stable code and change nothing', async t => {
  const fuzz = await groundService(t)
  const { ground } = fuzz
  const runs: Array<[string, fc.Arbitrary<FuzzRequest>, number]> = [
    ['POST /v1/entries, bad entries (wrong types, missing and unknown fields, 1e400, empty and huge vectors)', badEntryRequests(ground), 2500],
    ['POST /v1/batch, bad batches', badBatchRequests(ground), 1500],
    ['POST /v1/transactions/{txId}/entries, bad staging', badStageRequests(ground), 1000],
    ['malformed JSON (truncated, garbage, invalid UTF-8 between tokens, __proto__, deep nesting)', malformedJsonRequests(ground), 1500],
    ['unsupported or missing content types', contentTypeRequests(ground), 600],
    ['JSON sent as msgpack and msgpack as JSON', crossedTypeRequests(ground), 300],
    ['bodies over the limit', oversizedRequests(ground), 150],
    ['malformed msgpack', junkMsgpackRequests(ground), 800],
    ['GET /v1/recovery, bad after/limit/parameters', recoveryRequests(ground), 1000],
    ['transaction routes with unknown or malformed ids', transactionRequests(ground), 800],
    ['POST /v1/checkpoints, bad bodies and seqs', checkpointRequests(ground), 700],
    ['unknown routes and methods', unknownRouteRequests(), 700]
  ]
  for (const [name, arbitrary, count] of runs) await fuzz.property(t, name, arbitrary, count)

  const empty = await fuzz.inject({ method: 'POST', url: `/v1/transactions/${ground.emptyTx}/commit`, headers: {}, codes: ['WAL_TX_EMPTY'], what: 'commit of an empty transaction' })
  t.equal(wrongAnswer({ method: 'POST', url: '', headers: {}, codes: ['WAL_TX_EMPTY'], what: '' }, empty), undefined, 'committing an empty transaction is a 409 WAL_TX_EMPTY')
  figures.cases++

  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 })
  t.teardown(() => { agent.destroy() })
  const everything = fc.oneof(
    badEntryRequests(ground), badBatchRequests(ground), badStageRequests(ground), malformedJsonRequests(ground), contentTypeRequests(ground),
    oversizedRequests(ground), junkMsgpackRequests(ground), recoveryRequests(ground), transactionRequests(ground), checkpointRequests(ground), unknownRouteRequests()
  )
  const send = overSocket(fuzz.service.url, agent)
  await t.resolves(fc.assert(fc.asyncProperty(everything, async request => {
    figures.socketCases++
    await fuzz.check(request, send)
  }), { numRuns: 300 }), 'the same over real sockets: 300 cases')

  const ready = await fuzz.service.call('GET', '/health/ready')
  t.equal(ready.status, 200, 'the service is ready after all of it')
  const status = await (await fuzz.service.call('GET', '/v1/status')).json() as { lastSeq: number, checkpoint: number, state: string }
  t.same({ lastSeq: status.lastSeq, checkpoint: status.checkpoint, state: status.state }, { lastSeq: ground.lastSeq, checkpoint: ground.checkpoint, state: 'ok' }, 'the log is unchanged')
  t.comment(`fuzz: ${figures.cases} cases through inject, ${figures.socketCases} over sockets, ${figures.fiveHundreds} 5xx`)
  t.ok(figures.cases + figures.socketCases >= 10_000, `${figures.cases + figures.socketCases} cases in all`)
  t.equal(figures.fiveHundreds, 0, 'no 5xx')
})

const packr = new Packr({ moreTypes: true, useRecords: false })

t.test('metadata keys that name Object.prototype members are valid metadata, stored exactly', async t => {
  const service = await startTestService(t)
  const keys = ['constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'isPrototypeOf']
  const posted: Array<Record<string, unknown>> = []
  for (const [i, key] of keys.entries()) {
    for (const [how, headers, encode] of [['JSON', JSON_TYPE, JSON.stringify], ['msgpack', MSGPACK_TYPE, (v: unknown) => packr.pack(v)]] as const) {
      const entry = { op: 'insert', id: `${how}.${i}`, vector: [0.5], metadata: { [key]: 'v', other: 'w' } }
      const res = await fetch(`${service.url}/v1/entries`, { method: 'POST', headers, body: encode(entry) })
      figures.validCases++
      t.equal(res.status, 201, `metadata key ${key} over ${how} is accepted`)
      posted.push(entry)
    }
  }
  const records = await ndjson(await service.call('GET', '/v1/recovery?after=0'))
  t.same(records.map(({ seq: _seq, timestamp: _timestamp, ...entry }) => entry), posted, 'and reads back exactly as posted')

  const proto = await service.call('POST', '/v1/entries', '{"op":"insert","id":"p","vector":[1],"metadata":{"__proto__":"x"}}')
  t.equal(proto.status, 400, 'a __proto__ metadata key in JSON is refused by the prototype-poisoning guard')
  t.match((await proto.json() as { code: string }).code, /^HTTP_(MALFORMED_BODY|INVALID_REQUEST)$/, 'as a bad body')
  const protoTop = await service.call('POST', '/v1/entries', '{"__proto__":{"op":"delete"},"op":"delete","id":"p"}')
  t.equal(protoTop.status, 400, 'and so is __proto__ at the top level')
  t.equal(service.log.lastSeq, posted.length, 'nothing else was written')
  t.comment(`${figures.validCases} valid cases checked apart`)
})

// ---- Answers that were once wrong, kept as regression properties ----

/** A service of its own, so that a regression writing to the log shows here alone. */
async function looseFuzz (t: Test): Promise<{ service: TestService, send: (r: FuzzRequest) => Promise<Answer> }> {
  const service = await startTestService(t)
  return {
    service,
    send: async r => {
      const res = await service.app.inject({ method: r.method as 'POST', url: r.url, headers: r.headers, ...(r.payload === undefined ? {} : { payload: r.payload }) })
      return { statusCode: res.statusCode, headers: res.headers, body: res.body }
    }
  }
}

/** A property a fixed bug once failed: every answer right, and nothing written. */
async function regressionProperty (t: Test, name: string, arbitrary: fc.Arbitrary<FuzzRequest>, runs: number): Promise<void> {
  const { service, send } = await looseFuzz(t)
  await t.resolves(fc.assert(fc.asyncProperty(arbitrary, async request => {
    const answer = await send(request)
    const why = wrongAnswer(request, answer) ?? (service.log.lastSeq === 0 ? undefined : 'the log was written')
    if (why !== undefined) throw new Error(describe(request, answer, why))
  }), { numRuns: runs }), name)
}

const notAnObject = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), fc.string({ maxLength: 8 }), fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }))

t.test('an entry that is not an object (a number, string, null, array) is a 400', async t => {
  const unknownTx = '00000000-0000-4000-8000-000000000000'
  const arbitrary = fc.tuple(notAnObject, fc.constantFrom('entries', 'batch', 'stage'), fc.boolean()).map(([value, route, msgpack]): FuzzRequest => {
    const body = route === 'batch' ? { entries: [{ op: 'delete', id: 'a' }, value] } : value
    return {
      method: 'POST',
      url: route === 'entries' ? '/v1/entries' : route === 'batch' ? '/v1/batch' : `/v1/transactions/${unknownTx}/entries`,
      headers: msgpack ? MSGPACK_TYPE : JSON_TYPE,
      payload: msgpack ? packr.pack(body) : JSON.stringify(body),
      codes: ['HTTP_INVALID_REQUEST', 'WAL_TX_NOT_FOUND'],
      what: `non-object ${route} body ${JSON.stringify(body)}`
    }
  })
  await regressionProperty(t, 'non-object entries get 400 HTTP_INVALID_REQUEST, never 500', arbitrary, 300)
})

t.test('a recovery limit of Infinity is a 400', async t => {
  const arbitrary = fc.constantFrom('Infinity', '1e400', '+Infinity', '1E999').filter(infiniteLimit).map((limit): FuzzRequest => ({
    method: 'GET', url: `/v1/recovery?after=0&limit=${encodeURIComponent(limit)}`, headers: {}, codes: ['HTTP_INVALID_REQUEST', 'WAL_INVALID_ARGUMENT'], what: `limit=${limit}`
  }))
  await regressionProperty(t, 'limit=Infinity is refused', arbitrary, 20)
})

t.test('invalid UTF-8 inside a string of a JSON body is a 400, not silently replaced', async t => {
  const arbitrary = fc.tuple(validEntry, fc.constantFrom([0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0x80])).map(([entry, bytes]): FuzzRequest => {
    const json = JSON.stringify(entry)
    const at = json.indexOf('"id":"') + 6
    return {
      method: 'POST',
      url: '/v1/entries',
      headers: JSON_TYPE,
      payload: Buffer.concat([Buffer.from(json.slice(0, at)), Buffer.from(bytes), Buffer.from(json.slice(at))]),
      codes: ['HTTP_MALFORMED_BODY'],
      what: 'invalid UTF-8 inside the id'
    }
  })
  await regressionProperty(t, 'invalid UTF-8 in a string is refused', arbitrary, 100)
})

t.test('a __proto__ metadata key over msgpack is refused as over JSON, never stored renamed', async t => {
  const { service } = await looseFuzz(t)
  const metadata = JSON.parse('{"__proto__":"x","k":"v"}') as Record<string, string>
  const res = await fetch(`${service.url}/v1/entries`, { method: 'POST', headers: MSGPACK_TYPE, body: packr.pack({ op: 'insert', id: 'p', vector: [1], metadata }) })
  t.equal(res.status, 400, 'refused, like the same body in JSON')
  t.equal(((await res.json()) as { code: string }).code, 'HTTP_INVALID_REQUEST')
  t.equal(service.log.lastSeq, 0, 'nothing was written')
})
