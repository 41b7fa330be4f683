// application/msgpack request bodies: the same entries as JSON, vectors as number arrays or as
// Float32Arrays (msgpackr's typed-array extension), validated by the same schemas.
import { Packr } from 'msgpackr'
import t from 'tap'
import { assertError, lastSeq, recoverAll, startTestService } from '../helpers/http.js'

const packr = new Packr({ moreTypes: true })
/** Plain msgpack maps and arrays, as a client in another language would send them. */
const plainPackr = new Packr({ useRecords: false })
const MSGPACK = { 'content-type': 'application/msgpack' }

/** The body with the bytes of the string `placeholder` (ASCII) replaced by `bytes`, as long. */
function withRawString (body: Buffer, placeholder: string, bytes: number[]): Buffer {
  const at = body.indexOf(placeholder)
  if (at === -1 || bytes.length !== placeholder.length) throw new Error('no such placeholder')
  const out = Buffer.from(body)
  Buffer.from(bytes).copy(out, at)
  return out
}

t.test('POST /v1/entries with a Float32Array vector and with a plain number array', async t => {
  const service = await startTestService(t)
  const vector = new Float32Array([0.1, -2.5, 1 / 3])
  const typed = packr.pack({ op: 'insert', id: 'typed', vector, metadata: { k: 'v' } })
  t.ok(typed.includes(Buffer.from(vector.buffer)), 'the vector travels as raw float32 bytes (the typed-array extension)')
  const first = await service.call('POST', '/v1/entries', typed, MSGPACK)
  t.equal(first.status, 201)
  t.same(await first.json(), { seq: 1 })
  const plain = await service.call('POST', '/v1/entries', plainPackr.pack({ op: 'update', id: 'plain', vector: [0.1, 7] }), MSGPACK)
  t.equal(plain.status, 201)
  t.same(await plain.json(), { seq: 2 })
  const deleted = await service.call('POST', '/v1/entries', packr.pack({ op: 'delete', id: 'typed' }), MSGPACK)
  t.same(await deleted.json(), { seq: 3 })

  const text = await (await service.call('GET', '/v1/recovery?after=0')).text()
  t.ok(text.includes('"vector":[0.1,-2.5,0.33333334]'), 'float32 values print shortest')
  const lines = await recoverAll(service)
  t.match(lines, [
    { seq: 1, op: 'insert', id: 'typed', vector: [0.1, -2.5, 0.33333334], metadata: { k: 'v' } },
    { seq: 2, op: 'update', id: 'plain', vector: [0.1, 7] },
    { seq: 3, op: 'delete', id: 'typed' }
  ])
})

t.test('POST /v1/batch and staging with msgpack', async t => {
  const service = await startTestService(t)
  const entries = [
    { op: 'insert', id: 'a', vector: new Float32Array([1, 2]) },
    { op: 'update', id: 'b', vector: [3, 4] },
    { op: 'delete', id: 'c' }
  ]
  const batch = await service.call('POST', '/v1/batch', packr.pack({ entries }), MSGPACK)
  t.equal(batch.status, 201)
  t.same(await batch.json(), { seq: 1, count: 3 })

  const { txId } = await (await service.call('POST', '/v1/transactions')).json() as { txId: string }
  const one = await service.call('POST', `/v1/transactions/${txId}/entries`, packr.pack({ op: 'insert', id: 'd', vector: new Float32Array([5]) }), MSGPACK)
  t.equal(one.status, 202)
  t.same(await one.json(), { txId, staged: 1 })
  const many = await service.call('POST', `/v1/transactions/${txId}/entries`, plainPackr.pack({ entries: [{ op: 'insert', id: 'e', vector: [6] }, { op: 'delete', id: 'd' }] }), MSGPACK)
  t.same(await many.json(), { txId, staged: 3 })
  t.equal((await service.call('POST', `/v1/transactions/${txId}/commit`)).status, 201)

  const lines = await recoverAll(service)
  t.same(lines.map(l => ({ ...l, timestamp: 0 })), [
    { seq: 1, op: 'batch', entries: [{ op: 'insert', id: 'a', vector: [1, 2] }, { op: 'update', id: 'b', vector: [3, 4] }, { op: 'delete', id: 'c' }], timestamp: 0 },
    { seq: 2, op: 'batch', entries: [{ op: 'insert', id: 'd', vector: [5] }, { op: 'insert', id: 'e', vector: [6] }, { op: 'delete', id: 'd' }], txId, timestamp: 0 }
  ])
})

