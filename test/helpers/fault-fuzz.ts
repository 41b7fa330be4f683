// Generators of bad requests for test/fault/fuzz.test.ts. Every request they make is invalid by
// construction (each mutation alone makes an entry invalid, whatever else is changed), and carries
// the error codes it may be answered with. What is valid is never generated here; the regions the
// service once answered wrongly have regression properties of their own in the test.
import fc from 'fast-check'
import { Packr } from 'msgpackr'
import { FLOAT32_ROUNDING_LIMIT } from '../../src/entry.js'
import { decodeMsgpackBody } from '../../src/http/msgpack-body.js'

export const MAX_SAFE = Number.MAX_SAFE_INTEGER

/** The log as the fuzz test sets it up: seqs `oldest`..`lastSeq` retained, checkpoint in between. */
export interface Ground {
  oldest: number
  checkpoint: number
  lastSeq: number
  /** An open transaction with an entry staged. */
  stagingTx: string
  /** An open transaction with nothing staged (its commit is a 409). */
  emptyTx: string
  bodyLimit: number
}

export interface FuzzRequest {
  method: string
  url: string
  headers: Record<string, string>
  payload?: string | Buffer
  /** The error codes this request may be answered with. */
  codes: readonly string[]
  /** What it is, for a failure's report. */
  what: string
}

export const JSON_TYPE = { 'content-type': 'application/json' }
export const MSGPACK_TYPE = { 'content-type': 'application/msgpack' }

const INVALID = ['HTTP_INVALID_REQUEST']
const MALFORMED = ['HTTP_MALFORMED_BODY']
/** A body refused as not valid, or as not parseable; a `__proto__` key may be either. */
const BAD_BODY = ['HTTP_INVALID_REQUEST', 'HTTP_MALFORMED_BODY']

// ---- Raw JSON tokens: values JSON.stringify cannot write (1e400) or would cost too much to generate ----

const RAW = /"@@raw:(\d+)@@"/g
const rawTokens: string[] = []
const rawValues: unknown[] = []

/** A placeholder that JSON.stringify writes as a string and `toJson` replaces by `json`. */
function raw (json: string, value: unknown): string {
  rawTokens.push(json)
  rawValues.push(value)
  return `@@raw:${rawTokens.length - 1}@@`
}

const HUGE_VECTOR = raw(`[${'0,'.repeat(65_536)}0]`, new Array(65_537).fill(0))
const TOO_MANY_ENTRIES = raw(`[${'{"op":"delete","id":"d"},'.repeat(10_000)}{"op":"delete","id":"d"}]`, Array.from({ length: 10_001 }, () => ({ op: 'delete', id: 'd' })))
const NON_FINITE = [raw('1e400', Infinity), raw('-1e400', -Infinity), raw('1E999', Infinity)]

export function toJson (value: unknown): string {
  return JSON.stringify(value).replace(RAW, (_match, index: string) => rawTokens[Number(index)])
}

function resolveRaw (value: unknown): unknown {
  if (typeof value === 'string') {
    const match = /^@@raw:(\d+)@@$/.exec(value)
    return match === null ? value : rawValues[Number(match[1])]
  }
  if (Array.isArray(value)) return value.map(resolveRaw)
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) Object.defineProperty(out, k, { value: resolveRaw(v), enumerable: true, writable: true, configurable: true })
    return out
  }
  return value
}

const packr = new Packr({ moreTypes: true, useRecords: false })

export function toMsgpack (value: unknown): Buffer {
  return packr.pack(resolveRaw(value))
}

// ---- Entries ----

type Json = Record<string, unknown>

const number = fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true })
const text = (maxLength: number): fc.Arbitrary<string> => fc.string({ maxLength, unit: 'grapheme' })
const id = fc.string({ minLength: 1, maxLength: 24, unit: 'grapheme' })
const metaKey = fc.string({ minLength: 1, maxLength: 12 }).filter(k => k !== '__proto__')
const metadata = fc.array(fc.tuple(metaKey, text(16)), { maxLength: 4 }).map(pairs => Object.fromEntries(pairs) as Record<string, string>)

