// Strict validation: no coercion, no unknown fields, finite float32 values, every limit; each
// refusal is a 4xx in the error shape naming the field, and leaves the log as it was.
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { ENTRY_LIMITS } from '../../src/entry.js'
import { assertError, lastSeq, startTestService, type TestService } from '../helpers/http.js'

interface Case {
  name: string
  route?: string
  /** An object is sent as JSON; a string is sent as it is (raw JSON text). */
  body: unknown
  names: string | RegExp
}

const insert = (fields: Record<string, unknown> = {}): Record<string, unknown> => ({ op: 'insert', id: 'a', vector: [0.5, 1], ...fields })
const metadataOf = (count: number): Record<string, string> => Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, 'v']))

/** Sends the case, expects the error, and checks the log did not move. */
async function refused (t: Test, service: TestService, route: string, body: unknown, statusCode: number, code: string, names?: string | RegExp): Promise<void> {
  const before = await lastSeq(service)
  await assertError(t, await service.call('POST', route, body), statusCode, code, names)
  t.equal(await lastSeq(service), before, 'the log is unchanged')
}

async function runCases (t: Test, service: TestService, cases: Case[]): Promise<void> {
  for (const c of cases) {
    await t.test(c.name, async t => {
      await refused(t, service, c.route ?? '/v1/entries', c.body, 400, 'HTTP_INVALID_REQUEST', c.names)
    })
  }
}

t.test('entries: coercion, unknown fields, non-finite and out-of-range values, limits', async t => {
  const service = await startTestService(t)
  t.equal((await service.call('POST', '/v1/entries', insert())).status, 201, 'a valid entry is accepted')
  await runCases(t, service, [
    { name: 'a string in the vector is not coerced', body: insert({ vector: ['1'] }), names: 'vector/0' },
    { name: 'a number id is not coerced', body: insert({ id: 5 }), names: '/id' },
    { name: 'a boolean in the vector', body: insert({ vector: [true] }), names: 'vector/0' },
    { name: 'null in the vector', body: insert({ vector: [1, null] }), names: 'vector/1' },
    { name: 'a vector that is not an array', body: insert({ vector: '1,2' }), names: '/vector' },
    { name: 'an unknown top-level field', body: insert({ extra: 1 }), names: 'extra' },
    { name: 'a vector on a delete', body: { op: 'delete', id: 'a', vector: [1] }, names: 'vector' },
    { name: 'no op', body: { id: 'a', vector: [1] }, names: 'op' },
    { name: 'an unknown op', body: insert({ op: 'upsert' }), names: 'op' },
    { name: 'no id', body: { op: 'insert', vector: [1] }, names: 'id' },
    { name: 'no vector on an insert', body: { op: 'insert', id: 'a' }, names: 'vector' },
    { name: '1e400 (Infinity) sent as raw JSON', body: '{"op":"insert","id":"a","vector":[0.5,1e400]}', names: 'vector/1' },
    { name: '-1e400 sent as raw JSON', body: '{"op":"update","id":"a","vector":[-1e400]}', names: 'vector/0' },
    { name: 'a value past float32 range', body: insert({ vector: [3.5e38] }), names: 'vector/0' },
    { name: 'a negative value past float32 range', body: insert({ vector: [1, -3.5e38] }), names: 'vector/1' },
    { name: 'the first value rounding to Infinity as a float32 (2^128 - 2^103)', body: insert({ vector: [2 ** 128 - 2 ** 103] }), names: 'vector/0' },
    { name: 'an id of 257 characters', body: insert({ id: 'x'.repeat(257) }), names: '/id' },
    { name: 'an empty id', body: insert({ id: '' }), names: '/id' },
    { name: 'an empty vector', body: insert({ vector: [] }), names: '/vector' },
    { name: '65,537 vector values', body: insert({ vector: new Array(65_537).fill(0) }), names: '/vector' },
    { name: 'metadata with 65 keys', body: insert({ metadata: metadataOf(65) }), names: '/metadata' },
    { name: 'a metadata key of 257 characters', body: insert({ metadata: { ['k'.repeat(257)]: 'v' } }), names: '/metadata' },
    { name: 'an empty metadata key', body: insert({ metadata: { '': 'v' } }), names: '/metadata' },
    { name: 'a metadata value of 65,537 characters', body: insert({ metadata: { k: 'v'.repeat(65_537) } }), names: 'metadata/k' },
    { name: 'a number as metadata value', body: insert({ metadata: { k: 1 } }), names: 'metadata/k' },
    { name: 'metadata that is not an object', body: insert({ metadata: ['v'] }), names: '/metadata' },
    { name: 'a lone surrogate in the id (no UTF-8 form)', body: '{"op":"insert","id":"a\\ud800b","vector":[1]}', names: '/id' },
    { name: 'a lone low surrogate in a delete\'s id', body: '{"op":"delete","id":"\\udc00"}', names: '/id' },
    { name: 'a lone surrogate in a metadata key', body: '{"op":"insert","id":"a","vector":[1],"metadata":{"k\\udc00":"v"}}', names: '/metadata' },
    { name: 'a lone surrogate in a metadata value', body: '{"op":"insert","id":"a","vector":[1],"metadata":{"k":"\\ud83d"}}', names: 'metadata/k' },
    { name: 'a JSON array as the body', body: [insert()], names: 'body' },
    { name: 'JSON null as the body', body: 'null', names: 'body' },
    { name: 'a JSON string as the body', body: '"insert"', names: 'body' },
    { name: 'a JSON number as the body', body: '5', names: 'body' }
  ])
})