t.test('msgpack bodies are refused as JSON ones are', async t => {
  const service = await startTestService(t, { VECWAL_BODY_LIMIT_BYTES: '2048' })
  await service.call('POST', '/v1/entries', { op: 'insert', id: 'seed', vector: [1] })
  const valid = packr.pack({ op: 'insert', id: 'a', vector: new Float32Array([1, 2, 3]) })
  const cases: Array<{ name: string, body: Uint8Array, route?: string, status?: number, code: string, names?: string }> = [
    { name: 'truncated msgpack', body: valid.subarray(0, valid.length - 3), code: 'HTTP_MALFORMED_BODY', names: 'msgpack' },
    { name: 'trailing bytes after the value', body: Buffer.concat([valid, Buffer.from([0x01])]), code: 'HTTP_MALFORMED_BODY', names: 'msgpack' },
    { name: 'NaN in a Float32Array', body: packr.pack({ op: 'insert', id: 'a', vector: new Float32Array([1, NaN]) }), code: 'HTTP_INVALID_REQUEST', names: 'vector/1' },
    { name: 'Infinity in a Float32Array', body: packr.pack({ op: 'insert', id: 'a', vector: new Float32Array([Infinity]) }), code: 'HTTP_INVALID_REQUEST', names: 'vector/0' },
    { name: '-Infinity in a batch entry', route: '/v1/batch', body: packr.pack({ entries: [{ op: 'insert', id: 'a', vector: new Float32Array([-Infinity]) }] }), code: 'HTTP_INVALID_REQUEST', names: 'entries/0/vector/0' },
    { name: 'NaN as a plain float64', body: plainPackr.pack({ op: 'insert', id: 'a', vector: [NaN] }), code: 'HTTP_INVALID_REQUEST', names: 'vector/0' },
    { name: 'a value past float32 range as float64', body: plainPackr.pack({ op: 'insert', id: 'a', vector: [3.5e38] }), code: 'HTTP_INVALID_REQUEST', names: 'vector/0' },
    { name: 'a Float64Array vector', body: packr.pack({ op: 'insert', id: 'a', vector: new Float64Array([1]) }), code: 'HTTP_INVALID_REQUEST', names: '/vector' },
    { name: 'a string in the vector', body: plainPackr.pack({ op: 'insert', id: 'a', vector: ['1'] }), code: 'HTTP_INVALID_REQUEST', names: 'vector/0' },
    { name: 'an unknown field', body: packr.pack({ op: 'insert', id: 'a', vector: [1], extra: true }), code: 'HTTP_INVALID_REQUEST', names: 'extra' },
    { name: 'a __proto__ key', body: plainPackr.pack(new Map<string, unknown>([['op', 'insert'], ['id', 'a'], ['vector', [1]], ['__proto__', { x: 1 }]])), code: 'HTTP_INVALID_REQUEST', names: '__proto__' },
    { name: 'a binary id', body: plainPackr.pack({ op: 'delete', id: Buffer.from('a') }), code: 'HTTP_INVALID_REQUEST', names: '/id' },
    // The bytes of a lone surrogate, which msgpackr would decode as U+FFFD.
    { name: 'an id that is not UTF-8', body: withRawString(plainPackr.pack({ op: 'delete', id: 'aZZZb' }), 'ZZZ', [0xed, 0xa0, 0x80]), code: 'HTTP_INVALID_REQUEST', names: 'body/id must be a valid UTF-8' },
    { name: 'a long batch id that is not UTF-8', route: '/v1/batch', body: withRawString(plainPackr.pack({ entries: [{ op: 'delete', id: 'x'.repeat(40) + 'ZZ' }] }), 'ZZ', [0xc3, 0x28]), code: 'HTTP_INVALID_REQUEST', names: 'body/entries/0/id' },
    { name: 'a metadata value that is not UTF-8', body: withRawString(plainPackr.pack({ op: 'insert', id: 'a', vector: [1], metadata: { k: 'ZZ' } }), 'ZZ', [0xff, 0xfe]), code: 'HTTP_INVALID_REQUEST', names: 'body/metadata/k' },
    { name: 'a metadata key that is not UTF-8', body: withRawString(plainPackr.pack({ op: 'insert', id: 'a', vector: [1], metadata: { ZZ: 'v' } }), 'ZZ', [0x80, 0x80]), code: 'HTTP_INVALID_REQUEST', names: 'body/metadata must' },
    { name: 'over the body limit', body: packr.pack({ op: 'insert', id: 'a', vector: new Float32Array(1000) }), status: 413, code: 'HTTP_BODY_TOO_LARGE', names: '2048' }
  ]
  for (const c of cases) {
    await t.test(c.name, async t => {
      await assertError(t, await service.call('POST', c.route ?? '/v1/entries', c.body, MSGPACK), c.status ?? 400, c.code, c.names)
      t.equal(await lastSeq(service), 1, 'the log is unchanged')
    })
  }
})

t.test('a msgpack body that is not a map is 400', async t => {
  const service = await startTestService(t)
  await assertError(t, await service.call('POST', '/v1/entries', plainPackr.pack([{ op: 'delete', id: 'a' }]), MSGPACK), 400, 'HTTP_INVALID_REQUEST', 'body')
  await assertError(t, await service.call('POST', '/v1/entries', plainPackr.pack('delete'), MSGPACK), 400, 'HTTP_INVALID_REQUEST', 'body')
  t.equal(await lastSeq(service), 0)
})

t.test('msgpack strings in any script, valid UTF-8, are taken and read back as sent', async t => {
  const service = await startTestService(t)
  const entry = { op: 'insert', id: 'é 中文 🎉 '.repeat(5), vector: new Float32Array([1]), metadata: { '🔑': 'ключ\u2028', long: 'ü'.repeat(300) } }
  t.equal((await service.call('POST', '/v1/entries', packr.pack(entry), MSGPACK)).status, 201)
  const [line] = await recoverAll(service)
  t.same({ id: line.id, metadata: line.metadata }, { id: entry.id, metadata: entry.metadata })
})