export const validEntry: fc.Arbitrary<Json> = fc.oneof(
  fc.record({ op: fc.constantFrom('insert', 'update'), id, vector: fc.array(number, { minLength: 1, maxLength: 8 }), metadata: fc.option(metadata, { nil: undefined }) })
    .map(e => e.metadata === undefined ? { op: e.op, id: e.id, vector: e.vector } : e),
  fc.record({ op: fc.constant('delete'), id })
)

/** Any JSON value but a string (and never undefined, which JSON.stringify would drop). */
const notString = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }), fc.dictionary(metaKey, fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }))
const notArray = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), text(8), fc.dictionary(metaKey, fc.integer(), { maxKeys: 2 }))
const notObject = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), text(8), fc.array(fc.integer(), { maxLength: 3 }))

/** A vector value that is not a finite float32: non-numbers, out of range, or 1e400. */
const badValue = fc.oneof(
  text(6),
  fc.constant(null),
  fc.boolean(),
  fc.array(number, { maxLength: 2 }),
  fc.dictionary(metaKey, number, { maxKeys: 1 }),
  fc.constantFrom(...NON_FINITE),
  fc.double({ min: FLOAT32_ROUNDING_LIMIT, max: 1e300, noNaN: true }).chain(v => fc.constantFrom(v, -v))
)

type Mutation = (entry: Json) => Json

function set (field: string, value: unknown): Json {
  return { [field]: value }
}

