// Valid request bodies as users' clients write them, generated: random ids and metadata in any
// script, random float32 vectors (subnormals, ±0, the largest finite float32, values whose bytes
// look like msgpack heads), keys in any order, and every body form: JSON, and msgpack from msgpackr
// (with its records and without, with its other common options) and from @msgpack/msgpack, vectors
// as arrays, as Float32Array and as bin.
import { encode as msgpackEncode } from '@msgpack/msgpack'
import fc from 'fast-check'
import { FLOAT32_OPTIONS, Packr } from 'msgpackr'

/** An entry as the test holds it: the vector is the float32 values the log must give back. */
export type Entry =
  | { op: 'insert' | 'update', id: string, vector: Float32Array, metadata?: Record<string, string> }
  | { op: 'delete', id: string }

/** Byte values that start a msgpack string, bin or ext: inside a vector, they once threw a walk off. */
export const MSGPACK_HEAD_BYTES: readonly number[] = [
  ...Array.from({ length: 0x20 }, (_, i) => 0xa0 + i), 0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9
]

const FLOAT32_MAX = 3.4028234663852886e38
const EDGE_FLOATS = [0, -0, FLOAT32_MAX, -FLOAT32_MAX, 2 ** -149, -(2 ** -149), 2 ** -126, 1.1754942106924411e-38]

/** A finite float32 with one of its four bytes a msgpack head byte. */
const headByteFloat = fc.tuple(fc.constantFrom(...MSGPACK_HEAD_BYTES), fc.nat(3), fc.uint8Array({ minLength: 4, maxLength: 4 }))
  .map(([head, at, bytes]) => {
    bytes[at] = head
    return new Float32Array(bytes.buffer)[0]
  })
  .filter(Number.isFinite)

export const float32 = fc.oneof(
  { weight: 4, arbitrary: fc.float({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 2, arbitrary: headByteFloat },
  { weight: 1, arbitrary: fc.constantFrom(...EDGE_FLOATS) }
)

/** Mostly short vectors of any float32, some up to 4,096 values of random bits. */
export const vector: fc.Arbitrary<Float32Array> = fc.oneof(
  { weight: 4, arbitrary: fc.array(float32, { minLength: 1, maxLength: 24 }).map(values => Float32Array.from(values)) },
  { weight: 1, arbitrary: fc.float32Array({ minLength: 1, maxLength: 4096, noNaN: true, noDefaultInfinity: true }) }
)

/** Any well-formed Unicode text: every script, astral characters, controls. */
const text = (minLength: number, maxLength: number): fc.Arbitrary<string> => fc.string({ unit: 'binary', minLength, maxLength })

export const id: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: text(1, 40) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', minLength: 256, maxLength: 256 }) }
)

const metadataKey = text(1, 24).filter(key => key !== '__proto__')

export const metadata: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 5, arbitrary: fc.dictionary(metadataKey, text(0, 40), { maxKeys: 6, noNullPrototype: true }) },
  { weight: 1, arbitrary: fc.dictionary(metadataKey, text(0, 8), { minKeys: 64, maxKeys: 64, noNullPrototype: true }) }
)

export const entry: fc.Arbitrary<Entry> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constantFrom('insert' as const, 'update' as const), id, vector, metadata: fc.option(metadata, { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), id }) }
).map(e => e.op !== 'delete' && e.metadata === undefined ? { op: e.op, id: e.id, vector: e.vector } : e as Entry)

/** How a body is written, and how its vectors travel in it. */
export const ENCODINGS = [
  'json',
  'msgpackr typed array',
  'msgpackr records, typed array',
  'msgpackr number array',
  'msgpackr useFloat32',
  'msgpackr variableMapSize',
  'msgpackr bin',
  '@msgpack/msgpack bin',
  '@msgpack/msgpack number array'
] as const
export type Encoding = typeof ENCODINGS[number]

const packers = {
  typed: new Packr({ moreTypes: true, useRecords: false }),
  records: new Packr({ moreTypes: true }),
  plain: new Packr({ useRecords: false }),
  float32: new Packr({ useRecords: false, useFloat32: FLOAT32_OPTIONS.ALWAYS }),
  variableMapSize: new Packr({ moreTypes: true, useRecords: false, variableMapSize: true })
}

/** The vector's float32 values as little-endian bytes, as numpy's `tobytes()` gives them. */
export function littleEndianBytes (values: Float32Array): Buffer {
  const bytes = Buffer.alloc(values.length * 4)
  values.forEach((value, i) => bytes.writeFloatLE(value, i * 4))
  return bytes
}

/** The shortest decimal for each value, -0 kept: a float64 text that reads back to the float32. */
function jsonNumber (value: number): string {
  return Object.is(value, -0) ? '-0' : String(value)
}