t.test('a metadata key holding a line break is held to the value rules like any other', async t => {
  // TypeBox's Record matched keys with `^(.*)$`, and `.` stops at a line break: such a key let a
  // number through to the writer (a 500) and a string past the length limit into the log.
  const service = await startTestService(t)
  const breaks = ['\n', '\r', '\u2028', '\u2029']
  const key = fc.tuple(fc.string({ maxLength: 8 }), fc.constantFrom(...breaks), fc.string({ maxLength: 8 })).map(([a, b, c]) => a + b + c)
  const tried = fc.sample(fc.tuple(key, fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.constant('x'.repeat(ENTRY_LIMITS.metadataValueMaxLength + 1)))), 12)
  for (const [name, value] of tried) {
    // As a pattern: a line break in an assertion's name would break tap's own output.
    const place = `/metadata/${name.replaceAll('~', '~0').replaceAll('/', '~1')}`
    await refused(t, service, '/v1/entries', insert({ metadata: { [name]: value } }), 400, 'HTTP_INVALID_REQUEST', new RegExp(place.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
  }
  const [name] = fc.sample(key, 1)
  t.equal((await service.call('POST', '/v1/entries', insert({ metadata: { [name]: 'a string' } }))).status, 201, 'with a string value it is taken')
})

t.test('entries at the limits are accepted', async t => {
  const service = await startTestService(t)
  const accepted = [
    insert({ id: 'x'.repeat(256) }),
    insert({ vector: new Array(65_536).fill(0.25) }),
    insert({ metadata: metadataOf(64) }),
    insert({ metadata: { ['k'.repeat(256)]: 'v'.repeat(65_536) } }),
    insert({ vector: [3.4028234663852886e38, -3.4028234663852886e38] }),
    // The largest float32 as every read form prints it (its shortest decimal, a little above it as
    // a double): a record read back and posted again must be taken. And the last double below the
    // value that rounds to Infinity.
    insert({ vector: [3.4028235e38, -3.4028235e38, 3.4028235677973362e38] }),
    insert({ id: 'a surrogate pair 🎉', metadata: { '🔑': '中文 🎉' } })
  ]
  for (const body of accepted) t.equal((await service.call('POST', '/v1/entries', body)).status, 201)
  t.equal(await lastSeq(service), accepted.length)
})

t.test('batches: entry count, unknown fields, one bad entry refuses all', async t => {
  const service = await startTestService(t)
  await runCases(t, service, [
    { name: 'no entries', route: '/v1/batch', body: { entries: [] }, names: 'entries' },
    { name: '10,001 entries', route: '/v1/batch', body: { entries: Array.from({ length: 10_001 }, (_, i) => ({ op: 'delete', id: `d${i}` })) }, names: 'entries' },
    { name: 'no entries field', route: '/v1/batch', body: {}, names: 'entries' },
    { name: 'an unknown top-level field', route: '/v1/batch', body: { entries: [insert()], atomic: true }, names: 'atomic' },
    { name: 'an unknown field in an entry', route: '/v1/batch', body: { entries: [insert(), insert({ extra: 1 })] }, names: 'entries/1/extra' },
    { name: 'a coerced value in the second entry', route: '/v1/batch', body: { entries: [insert(), insert({ vector: ['1'] })] }, names: 'entries/1/vector/0' },
    { name: 'Infinity in an entry', route: '/v1/batch', body: '{"entries":[{"op":"insert","id":"a","vector":[1e400]}]}', names: 'entries/0/vector/0' },
    { name: 'a single entry instead of {entries}', route: '/v1/batch', body: insert(), names: /body/ },
    { name: 'a number as an entry', route: '/v1/batch', body: { entries: [insert(), 5] }, names: 'entries/1' },
    { name: 'null as an entry', route: '/v1/batch', body: { entries: [null] }, names: 'entries/0' },
    { name: 'an array as an entry', route: '/v1/batch', body: { entries: [[insert()]] }, names: 'entries/0' }
  ])
  const full = await service.call('POST', '/v1/batch', { entries: Array.from({ length: 10_000 }, (_, i) => ({ op: 'delete', id: `d${i}` })) })
  t.equal(full.status, 201, '10,000 entries are accepted')
  t.same(await full.json(), { seq: 1, count: 10_000 })
})

t.test('checkpoint bodies are strict too', async t => {
  const service = await startTestService(t)
  for (let i = 0; i < 3; i++) await service.call('POST', '/v1/entries', insert())
  await runCases(t, service, [
    { name: 'a string seq is not coerced', route: '/v1/checkpoints', body: { seq: '3' }, names: '/seq' },
    { name: 'an unknown field', route: '/v1/checkpoints', body: { seq: 3, force: true }, names: 'force' },
    { name: 'a negative seq', route: '/v1/checkpoints', body: { seq: -1 }, names: '/seq' },
    { name: 'a fractional seq', route: '/v1/checkpoints', body: { seq: 1.5 }, names: '/seq' }
  ])
  const status = await (await service.call('GET', '/v1/status')).json() as { checkpoint: number }
  t.equal(status.checkpoint, 0, 'no refused checkpoint took effect')
})

t.test('VECWAL_DIMENSIONS fixes the vector length everywhere', async t => {
  const service = await startTestService(t, { VECWAL_DIMENSIONS: '3' })
  await runCases(t, service, [
    { name: 'four values for three dimensions', body: insert({ vector: [1, 2, 3, 4] }), names: '/vector' },
    { name: 'two values for three dimensions', body: insert({ vector: [1, 2] }), names: '/vector' },
    { name: 'in a batch', route: '/v1/batch', body: { entries: [insert({ vector: [1, 2, 3, 4] })] }, names: 'entries/0/vector' }
  ])
  t.equal((await service.call('POST', '/v1/entries', insert({ vector: [1, 2, 3] }))).status, 201, 'three values are accepted')
  const { txId } = await (await service.call('POST', '/v1/transactions')).json() as { txId: string }
  await assertError(t, await service.call('POST', `/v1/transactions/${txId}/entries`, insert({ vector: [1, 2, 3, 4] })), 400, 'HTTP_INVALID_REQUEST', '/vector')
})

t.test('bodies: missing, malformed, wrong content type, too large', async t => {
  const service = await startTestService(t, { VECWAL_BODY_LIMIT_BYTES: '2048' })
  await service.call('POST', '/v1/entries', insert())
  for (const route of ['/v1/entries', '/v1/batch']) {
    await t.test(`no body at all on ${route}`, async t => {
      await refused(t, service, route, undefined, 400, 'HTTP_INVALID_REQUEST', 'body')
    })
  }
  await t.test('an empty JSON body', async t => {
    await refused(t, service, '/v1/entries', '', 400, 'HTTP_MALFORMED_BODY')
  })
  await t.test('malformed JSON', async t => {
    await refused(t, service, '/v1/entries', '{"op":"insert","id":', 400, 'HTTP_MALFORMED_BODY', 'JSON')
  })
  await t.test('a __proto__ key', async t => {
    await refused(t, service, '/v1/entries', '{"op":"insert","id":"a","vector":[1],"__proto__":{"x":1}}', 400, 'HTTP_INVALID_REQUEST', '__proto__')
  })
  await t.test('a __proto__ key inside metadata', async t => {
    await refused(t, service, '/v1/entries', '{"op":"insert","id":"a","vector":[1],"metadata":{"__proto__":"x"}}', 400, 'HTTP_INVALID_REQUEST', '__proto__')
  })
  await t.test('text/plain is 415', async t => {
    const before = await lastSeq(service)
    const response = await service.call('POST', '/v1/entries', JSON.stringify(insert()), { 'content-type': 'text/plain' })
    await assertError(t, response, 415, 'HTTP_UNSUPPORTED_MEDIA_TYPE', 'text/plain')
    t.equal(await lastSeq(service), before, 'the log is unchanged')
  })
  await t.test('a body over VECWAL_BODY_LIMIT_BYTES is 413', async t => {
    await refused(t, service, '/v1/entries', insert({ vector: new Array(1000).fill(0.5) }), 413, 'HTTP_BODY_TOO_LARGE', '2048')
  })
})

t.test('recovery query: strict integers, no unknown parameters', async t => {
  const service = await startTestService(t)
  await service.call('POST', '/v1/entries', insert())
  const cases: Array<[string, string]> = [
    ['after=abc', 'after'],
    ['after=-1', 'after'],
    ['after=1.5', 'after'],
    ['limit=0', 'limit'],
    ['limit=abc', 'limit'],
    ['limit=Infinity', 'limit'],
    ['limit=1e400', 'limit'],
    ['after=0x1', 'after'],
    ['after=', 'after'],
    ['after=1&after=2', 'after'],
    ['after=0&tail=true', 'tail'],
    ['follow=1', 'follow'],
    ['wait=61', 'wait'],
    ['wait=-1', 'wait'],
    ['wait=1.5', 'wait']
  ]
  for (const [query, names] of cases) {
    await t.test(query, async t => {
      await assertError(t, await service.call('GET', `/v1/recovery?${query}`), 400, 'HTTP_INVALID_REQUEST', names)
    })
  }
})