const mutations: fc.Arbitrary<Mutation> = fc.oneof(
  // op: not one of insert, update, delete
  fc.oneof(text(10).filter(s => !['insert', 'update', 'delete'].includes(s)), notString).map(op => (e: Json) => ({ ...e, ...set('op', op) })),
  // id: empty, too long, not a string
  fc.oneof(fc.constant(''), fc.string({ minLength: 257, maxLength: 300 }), notString).map(v => (e: Json) => ({ ...e, id: v })),
  // vector: empty, too long, not an array, a bad value among good ones; on a delete any vector is extra
  fc.oneof(fc.constant([]), fc.constant(HUGE_VECTOR), notArray, fc.tuple(fc.array(number, { maxLength: 3 }), badValue, fc.array(number, { maxLength: 3 })).map(([a, v, b]) => [...a, v, ...b]))
    .map(v => (e: Json) => ({ ...e, vector: v })),
  // metadata: not an object, a value not a string, too many keys, a key empty or too long, a value too long
  fc.oneof(
    notObject,
    fc.tuple(metaKey, notString).map(([k, v]) => ({ [k]: v })),
    fc.integer({ min: 65, max: 80 }).map(n => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']))),
    fc.constant({ '': 'v' }),
    fc.string({ minLength: 257, maxLength: 280 }).map(k => ({ [k]: 'v' })),
    fc.constant({ k: 'x'.repeat(65_537) })
  ).map(m => (e: Json) => ({ ...e, metadata: m })),
  // a field the entry does not have
  fc.tuple(
    fc.oneof(fc.constantFrom('constructor', 'prototype', 'toString', 'hasOwnProperty', 'seq', 'timestamp', 'txId', 'entries', 'Op', 'vectors'), fc.string({ minLength: 1, maxLength: 10 })),
    fc.jsonValue({ maxDepth: 2 })
  ).filter(([k]) => !['op', 'id', 'vector', 'metadata', '__proto__'].includes(k)).map(([k, v]) => (e: Json) => ({ ...e, ...set(k, v) })),
  // a required field missing
  fc.constantFrom('op', 'id', 'vector').map(field => (e: Json) => {
    const { [field]: _gone, ...rest } = e
    return field === 'vector' && e.op === 'delete' ? { ...rest, vector: [1] } : rest
  })
)

/** An entry made invalid by one to three mutations (always a JSON object). */
export const badEntry: fc.Arbitrary<Json> = fc.tuple(validEntry, fc.array(mutations, { minLength: 1, maxLength: 3 }))
  .map(([entry, changes]) => changes.reduce((e, change) => change(e), entry))

/** The codes a bad entry may get: 400, or 413 when a mutation made the body larger than the limit. */
function entryCodes (payload: string | Buffer, ground: Ground): readonly string[] {
  return payload.length > ground.bodyLimit ? ['HTTP_BODY_TOO_LARGE'] : BAD_BODY
}

function bodyRequest (method: string, url: string, body: unknown, encoding: 'json' | 'msgpack', ground: Ground, what: string): FuzzRequest {
  const payload = encoding === 'json' ? toJson(body) : toMsgpack(body)
  return { method, url, headers: encoding === 'json' ? JSON_TYPE : MSGPACK_TYPE, payload, codes: entryCodes(payload, ground), what }
}

const encoding = fc.constantFrom<'json' | 'msgpack'>('json', 'json', 'json', 'msgpack')

export function badEntryRequests (ground: Ground): fc.Arbitrary<FuzzRequest> {
  return fc.tuple(badEntry, encoding).map(([entry, enc]) => bodyRequest('POST', '/v1/entries', entry, enc, ground, `bad entry (${enc})`))
}

/** A batch with a bad entry among good ones, or with `entries` itself wrong, or a field too many. */
export function badBatchRequests (ground: Ground): fc.Arbitrary<FuzzRequest> {
  const body = fc.oneof(
    fc.tuple(fc.array(validEntry, { maxLength: 4 }), badEntry, fc.array(validEntry, { maxLength: 4 })).map(([a, bad, b]) => ({ entries: [...a, bad, ...b] })),
    notArray.map(entries => ({ entries })),
    fc.constant({ entries: [] }),
    fc.constant({ entries: TOO_MANY_ENTRIES }),
    fc.constant({}),
    fc.tuple(fc.array(validEntry, { minLength: 1, maxLength: 3 }), fc.string({ minLength: 1, maxLength: 8 }).filter(k => k !== 'entries' && k !== '__proto__'), fc.jsonValue({ maxDepth: 1 }))
      .map(([entries, k, v]) => ({ entries, ...set(k, v) })),
    notObject
  )
  return fc.tuple(body, encoding).map(([b, enc]) => bodyRequest('POST', '/v1/batch', b, enc, ground, `bad batch (${enc})`))
}

/** Staging a bad entry (alone or in `entries`) in an open transaction. */
export function badStageRequests (ground: Ground): fc.Arbitrary<FuzzRequest> {
  const body = fc.oneof(
    badEntry,
    fc.tuple(fc.array(validEntry, { maxLength: 3 }), badEntry).map(([good, bad]) => ({ entries: [...good, bad] })),
    notArray.map(entries => ({ entries })),
    fc.constant({ entries: [] })
  )
  return fc.tuple(body, encoding).map(([b, enc]) => bodyRequest('POST', `/v1/transactions/${ground.stagingTx}/entries`, b, enc, ground, `bad staging (${enc})`))
}

// ---- Bodies that are not JSON at all ----

/** Positions in a JSON text outside string literals (between tokens). */
function structuralPositions (json: string): number[] {
  const positions: number[] = []
  let inString = false
  for (let i = 0; i < json.length; i++) {
    const c = json[i]
    if (inString) {
      if (c === '\\') i++
      else if (c === '"') inString = false
    } else if (c === '"') {
      inString = true
    } else {
      positions.push(i)
    }
  }
  return positions
}

/** Byte sequences that are not UTF-8: stray continuation bytes, overlongs, surrogates, past U+10FFFF. */
const invalidUtf8 = fc.constantFrom(
  [0x80], [0xbf], [0xff], [0xfe], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc3], [0xe2, 0x82]
).map(bytes => Buffer.from(bytes))

