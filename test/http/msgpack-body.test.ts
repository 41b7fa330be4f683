// The one msgpack head reader (src/msgpack/reader.ts) and the decoder of request bodies
// (src/http/msgpack-body.ts), on generated values from three encoders: bins, typed arrays and
// floats whose bytes look like heads stand anywhere before and after strings, and msgpackr records
// define more key lists than its 64 ids, so ids are reused. The decoder must give what msgpackr
// gives for every body it takes, find a bad string wherever it lies and name its place, and never
// refuse a body whose strings are all UTF-8.
import { encode as msgpackEncode } from '@msgpack/msgpack'
import fc from 'fast-check'
import { Packr, Unpackr } from 'msgpackr'
import t from 'tap'
import { ENTRY_LIMITS } from '../../src/entry.js'
import { decodeMsgpackBody } from '../../src/http/msgpack-body.js'
import { MsgpackMismatch, MsgpackReader } from '../../src/msgpack/reader.js'
import { float32, NOT_UTF8, PLACEHOLDER } from '../helpers/bodies.js'


const key = fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }).filter(k => k !== '__proto__' && !k.includes(PLACEHOLDER))
const leaf: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }).filter(s => !s.includes(PLACEHOLDER)),
  fc.integer(), fc.double({ noNaN: true }), fc.boolean(), fc.constant(null), fc.constant(undefined),
  fc.array(float32, { maxLength: 40 }).map(v => Float32Array.from(v)),
  fc.uint8Array({ maxLength: 300 }).map(b => Buffer.from(b))
)
const tree = fc.letrec(tie => ({
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('node'), { maxLength: 5 }),
  object: fc.dictionary(key, tie('node'), { maxKeys: 5, noNullPrototype: true })
})).node

/** Replaces the value at a random place in `value` by PLACEHOLDER; answers the new value and that place's path. */
function plant (value: unknown, pick: number[], path: string[] = []): { value: unknown, path: string[] } {
  const [choice = 0, ...rest] = pick
  if (Array.isArray(value) && value.length > 0 && rest.length > 0) {
    const at = choice % value.length
    const inner = plant(value[at], rest, [...path, String(at)])
    return { value: value.map((v, i) => i === at ? inner.value : v), path: inner.path }
  }
  if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value) && Object.keys(value).length > 0 && rest.length > 0) {
    const keys = Object.keys(value)
    const name = keys[choice % keys.length]
    const inner = plant((value as Record<string, unknown>)[name], rest, [...path, name.replaceAll('~', '~0').replaceAll('/', '~1')])
    return { value: { ...value, [name]: inner.value }, path: inner.path }
  }
  return { value: PLACEHOLDER, path }
}

/** Why the decoder refuses the body (its message), or undefined when it takes it. */
function msgpackStringsRefusal (bytes: Buffer): string | undefined {
  try {
    decodeMsgpackBody(bytes)
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

/** msgpackr's decoding, as the service used it: objects for maps, 64-bit integers as numbers. */
const reference = new Unpackr({ mapsAsObjects: true, int64AsType: 'number' })

/** Float32Arrays and bins as plain arrays of their values or bytes, -0 kept apart: what to compare. */
function comparable (value: unknown): unknown {
  if (value instanceof Float32Array) return { float32: Array.from(value, v => Object.is(v, -0) ? '-0' : v) }
  if (value instanceof Uint8Array) return { bytes: Array.from(value) }
  if (typeof value === 'number' && Object.is(value, -0)) return '-0'
  if (Array.isArray(value)) return value.map(comparable)
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, comparable(v)]))
  return value
}

const encoders: Array<[string, (value: unknown) => Buffer]> = [
  ['msgpackr', v => new Packr({ moreTypes: true, useRecords: false }).pack(v)],
  ['msgpackr records', v => new Packr({ moreTypes: true }).pack(v)],
  ['msgpackr variableMapSize', v => new Packr({ moreTypes: true, useRecords: false, variableMapSize: true }).pack(v)],
  ['@msgpack/msgpack', v => Buffer.from(msgpackEncode(v))]
]