function reorder (value: Record<string, unknown>, order: (keys: string[]) => string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const key of order(Object.keys(value))) out[key] = value[key]
  return out
}

type VectorForm = 'typed' | 'array' | 'bin'

function vectorFormOf (encoding: Encoding): VectorForm {
  if (encoding.endsWith('bin')) return 'bin'
  return encoding.includes('typed array') || encoding === 'msgpackr variableMapSize' ? 'typed' : 'array'
}

/** The entry as a plain object, keys in the chosen order, the vector in the encoding's form. */
function entryObject (e: Entry, form: VectorForm, order: (keys: string[]) => string[]): Record<string, unknown> {
  const plain: Record<string, unknown> = { ...e }
  if (e.op !== 'delete') {
    plain.vector = form === 'typed' ? e.vector : form === 'bin' ? littleEndianBytes(e.vector) : Array.from(e.vector)
    if (e.metadata !== undefined) plain.metadata = reorder(e.metadata, order)
  }
  return reorder(plain, order)
}

function json (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(json).join(',')}]`
  if (typeof value === 'number') return jsonNumber(value)
  if (typeof value === 'object' && value !== null) {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${json(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/** The body for `value` (an entry, or `{entries}`), written as `encoding` writes it. */
export function encodeBody (value: Record<string, unknown>, encoding: Encoding): Buffer {
  switch (encoding) {
    case 'json': return Buffer.from(json(value))
    case 'msgpackr typed array': return packers.typed.pack(value)
    case 'msgpackr records, typed array': return packers.records.pack(value)
    case 'msgpackr number array': return packers.plain.pack(value)
    case 'msgpackr useFloat32': return packers.float32.pack(value)
    case 'msgpackr variableMapSize': return packers.variableMapSize.pack(value)
    case 'msgpackr bin': return packers.plain.pack(value)
    case '@msgpack/msgpack bin':
    case '@msgpack/msgpack number array': return Buffer.from(msgpackEncode(value))
  }
}

export function contentType (encoding: Encoding): string {
  if (encoding === 'json') return 'application/json'
  // A bin vector is float32 only when the client says so.
  return vectorFormOf(encoding) === 'bin' ? 'application/msgpack; bin=float32le' : 'application/msgpack'
}

/** A permutation of any key list, chosen by the generator: the same seed gives the same orders. */
export const keyOrder: fc.Arbitrary<(keys: string[]) => string[]> = fc.infiniteStream(fc.nat()).map(stream => {
  const picks = stream[Symbol.iterator]()
  return (keys: string[]) => {
    const rest = [...keys]
    const out: string[] = []
    while (rest.length > 0) out.push(rest.splice((picks.next().value as number) % rest.length, 1)[0])
    return out
  }
})

/** One entry's body, or a batch's, as `encoding` writes it, keys in the chosen order. */
export function entryBody (e: Entry, encoding: Encoding, order: (keys: string[]) => string[]): Buffer {
  return encodeBody(entryObject(e, vectorFormOf(encoding), order), encoding)
}

export function batchBody (entries: Entry[], encoding: Encoding, order: (keys: string[]) => string[]): Buffer {
  const form = vectorFormOf(encoding)
  return encodeBody({ entries: entries.map(e => entryObject(e, form, order)) }, encoding)
}

/**
 * The entries as `encoding` carries them: msgpack encoders write a number array's -0 as the integer
 * 0 (msgpack has no negative zero integer), so the sign is gone before the body leaves the client.
 */
export function asCarried (entries: Entry[], encoding: Encoding): Entry[] {
  if (encoding === 'json' || vectorFormOf(encoding) !== 'array') return entries
  return entries.map(e => e.op === 'delete' ? e : { ...e, vector: e.vector.map(v => Object.is(v, -0) ? 0 : v) })
}

/** A string planted in a body, then overwritten in the encoded bytes by one of NOT_UTF8. */
export const PLACEHOLDER = '#bad#'
/** Not UTF-8, each as long as PLACEHOLDER: a stray byte, an overlong NUL, a surrogate, a lone continuation, a cut sequence. */
export const NOT_UTF8 = [[0x23, 0xff, 0x23, 0x23, 0x23], [0xc0, 0x80, 0x23, 0x23, 0x23], [0x23, 0x23, 0xed, 0xa0, 0x80], [0x80, 0x23, 0x23, 0x23, 0x23], [0x23, 0x23, 0x23, 0x23, 0xe2]]

/** Bit patterns of float32 values: -0 is not 0, and two equal patterns are the same value. */
export function float32Bits (values: ArrayLike<number>): number[] {
  return Array.from(Float32Array.from(values as ArrayLike<number>), value => {
    const view = new DataView(new ArrayBuffer(4))
    view.setFloat32(0, value, true)
    return view.getUint32(0, true)
  })
}