/** Whether the service's JSON parser (which skips a leading byte order mark) takes the text. */
function isJson (s: string): boolean {
  try {
    JSON.parse(s.replace(/^\uFEFF/, ''))
    return true
  } catch {
    return false
  }
}

const postBodyRoutes = (ground: Ground): string[] => ['/v1/entries', '/v1/batch', `/v1/transactions/${ground.stagingTx}/entries`, '/v1/checkpoints', '/v1/transactions']

/** A valid body of the route (so that only the damage done to it makes the request bad). */
function validBodyFor (route: string, ground: Ground): fc.Arbitrary<Json> {
  if (route === '/v1/batch') return fc.array(validEntry, { minLength: 1, maxLength: 4 }).map(entries => ({ entries }))
  if (route === '/v1/checkpoints') return fc.constant({ seq: ground.checkpoint })
  if (route === '/v1/transactions') return fc.constant({})
  return validEntry
}

const DEEP = [64, 1_000, 20_000]

export function malformedJsonRequests (ground: Ground): fc.Arbitrary<FuzzRequest> {
  return fc.constantFrom(...postBodyRoutes(ground)).chain(route => {
    const valid = validBodyFor(route, ground).map(b => toJson(b))
    const truncated = valid.chain(json => fc.integer({ min: 0, max: json.length - 1 }).map(cut => ({ payload: json.slice(0, cut), what: 'truncated JSON' })))
    const garbage = fc.string({ maxLength: 40, unit: 'binary' }).filter(s => !isJson(s)).map(s => ({ payload: s, what: 'not JSON' }))
    const badBytes = fc.tuple(valid, invalidUtf8, fc.nat()).map(([json, bytes, at]) => {
      const places = structuralPositions(json)
      const i = places[at % places.length]
      return { payload: Buffer.concat([Buffer.from(json.slice(0, i)), bytes, Buffer.from(json.slice(i))]), what: 'invalid UTF-8 between tokens' }
    })
    const proto = fc.constantFrom(
      '{"__proto__":{"polluted":1},"op":"delete","id":"a"}',
      '{"op":"delete","id":"a","constructor":{"prototype":{"polluted":1}}}',
      '{"entries":[{"op":"delete","id":"a","__proto__":{"x":1}}]}',
      '{"op":"insert","id":"a","vector":[1],"metadata":{"__proto__":"x"}}'
    ).map(payload => ({ payload, what: 'prototype poisoning', codes: BAD_BODY }))
    const parsed = fc.oneof(
      fc.oneof(truncated, garbage, badBytes).map(bad => ({ ...bad, codes: MALFORMED })),
      proto
    ).map(({ payload, what, codes }) => ({ method: 'POST', url: route, headers: JSON_TYPE, payload, what, codes }))
    // Deep nesting inside an object entry: valid JSON the schemas refuse at the first level.
    const deep = fc.tuple(fc.constantFrom(...DEEP), fc.constantFrom('metadata', 'vector', 'op', 'extra')).map(([depth, where]) => {
      const nested = where === 'metadata' ? `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}` : `${'['.repeat(depth)}${']'.repeat(depth)}`
      const entry = where === 'metadata'
        ? `{"op":"insert","id":"a","vector":[1],"metadata":${nested}}`
        : where === 'vector' ? `{"op":"insert","id":"a","vector":${nested}}` : where === 'op' ? `{"op":${nested},"id":"a"}` : `{"op":"delete","id":"a","extra":${nested}}`
      const payload = route === '/v1/batch' ? `{"entries":[${entry}]}` : route === '/v1/checkpoints' ? `{"seq":${nested}}` : entry
      return { method: 'POST', url: route, headers: JSON_TYPE, payload, what: `nested ${depth} deep in ${where}`, codes: INVALID }
    })
    return route === '/v1/transactions' ? parsed : fc.oneof({ weight: 4, arbitrary: parsed }, { weight: 1, arbitrary: deep })
  })
}