t.test('the reader skips any item whole, and a cut item is told from a wrong one', async t => {
  const plain = encoders.filter(([name]) => name !== 'msgpackr records')
  await fc.assert(fc.property(fc.array(tree, { minLength: 1, maxLength: 4 }), fc.nat(plain.length - 1), fc.nat(), (values, which, cut) => {
    const bytes = Buffer.concat(values.map(v => plain[which][1](v)))
    const reader = new MsgpackReader()
    reader.reset(bytes, 0, bytes.length)
    let items = 0
    while (reader.pos < reader.end) {
      reader.skip()
      items++
    }
    if (items !== values.length || reader.pos !== bytes.length) return false
    // A strict prefix of the last item runs out: truncated, never a wrong byte.
    const last = plain[which][1](values[values.length - 1])
    reader.reset(last, 0, cut % last.length)
    try {
      reader.skip()
      return false
    } catch (err) {
      return err instanceof MsgpackMismatch && err.truncated
    }
  }), { numRuns: 400 })
  const reader = new MsgpackReader()
  reader.reset(Buffer.from([0xc1]), 0, 1)
  t.throws(() => { reader.skip() }, new MsgpackMismatch(false), '0xc1, never used, is a wrong byte')
})

t.test('every body the decoder takes decodes as msgpackr decodes it, Float32Arrays views or copies alike', async t => {
  let compared = 0
  fc.assert(fc.property(tree, fc.nat(encoders.length - 1), fc.nat(3), (value, which, shift) => {
    const encoded = encoders[which][1](value)
    // The same bytes at each offset mod 4, so that vectors come out as views and as copies.
    const shifted = Buffer.alloc(encoded.length + shift)
    encoded.copy(shifted, shift)
    const body = shifted.subarray(shift)
    compared++
    return JSON.stringify(comparable(decodeMsgpackBody(body))) === JSON.stringify(comparable(reference.unpack(body)))
  }), { numRuns: 1500 })
  t.equal(compared, 1500)
})

t.test('bytes that are not one msgpack value are malformed', async t => {
  const body = Buffer.from(msgpackEncode({ op: 'delete', id: 'a' }))
  for (const bad of [body.subarray(0, body.length - 1), Buffer.concat([body, Buffer.from([0x01])]), Buffer.from([0xc1])]) {
    t.throws(() => decodeMsgpackBody(bad), { code: 'HTTP_MALFORMED_BODY' })
  }
})

t.test('the walk finds a string that is not UTF-8 wherever it lies, and passes bodies whose strings all are', async t => {
  let planted = 0
  await fc.assert(fc.property(tree, fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), fc.constantFrom(...NOT_UTF8), fc.nat(encoders.length - 1), (value, pick, bad, which) => {
    const [name, encode] = encoders[which]
    const body = encode(value)
    if (msgpackStringsRefusal(body) !== undefined) throw new Error(`${name}: a body of valid strings was refused: ${String(msgpackStringsRefusal(body))}`)
    const { value: withPlaceholder, path } = plant(value, pick)
    const clean = encode(withPlaceholder)
    const at = clean.indexOf(PLACEHOLDER)
    const broken = Buffer.from(clean)
    Buffer.from(bad).copy(broken, at)
    planted++
    const expected = `body${path.map(p => `/${p}`).join('')} must be a valid UTF-8 string`
    const refusal = msgpackStringsRefusal(broken)
    if (refusal !== expected) throw new Error(`${name}: ${String(refusal)}, expected ${expected}`)
    return true
  }), { numRuns: 600 })
  t.equal(planted, 600, 'every planted string was found, at its place')
})