// ---- Content types ----

const unsupportedType = fc.oneof(
  fc.constantFrom('text/plain', 'text/json', 'application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x',
    'application/jsonx', 'application/json-seq', 'application/x-json', 'application/x-msgpack', 'application/octet-stream', '*/*', 'application/*', ''),
  fc.stringMatching(/^[a-z]{1,10}\/[a-z0-9.+-]{1,12}$/).filter(t => t !== 'application/json' && t !== 'application/msgpack')
)

/** A valid body with a content type no parser takes, or none: 415, and nothing written or staged. */
export function contentTypeRequests (ground: Ground): fc.Arbitrary<FuzzRequest> {
  return fc.constantFrom('/v1/entries', '/v1/batch', `/v1/transactions/${ground.stagingTx}/entries`, '/v1/checkpoints').chain(route =>
    fc.tuple(validBodyFor(route, ground), fc.option(unsupportedType, { nil: undefined })).map(([body, type]): FuzzRequest => ({
      method: 'POST',
      url: route,
      headers: type === undefined ? {} : { 'content-type': type },
      payload: toJson(body),
      codes: ['HTTP_UNSUPPORTED_MEDIA_TYPE'],
      what: `content type ${JSON.stringify(type ?? 'none')}`
    }))
  )
}

/** A JSON body sent as msgpack, or msgpack sent as JSON. */
export function crossedTypeRequests (ground: Ground): fc.Arbitrary<FuzzRequest> {
  return fc.tuple(fc.constantFrom('/v1/entries', '/v1/batch', `/v1/transactions/${ground.stagingTx}/entries`), fc.boolean()).chain(([route, asMsgpack]) =>
    validBodyFor(route, ground).map((body): FuzzRequest => ({
      method: 'POST',
      url: route,
      headers: asMsgpack ? MSGPACK_TYPE : JSON_TYPE,
      payload: asMsgpack ? toJson(body) : toMsgpack(body),
      codes: BAD_BODY,
      what: asMsgpack ? 'JSON sent as msgpack' : 'msgpack sent as JSON'
    }))
  )
}

/** Bodies past the limit, as JSON or msgpack: 413. */
export function oversizedRequests (ground: Ground): fc.Arbitrary<FuzzRequest> {
  return fc.tuple(fc.constantFrom(...postBodyRoutes(ground)), fc.integer({ min: 1, max: ground.bodyLimit }), fc.boolean()).map(([route, extra, msgpack]) => {
    const size = ground.bodyLimit + extra
    const body = { op: 'insert', id: 'big', vector: [1], metadata: { k: 'x'.repeat(size) } }
    return {
      method: 'POST',
      url: route,
      headers: msgpack ? MSGPACK_TYPE : JSON_TYPE,
      payload: msgpack ? toMsgpack(body) : toJson(body),
      codes: ['HTTP_BODY_TOO_LARGE'],
      what: `${size}-byte body`
    }
  })
}

// ---- msgpack ----

/** True when the bytes decode, as the service decodes them, to something other than a plain object. */
function decodesToNonObject (bytes: Uint8Array): boolean {
  let value: unknown
  try {
    value = decodeMsgpackBody(Buffer.from(bytes))
  } catch {
    return false
  }
  return typeof value !== 'object' || value === null || Array.isArray(value) || ArrayBuffer.isView(value)
}

/**
 * Random bytes sent as msgpack: malformed, or decoding to an object that is no entry. Bytes that
 * decode to a bare number, string, array or null are left out: the regression property for
 * non-object bodies covers them.
 */
export function junkMsgpackRequests (ground: Ground): fc.Arbitrary<FuzzRequest> {
  const bytes = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 64 }),
    fc.tuple(fc.integer({ min: 0x81, max: 0x8f }), fc.uint8Array({ minLength: 1, maxLength: 64 })).map(([head, rest]) => Uint8Array.from([head, ...rest])),
    fc.tuple(validEntry, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([entry, at, byte]) => {
      const packed = toMsgpack(entry)
      const damaged = Buffer.from(packed)
      damaged[at % packed.length] = byte
      return damaged
    })
  ).filter(b => !decodesToNonObject(b))
  return fc.tuple(fc.constantFrom('/v1/entries', '/v1/batch', `/v1/transactions/${ground.stagingTx}/entries`), bytes).map(([route, payload]) => ({
    method: 'POST',
    url: route,
    headers: MSGPACK_TYPE,
    payload: Buffer.from(payload),
    codes: BAD_BODY,
    what: 'random msgpack bytes'
  })).filter(r => !isValidEntryBody(r))
}

/** A damaged valid entry can, rarely, still be a valid entry (a changed vector value): not generated. */
function isValidEntryBody (request: FuzzRequest): boolean {
  let value: unknown
  try {
    value = decodeMsgpackBody(request.payload as Buffer)
  } catch {
    return false
  }
  const looksValid = (e: unknown): boolean => {
    if (typeof e !== 'object' || e === null) return false
    const entry = e as Json
    const keys = Object.keys(entry)
    // Lengths as the schemas count them: in code points.
    const length = (s: string): number => [...s].length
    if (typeof entry.id !== 'string' || length(entry.id) === 0 || length(entry.id) > 256) return false
    if (entry.op === 'delete') return keys.every(k => k === 'op' || k === 'id')
    if (entry.op !== 'insert' && entry.op !== 'update') return false
    // A bin vector is refused without `; bin=float32le`, which these requests do not send.
    const vector = entry.vector instanceof Float32Array ? Array.from(entry.vector) : entry.vector
    if (!Array.isArray(vector) || vector.length === 0 || !vector.every(v => typeof v === 'number' && Math.abs(v) < FLOAT32_ROUNDING_LIMIT)) return false
    if (entry.metadata !== undefined && (typeof entry.metadata !== 'object' || entry.metadata === null || Array.isArray(entry.metadata) ||
      Object.keys(entry.metadata).length > 64 ||
      !Object.entries(entry.metadata).every(([k, v]) => length(k) > 0 && length(k) <= 256 && typeof v === 'string' && length(v) <= 65_536))) return false
    return keys.every(k => ['op', 'id', 'vector', 'metadata'].includes(k))
  }
  if (request.url === '/v1/batch') {
    const body = value as Json
    return typeof body === 'object' && body !== null && Array.isArray(body.entries) && Object.keys(body).length === 1 && body.entries.length > 0 && body.entries.every(looksValid)
  }
  return looksValid(value)
}

// ---- Query strings ----

/** How the service reads a query value as an integer (Ajv's coercion: +value for a non-empty string). */
function asInteger (value: string): number | undefined {
  if (value === '') return undefined
  const n = Number(value)
  return Number.isSafeInteger(n) ? n : undefined
}

const queryText = fc.oneof(
  fc.constantFrom('', '-1', '-0.5', '1.5', 'abc', 'true', 'null', 'NaN', 'Infinity', '-Infinity', '1e400', '9007199254740993', '99999999999999999999', '0x', ' ', '[]', '{}', '%zz'),
  fc.string({ maxLength: 12, unit: 'binary' }),
  fc.integer({ min: -1e6, max: -1 }).map(String),
  fc.double({ noNaN: true }).map(String),
  fc.bigInt({ min: BigInt(MAX_SAFE) + 1n, max: 10n ** 30n }).map(String)
)

function encodeValue (value: string): string {
  return value === '%zz' ? value : encodeURIComponent(value)
}

/**
 * GET /v1/recovery with at least one bad part: `after` or `limit` not an integer in range, an
 * unknown parameter, a parameter twice, or `after` before the oldest retained record (410) or past
 * the last seq (416).
 */
/** `after` or `limit` refused by the schema (or, should one get past it, by the engine). */
const BAD_QUERY = ['HTTP_INVALID_REQUEST', 'WAL_INVALID_ARGUMENT']