t.test('msgpackr records past its 64 ids: ids are defined again, and the walk follows each new key list', async t => {
  const packr = new Packr({ moreTypes: true })
  // 100 objects with distinct key sets: more structures than ids, so ids come round again.
  const rows = Array.from({ length: 100 }, (_, i) => ({ [`k${i}`]: `v${i}`, vector: new Float32Array([i, -i]), [`m${i}`]: i % 7 === 0 ? PLACEHOLDER : 'ok' }))
  const body = packr.pack({ entries: rows })
  t.equal(msgpackStringsRefusal(Buffer.from(body.toString('latin1').replaceAll(PLACEHOLDER, 'fine!'), 'latin1')), undefined, 'valid strings pass')
  const last = body.lastIndexOf(PLACEHOLDER)
  const broken = Buffer.from(body)
  Buffer.from(NOT_UTF8[0]).copy(broken, last)
  t.equal(msgpackStringsRefusal(broken), 'body/entries/98/m98 must be a valid UTF-8 string', 'the bad value in the 99th record, past the reuse of ids, is named')
})

t.test('what the walk cannot follow is refused, naming the place', async t => {
  const bundled = new Packr({ bundleStrings: true }).pack({ id: 'abcdefghijklmnopqrstuvwxyz'.repeat(4), op: 'insert' })
  t.match(msgpackStringsRefusal(bundled), /^body.* holds msgpack extension type 98/, 'msgpackr bundleStrings: refused, not skipped')
  const withSet = new Packr({ moreTypes: true, useRecords: false }).pack({ metadata: new Set(['a']) })
  t.match(msgpackStringsRefusal(withSet), /^body\/metadata holds msgpack extension type/, 'a Set: refused where it lies')
    const proto = JSON.parse('{"op":"insert","metadata":{"k":"v","__proto__":"x"}}') as unknown
  t.equal(msgpackStringsRefusal(new Packr({ useRecords: false }).pack(proto)), 'body/metadata holds a forbidden __proto__ key', 'a __proto__ map key, where it stands (msgpackr would rename it)')
  t.equal(msgpackStringsRefusal(new Packr().pack(proto)), 'body/metadata holds a forbidden __proto__ key', 'a __proto__ key in a msgpackr record\'s key list')
  t.equal(msgpackStringsRefusal(new Packr({ useRecords: false }).pack({ op: '__proto__' })), undefined, 'a __proto__ value is only a string')
  // 16 MiB of empty maps once cost a gigabyte of heap to decode before any schema refused it.
  const flood = Buffer.alloc(3 + 65_535, 0x80)
  flood[0] = 0xdc
  flood.writeUInt16BE(65_535, 1)
  // A valid batch holds the body's map, its list of entries, and per entry its map, vector and metadata.
  const most = 2 + 3 * ENTRY_LIMITS.batchMaxEntries
  t.equal(msgpackStringsRefusal(flood), `body/${most - 1} holds more than ${most} maps and arrays, more than any valid body`, 'a flood of maps is refused as it is decoded')
  const long = Buffer.concat([Buffer.from([0xdd]), Buffer.from([0x00, 0x01, 0x00, 0x01]), Buffer.alloc(65_537, 0)])
  t.match(msgpackStringsRefusal(long), /^body has 65537 items, more than any list a valid body holds \(65536\)$/, 'an array longer than any valid list')
  let deep: unknown = 'x'
  for (let i = 0; i < 20; i++) deep = [deep]
  t.match(msgpackStringsRefusal(Buffer.from(msgpackEncode(deep))), /is nested deeper than any valid body$/)
})

t.test("msgpackr's two-byte record ids (maxOwnStructures past 64) are refused with a message that says what to do", async t => {
  const packr = new Packr({ maxOwnStructures: 200, moreTypes: true })
  const rows = Array.from({ length: 70 }, (_, i) => ({ [`k${i}`]: i }))
  t.match(msgpackStringsRefusal(packr.pack({ entries: rows })), /a msgpackr record with a two-byte id .*useRecords: false/)
})