/**
 * A limit that reads as +Infinity (`Infinity`, `1e400`): Ajv's own coercion once let it through as
 * no limit at all. The regression property for it in fuzz.test.ts uses this.
 */
export function infiniteLimit (value: string): boolean {
  return value !== '' && Number(value) === Infinity
}

export function recoveryRequests (ground: Ground): fc.Arbitrary<FuzzRequest> {
  const validAfter = (n: number | undefined): boolean => n !== undefined && n >= ground.oldest - 1 && n <= ground.lastSeq
  const validLimit = (n: number | undefined): boolean => n !== undefined && n >= 1
  const after = fc.oneof(queryText, fc.integer({ min: 0, max: ground.oldest - 2 }).map(String), fc.integer({ min: ground.lastSeq + 1, max: MAX_SAFE }).map(String), fc.integer({ min: ground.oldest - 1, max: ground.lastSeq }).map(String))
  const limit = fc.oneof(queryText, fc.integer({ min: 1, max: 100 }).map(String))
  const extra = fc.tuple(fc.oneof(fc.constantFrom('__proto__', 'constructor', 'x', 'Limit', 'AFTER', 'after[]'), fc.string({ minLength: 1, maxLength: 6 })), queryText)
    .filter(([k]) => k !== 'after' && k !== 'limit')
  return fc.record({
    after: fc.option(after, { nil: undefined }),
    limit: fc.option(limit, { nil: undefined }),
    extra: fc.option(extra, { nil: undefined }),
    twice: fc.boolean()
  }).filter(q => {
    const afterOk = q.after === undefined || validAfter(asInteger(q.after))
    const limitOk = q.limit === undefined || validLimit(asInteger(q.limit))
    return !(afterOk && limitOk && q.extra === undefined && !q.twice)
  }).map(q => {
    const parts: string[] = []
    if (q.after !== undefined) parts.push(`after=${encodeValue(q.after)}`)
    if (q.limit !== undefined) parts.push(`limit=${encodeValue(q.limit)}`)
    if (q.twice) parts.push(q.after !== undefined ? `after=${encodeValue(q.after)}` : 'limit=1&limit=2')
    if (q.extra !== undefined) parts.push(`${encodeURIComponent(q.extra[0])}=${encodeValue(q.extra[1])}`)
    const a = q.after === undefined ? undefined : asInteger(q.after)
    const onlyRange = q.extra === undefined && !q.twice && (q.limit === undefined || validLimit(asInteger(q.limit))) && a !== undefined
    // A value written other than as a plain decimal ("1e1", " 5") may be read as the number or refused.
    const plain = q.after !== undefined && /^\d+$/.test(q.after)
    const range = onlyRange ? (a > ground.lastSeq ? ['WAL_RANGE_AHEAD'] : a < ground.oldest - 1 && a >= 0 ? ['WAL_RANGE_GONE'] : []) : []
    const codes = range.length === 0 ? BAD_QUERY : plain ? range : [...range, ...BAD_QUERY]
    return { method: 'GET', url: `/v1/recovery?${parts.join('&')}`, headers: {}, codes, what: 'recovery query' }
  })
}

// ---- Transactions ----

/** Transaction routes with an id that is no open transaction: unknown, too long, or not one at all. */
export function transactionRequests (ground: Ground): fc.Arbitrary<FuzzRequest> {
  const txId = fc.oneof(
    fc.uuid(),
    fc.string({ minLength: 1, maxLength: 64, unit: 'binary' }),
    fc.string({ minLength: 65, maxLength: 120 }),
    fc.constantFrom('null', 'undefined', '0', '...', '%zz', 'constructor', '__proto__', 'toString', ground.stagingTx.toUpperCase(), `${ground.stagingTx}x`)
  // A path segment "." or ".." is resolved away by URL parsing (/v1/transactions/../entries is
  // POST /v1/entries): not an id at all.
  ).filter(id => id !== '.' && id !== '..')
  return fc.tuple(txId, fc.constantFrom('entries', 'commit', 'abort'), validEntry).map(([id, action, entry]) => {
    const segment = id === '%zz' ? id : encodeURIComponent(id)
    const stage = action === 'entries'
    return {
      method: 'POST',
      url: `/v1/transactions/${segment}/${action}`,
      headers: stage ? JSON_TYPE : {},
      payload: stage ? toJson(entry) : undefined,
      codes: ['WAL_TX_NOT_FOUND', 'HTTP_INVALID_REQUEST', 'HTTP_NOT_FOUND'],
      what: `${action} of transaction ${JSON.stringify(id)}`
    }
  })
}

// ---- Checkpoints ----

/** Checkpoint bodies that are malformed, or move the checkpoint back (409), or pass the last seq (409). */
export function checkpointRequests (ground: Ground): fc.Arbitrary<FuzzRequest> {
  const body = fc.oneof(
    fc.integer({ min: 0, max: ground.checkpoint - 1 }).map(seq => ({ body: { seq } as unknown, codes: ['WAL_CHECKPOINT_BACKWARDS'] })),
    fc.integer({ min: ground.lastSeq + 1, max: MAX_SAFE }).map(seq => ({ body: { seq } as unknown, codes: ['WAL_CHECKPOINT_AHEAD'] })),
    fc.oneof(
      fc.integer({ max: -1 }), fc.double({ noNaN: true, noDefaultInfinity: true }).filter(d => !Number.isInteger(d)), fc.constant(MAX_SAFE + 2),
      text(6), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 }), fc.dictionary(metaKey, fc.integer(), { maxKeys: 2 }), fc.constantFrom(...NON_FINITE)
    ).map(seq => ({ body: { seq } as unknown, codes: INVALID })),
    fc.tuple(fc.string({ minLength: 1, maxLength: 8 }).filter(k => k !== 'seq' && k !== '__proto__'), fc.jsonValue({ maxDepth: 1 })).map(([k, v]) => ({ body: set(k, v) as unknown, codes: BAD_BODY })),
    notObject.map(b => ({ body: b as unknown, codes: INVALID }))
  )
  return fc.tuple(body, encoding).map(([{ body: b, codes }, enc]) => ({ ...bodyRequest('POST', '/v1/checkpoints', b, enc, ground, `checkpoint ${toJson(b)} (${enc})`), codes }))
}

// ---- Routes that do not exist ----

const ROUTES: Record<string, string[]> = {
  GET: ['/v1/status', '/v1/recovery', '/health/live', '/health/ready', '/metrics', '/openapi.json'],
  POST: ['/v1/entries', '/v1/batch', '/v1/transactions', '/v1/checkpoints']
}

/** Methods and paths no route answers: 404 HTTP_NOT_FOUND. */
export function unknownRouteRequests (): fc.Arbitrary<FuzzRequest> {
  const segment = fc.stringMatching(/^[a-zA-Z0-9._~-]{1,10}$/).filter(s => s !== '.' && s !== '..')
  const path = fc.oneof(
    fc.array(segment, { minLength: 1, maxLength: 4 }).map(s => `/${s.join('/')}`),
    segment.map(s => `/v1/${s}`),
    fc.constantFrom(...ROUTES.GET, ...ROUTES.POST).chain(known => fc.constantFrom(`${known}/`, `${known}/x`, `/${known}`, known.toUpperCase(), known))
  ).filter(p => !p.startsWith('/docs') && !/^\/v1\/transactions\/[^/]+\/(entries|commit|abort)$/.test(p))
  return fc.tuple(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'), path)
    .filter(([method, p]) => !(ROUTES[method] ?? []).includes(p))
    .map(([method, p]) => ({ method, url: p, headers: {}, codes: ['HTTP_NOT_FOUND'], what: `${method} ${p}` }))
}
