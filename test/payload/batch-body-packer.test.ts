// The batch-body packer (src/payload/batch-body-packer.ts) against the long way it stands in for
// (decode, schema, payload writer), on generated bodies:
// - every valid body in a form clients send is taken, its payload exactly what the payload writer
//   writes for those entries; a body in one of the documented exclusions (JSON, msgpackr records, a
//   digits-only metadata key, a string longer in bytes than its limit in characters, a 64-bit
//   integer, a vector length the rules refuse, more metadata keys than the limit) is not. The
//   prediction is made from the generated entries. Heads in wider forms change nothing.
// - valid bodies, and the same mutated (a byte overwritten, cut, appended, a key repeated, digits
//   or __proto__ as a metadata key, non-finite or 64-bit vector values, nil for a string, bad
//   UTF-8, wider heads, ...), go through a real service: whenever the packer takes one, POST
//   /v1/batch answers 201 and stores the packer's payload, and the same entries posted one by one to
//   POST /v1/entries (which never uses the packer) are taken and store, concatenated, the same
//   entries; whenever any of them is refused, the packer did not take the body and /v1/batch
//   refuses it too.
// - the largest batch is taken alike by the packer and, staged in a transaction, by the long way.
import fs from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import { ENTRY_LIMITS, type EntryOp } from '../../src/entry.js'
import { MsgpackMismatch, MsgpackReader } from '../../src/msgpack/reader.js'
import { packBatchBody, type PackRules } from '../../src/payload/batch-body-packer.js'
import { batchPayload } from '../../src/payload/payload-writer.js'
import { readRecord, SEGMENT_HEADER_BYTES } from '../../src/wal/format.js'
import { asCarried, batchBody, contentType, ENCODINGS, entry, float32, id, keyOrder, MSGPACK_HEAD_BYTES, type Encoding, type Entry } from '../helpers/bodies.js'
import { startTestService, type TestService } from '../helpers/http.js'
import { noSyncIO, segmentFiles } from '../helpers/wal.js'

const FREE: Omit<PackRules, 'binIsFloat32'> = { minVectorLength: 1, maxVectorLength: ENTRY_LIMITS.vectorMaxLength }

function rulesFor (encoding: Encoding, lengths: Omit<PackRules, 'binIsFloat32'>): PackRules {
  return { ...lengths, binIsFloat32: contentType(encoding).includes('bin=float32le') }
}

// ---- Where things lie in a body ----

interface Range { start: number, end: number }
interface Pair { key: Range, name: string, value: Range }
interface MapLayout { head: Range, pairs: Pair[], metadata?: MapLayout }
interface Layout { entriesKey: Range, arrayHead: Range, entries: MapLayout[] }

const reader = new MsgpackReader()

function itemAt (start: number): Range {
  reader.pos = start
  reader.skip()
  return { start, end: reader.pos }
}

/** A string item's data. */
function stringData (body: Buffer, item: Range): Range {
  reader.reset(body, item.start, body.length)
  const length = reader.string()
  return { start: reader.pos, end: reader.pos + length }
}

function mapAt (body: Buffer, start: number, nested: boolean): MapLayout {
  reader.pos = start
  const count = reader.map()
  const head = { start, end: reader.pos }
  const pairs: Pair[] = []
  for (let i = 0; i < count; i++) {
    const key = itemAt(reader.pos)
    const data = stringData(body, key)
    const value = itemAt(key.end)
    pairs.push({ key, name: body.toString('utf8', data.start, data.end), value })
  }
  const end = reader.pos
  const metadataPair = nested ? pairs.find(pair => pair.name === 'metadata') : undefined
  const layout: MapLayout = { head, pairs }
  if (metadataPair !== undefined) layout.metadata = mapAt(body, metadataPair.value.start, false)
  reader.pos = end
  return layout
}

/** The layout of a body in the plain-maps form (every msgpack encoding but msgpackr's records). */
function layoutOf (body: Buffer): Layout {
  reader.reset(body, 0, body.length)
  reader.map()
  const entriesKey = itemAt(reader.pos)
  reader.pos = entriesKey.end
  const arrayStart = reader.pos
  const count = reader.array()
  const arrayHead = { start: arrayStart, end: reader.pos }
  const entries: MapLayout[] = []
  for (let i = 0; i < count; i++) entries.push(mapAt(body, reader.pos, true))
  reader.release()
  return { entriesKey, arrayHead, entries }
}

/** Each entry's bytes, if the body is a map of `entries` alone holding an array of whole items. */
function entryRanges (body: Buffer): Range[] | undefined {
  reader.reset(body, 0, body.length)
  try {
    if (reader.map() !== 1) return undefined
    const keyLength = reader.string()
    if (body.toString('latin1', reader.take(keyLength), reader.pos) !== 'entries') return undefined
    const count = reader.array()
    const ranges: Range[] = []
    for (let i = 0; i < count; i++) {
      const start = reader.pos
      reader.skip()
      ranges.push({ start, end: reader.pos })
    }
    return reader.pos === reader.end ? ranges : undefined
  } catch (err) {
    if (err instanceof MsgpackMismatch) return undefined
    throw err
  } finally {
    reader.release()
  }
}

/** The entries part of a batch payload: after its map16 head, "op": "batch", "entries" and the array head. */
function entriesPart (payload: Buffer): Buffer {
  const arrayHeadAt = 3 + 3 + 6 + 8
  const head = payload[arrayHeadAt]
  const headBytes = head === 0xdc ? 3 : head === 0xdd ? 5 : 1
  return payload.subarray(arrayHeadAt + headBytes)
}

// ---- What the packer must do with a valid body ----

const DIGITS_ONLY = /^[0-9]+$/

/**
 * Whether the packer takes this body: not JSON nor msgpackr's records, every vector length within
 * the rules, no more metadata keys than the limit, none of digits only, no string longer in bytes
 * than its limit in characters, and from @msgpack/msgpack no vector value it writes as a 64-bit integer.
 */
function packerTakes (entries: Entry[], encoding: Encoding, rules: PackRules): boolean {
  if (encoding === 'json' || encoding === 'msgpackr records, typed array') return false
  return asCarried(entries, encoding).every(e => {
    if (Buffer.byteLength(e.id) > ENTRY_LIMITS.idMaxLength) return false
    if (e.op === 'delete') return true
    if (e.vector.length < rules.minVectorLength || e.vector.length > rules.maxVectorLength) return false
    if (Object.keys(e.metadata ?? {}).length > ENTRY_LIMITS.metadataMaxKeys) return false
    const int64 = (v: number): boolean => Number.isSafeInteger(v) && (v >= 2 ** 32 || v < -(2 ** 31))
    if (encoding === '@msgpack/msgpack number array' && e.vector.some(int64)) return false
    return Object.entries(e.metadata ?? {}).every(([key, value]) => !DIGITS_ONLY.test(key) &&
      Buffer.byteLength(key) <= ENTRY_LIMITS.metadataKeyMaxLength && Buffer.byteLength(value) <= ENTRY_LIMITS.metadataValueMaxLength)
  })
}

/** The entries with each metadata map in the key order the body holds it. */
function inBodyOrder (entries: Entry[], layout: Layout): Entry[] {
  return entries.map((e, i) => {
    const metadata = layout.entries[i].metadata
    if (e.op === 'delete' || e.metadata === undefined || metadata === undefined) return e
    const source = e.metadata
    return { ...e, metadata: Object.fromEntries(metadata.pairs.map(pair => [pair.name, source[pair.name]])) }
  })
}

function opCounts (entries: Entry[]): Map<EntryOp, number> {
  const counts = new Map<EntryOp, number>()
  for (const op of ['insert', 'update', 'delete'] as const) {
    const count = entries.filter(e => e.op === op).length
    if (count > 0) counts.set(op, count)
  }
  return counts
}

/** Whether the packer did with the body what `packerTakes` says, with the bytes the payload writer writes; why not, else. */
function checkValid (entries: Entry[], encoding: Encoding, body: Buffer, rules: PackRules): string | undefined {
  const packed = packBatchBody(body, rules)
  const takes = packerTakes(entries, encoding, rules)
  if (packed === undefined) return takes ? `${encoding}: not taken: ${body.toString('hex')}` : undefined
  if (!takes) return `${encoding}: taken, but it is an exclusion: ${body.toString('hex')}`
  const expected = batchPayload(asCarried(inBodyOrder(entries, layoutOf(body)), encoding))
  if (!packed.payload.equals(expected)) return `${encoding}: bytes differ from the payload writer's: ${body.toString('hex')}`
  if (packed.length !== entries.length) return `${encoding}: ${packed.length} entries for ${entries.length}`
  if (JSON.stringify([...packed.ops].sort()) !== JSON.stringify([...opCounts(entries)].sort())) return `${encoding}: op counts ${JSON.stringify([...packed.ops])}`
  return undefined
}

/** The vector cut or repeated to `length` values. */
function resized (e: Entry, length: number): Entry {
  if (e.op === 'delete') return e
  const values = e.vector
  return { ...e, vector: Float32Array.from({ length }, (_, i) => values[i % values.length]) }
}

/** Keys in any order, or as generated: op, id, vector, metadata, the stored order, in which the packer copies an entry whole. */
const anyOrder = fc.oneof(keyOrder, fc.constant((keys: string[]): string[] => keys))
/** Every encoding, and often the one whose maps and vectors are in their stored forms already. */
const biased = (encodings: readonly Encoding[]): fc.Arbitrary<Encoding> =>
  fc.oneof({ weight: 1, arbitrary: fc.constant<Encoding>('msgpackr typed array') }, { weight: 2, arbitrary: fc.constantFrom(...encodings) })

/**
 * Entries in the documented exclusions: a digits-only metadata key, an id or a key within its limit
 * in characters but not in bytes, a vector value @msgpack/msgpack writes as a 64-bit integer; and
 * one rule broken, more metadata keys than the limit.
 */
const unusualEntry: fc.Arbitrary<Entry> = fc.tuple(entry, fc.nat(4), fc.stringMatching(/^[0-9]{1,6}$/), fc.integer({ min: 100, max: 256 }), fc.maxSafeInteger(), fc.nat())
  .map(([e, kind, digits, characters, large, at]) => {
    const wide = 'é'.repeat(characters)
    if (kind === 0) return { ...e, id: wide }
    if (e.op === 'delete') return e
    // Room for one more key.
    const metadata = Object.fromEntries(Object.entries(e.metadata ?? {}).slice(0, ENTRY_LIMITS.metadataMaxKeys - 1))
    if (kind === 1) return { ...e, metadata: { ...metadata, [digits]: 'v' } }
    if (kind === 2) return { ...e, metadata: { ...metadata, [wide]: 'v' } }
    if (kind === 3) return { ...e, metadata: { ...metadata, ...Object.fromEntries(Array.from({ length: ENTRY_LIMITS.metadataMaxKeys + 1 }, (_, i) => [`x${i}`, digits])) } }
    const vector = Float32Array.from(e.vector)
    vector[at % vector.length] = Math.fround(large >= 0 ? large + 2 ** 32 : large - 2 ** 31)
    return { ...e, vector }
  })

t.test('bodies in every form: taken unless excluded, with the bytes the payload writer stores', async t => {
  let checked = 0
  let taken = 0
  fc.assert(fc.property(fc.array(fc.oneof({ weight: 4, arbitrary: entry }, { weight: 1, arbitrary: unusualEntry }), { minLength: 1, maxLength: 6 }), biased(ENCODINGS), anyOrder, (entries, encoding, order) => {
    const rules = rulesFor(encoding, FREE)
    const why = checkValid(entries, encoding, batchBody(entries, encoding, order), rules)
    checked++
    if (packerTakes(entries, encoding, rules)) taken++
    if (why !== undefined) throw new Error(why)
  }), { numRuns: 400 })
  t.ok(taken > checked / 3, `most bodies are in a form taken (${taken} of ${checked})`)
})

t.test('with a fixed dimension: the vectors of that length taken, any other length not', async t => {
  let other = 0
  fc.assert(fc.property(
    fc.array(entry, { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: -3, max: 3 }),
    biased(ENCODINGS.filter(e => e !== 'json')), anyOrder,
    (generated, dimensions, shift, encoding, order) => {
      const entries = generated.map(e => resized(e, dimensions))
      const fixed = Math.max(1, dimensions + shift)
      if (fixed !== dimensions && entries.some(e => e.op !== 'delete')) other++
      const why = checkValid(entries, encoding, batchBody(entries, encoding, order), rulesFor(encoding, { minVectorLength: fixed, maxVectorLength: fixed }))
      if (why !== undefined) throw new Error(`dimension ${fixed}, vectors of ${dimensions}: ${why}`)
    }), { numRuns: 200 })
  t.ok(other > 0, `bodies with vectors of another length were tried (${other})`)
})

// ---- Mutated bodies: the packer against the real routes ----

const splice = (body: Buffer, range: Range, bytes: Buffer | number[]): Buffer =>
  Buffer.concat([body.subarray(0, range.start), Buffer.from(bytes), body.subarray(range.end)])

const map16 = (count: number): number[] => [0xde, count >> 8, count & 0xff]
const str = (text: string): Buffer => {
  const data = Buffer.from(text)
  const head = data.length < 32 ? [0xa0 | data.length] : data.length < 256 ? [0xd9, data.length] : [0xda, data.length >> 8, data.length & 0xff]
  return Buffer.concat([Buffer.from(head), data])
}
const float64 = (value: number): Buffer => {
  const bytes = Buffer.alloc(9)
  bytes[0] = 0xcb
  bytes.writeDoubleBE(value, 1)
  return bytes
}

/** The map with one more pair: `pair` inserted at `at` (a byte offset among its pairs), its head rewritten as map16. */
function withPair (body: Buffer, map: MapLayout, at: number, pair: Buffer): Buffer {
  const inserted = splice(body, { start: at, end: at }, pair)
  return splice(inserted, map.head, map16(map.pairs.length + 1))
}

interface Choice { a: number, b: number, byte: number }

/** A string item of the body: an id, an op, a metadata key or value. */
function strings (layout: Layout): Range[] {
  const found: Range[] = []
  for (const map of layout.entries) {
    for (const pair of map.pairs) if (pair.name === 'id' || pair.name === 'op') found.push(pair.value)
    for (const pair of map.metadata?.pairs ?? []) found.push(pair.key, pair.value)
  }
  return found
}

/** The vector items, with their entry's index. */
function vectors (layout: Layout): Range[] {
  return layout.entries.flatMap(map => map.pairs.filter(pair => pair.name === 'vector').map(pair => pair.value))
}

/** Where the values of a vector item lie: float32 little-endian data, or the array's element items. */
function vectorValues (body: Buffer, item: Range): { float32: Range } | { elements: Range[] } {
  reader.reset(body, item.start, body.length)
  const head = body[item.start]
  if (head >= 0x90 && head <= 0x9f || head === 0xdc || head === 0xdd) {
    const count = reader.array()
    const elements: Range[] = []
    for (let i = 0; i < count; i++) elements.push(itemAt(reader.pos))
    return { elements }
  }
  reader.head()
  const dataStart = reader.pos
  // An ext's data starts with the typed-array code.
  const start = head === 0xc7 || head === 0xc8 || head === 0xc9 ? dataStart + 1 : dataStart
  return { float32: { start, end: item.end } }
}

const NOT_FINITE_BITS = [0x7fc00000, 0x7f800000, 0xff800000, 0x7f800001, 0xffffffff]
const NOT_FLOAT32_NUMBERS = [NaN, Infinity, -Infinity, 3.5e38, -1e39, 3.4028235677973366e38]
/** Numbers both ways must round to float32 alike: not float32 values, subnormal past float32, near the largest. */
const ROUNDED_NUMBERS = [0.1, -1 / 3, 1e-46, -1e-45, 3.4028234663852886e38, 3.4028235e38 - 1e30, 2 ** 40 + 1, 16777217]
const HEAD_BYTES = [...MSGPACK_HEAD_BYTES, 0x80, 0x81, 0x8f, 0x90, 0x9f, 0xc0, 0xc1, 0xc2, 0xc3, 0xca, 0xcb, 0xcc, 0xcf, 0xd3, 0xd4, 0xd8, 0xdc, 0xdd, 0xde, 0xdf, 0x7f, 0xe0]

/** A head in one of its three length forms (8, 16, 32 bits: `width` 0, 1, 2), the 8-bit one only where it exists and holds the length. */
function headIn (forms: readonly [number | undefined, number, number], length: number, width: number): Buffer {
  const w = width === 0 && (forms[0] === undefined || length > 0xff) ? 1 : width === 1 && length > 0xffff ? 2 : width
  if (w === 0) return Buffer.from([forms[0] as number, length])
  if (w === 1) return Buffer.from([forms[1], length >> 8, length & 0xff])
  return Buffer.from([forms[2], length >>> 24, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff])
}

/**
 * Every head of the body that has wider forms than the smallest: strings, maps, the entries list,
 * vectors (ext, bin, or an array's head). Any of them wider is valid msgpack, stored in the smallest.
 */
function widenings (body: Buffer, layout: Layout): Array<{ range: Range, wider: (width: number) => Buffer }> {
  const found: Array<{ range: Range, wider: (width: number) => Buffer }> = []
  const string = (item: Range): void => {
    const data = stringData(body, item)
    found.push({ range: item, wider: width => Buffer.concat([headIn([0xd9, 0xda, 0xdb], data.end - data.start, width), body.subarray(data.start, data.end)]) })
  }
  const mapHead = (map: MapLayout): void => { found.push({ range: map.head, wider: width => headIn([undefined, 0xde, 0xdf], map.pairs.length, width) }) }
  string(layout.entriesKey)
  found.push({ range: layout.arrayHead, wider: width => headIn([undefined, 0xdc, 0xdd], layout.entries.length, width) })
  for (const map of layout.entries) {
    mapHead(map)
    for (const pair of map.pairs) string(pair.key)
    if (map.metadata !== undefined) mapHead(map.metadata)
  }
  for (const item of strings(layout)) string(item)
  for (const item of vectors(layout)) {
    const values = vectorValues(body, item)
    if ('elements' in values) {
      const count = values.elements.length
      found.push({ range: { start: item.start, end: count === 0 ? item.end : values.elements[0].start }, wider: width => headIn([undefined, 0xdc, 0xdd], count, width) })
      continue
    }
    const isExt = body[item.start] >= 0xc7 && body[item.start] <= 0xc9
    // An ext's data is the typed-array code and the values; its type byte sits between head and data.
    const data = { start: isExt ? values.float32.start - 1 : values.float32.start, end: item.end }
    const forms: [number, number, number] = isExt ? [0xc7, 0xc8, 0xc9] : [0xc4, 0xc5, 0xc6]
    const type = isExt ? [body[data.start - 1]] : []
    found.push({ range: item, wider: width => Buffer.concat([headIn(forms, data.end - data.start, width), Buffer.from(type), body.subarray(data.start, data.end)]) })
  }
  return found
}

type Mutation = (body: Buffer, layout: Layout, c: Choice) => Buffer | undefined

const pick = <T>(items: readonly T[], n: number): T | undefined => items.length === 0 ? undefined : items[n % items.length]

const MUTATIONS: Record<string, Mutation> = {
  'overwrite a byte': (body, _, c) => splice(body, { start: c.a % body.length, end: c.a % body.length + 1 }, [c.byte]),
  'overwrite a byte with a msgpack head': (body, _, c) => splice(body, { start: c.a % body.length, end: c.a % body.length + 1 }, [HEAD_BYTES[c.byte % HEAD_BYTES.length]]),
  truncate: (body, _, c) => body.subarray(0, c.a % body.length),
  'append a byte': (body, _, c) => Buffer.concat([body, Buffer.from([c.byte])]),
  'repeat an entry field': (body, layout, c) => {
    const map = pick(layout.entries, c.a)
    const pair = map === undefined ? undefined : pick(map.pairs, c.b)
    if (map === undefined || pair === undefined) return undefined
    return withPair(body, map, map.head.end, body.subarray(pair.key.start, pair.value.end))
  },
  'repeat a metadata key with another value': (body, layout, c) => {
    const map = pick(layout.entries.flatMap(e => e.metadata ?? []), c.a)
    const pair = map === undefined ? undefined : pick(map.pairs, c.b)
    if (map === undefined || pair === undefined) return undefined
    const end = map.pairs[map.pairs.length - 1].value.end
    return withPair(body, map, end, Buffer.concat([body.subarray(pair.key.start, pair.key.end), str(String(c.byte))]))
  },
  'make a metadata key all digits': (body, layout, c) => {
    const pair = pick(layout.entries.flatMap(e => e.metadata?.pairs ?? []), c.a)
    if (pair === undefined) return undefined
    const data = stringData(body, pair.key)
    const digits = Array.from({ length: data.end - data.start }, (_, i) => 0x30 + (c.byte + i * c.b) % 10)
    return splice(body, data, digits)
  },
  'a __proto__ metadata key': (body, layout, c) => {
    const map = pick(layout.entries.flatMap(e => e.metadata ?? []), c.a)
    if (map === undefined) return undefined
    return withPair(body, map, map.head.end, Buffer.concat([str('__proto__'), str('x')]))
  },
  'a non-finite vector value': (body, layout, c) => {
    const item = pick(vectors(layout), c.a)
    if (item === undefined) return undefined
    const values = vectorValues(body, item)
    if ('elements' in values) {
      const element = pick(values.elements, c.b)
      return element === undefined ? undefined : splice(body, element, float64(NOT_FLOAT32_NUMBERS[c.byte % NOT_FLOAT32_NUMBERS.length]))
    }
    const count = (values.float32.end - values.float32.start) >> 2
    if (count === 0) return undefined
    const bits = Buffer.alloc(4)
    bits.writeUInt32LE(NOT_FINITE_BITS[c.byte % NOT_FINITE_BITS.length] >>> 0)
    const at = values.float32.start + 4 * (c.b % count)
    return splice(body, { start: at, end: at + 4 }, bits)
  },
  'a vector value in another number form': (body, layout, c) => {
    const item = pick(vectors(layout), c.a)
    const values = item === undefined ? undefined : vectorValues(body, item)
    const element = values === undefined || !('elements' in values) ? undefined : pick(values.elements, c.b)
    if (element === undefined) return undefined
    const value = ROUNDED_NUMBERS[c.byte % ROUNDED_NUMBERS.length] * (c.a % 2 === 0 ? 1 : -1)
    const forms: Buffer[] = [float64(value), Buffer.from([0xd3, 0, 0, 0, 0, 0, 0, 0, c.byte]), Buffer.from([0xcf, 0, 0, 0, 0, 0, 0, 0, c.byte]),
      Buffer.from([0xd2, 0xff, 0xff, 0xff, c.byte]), Buffer.from([0xce, 0, 0, 0, c.byte]), Buffer.from([0xca, 0x7f, 0x7f, 0xff, c.byte])]
    return splice(body, element, forms[c.b % forms.length])
  },
  'a vector value fewer': (body, layout, c) => {
    const item = pick(vectors(layout), c.a)
    if (item === undefined) return undefined
    const values = vectorValues(body, item)
    if ('elements' in values) {
      const count = values.elements.length
      if (count === 0) return undefined
      const last = values.elements[count - 1]
      const cut = splice(body, last, [])
      return splice(cut, { start: item.start, end: values.elements[0].start }, [0xdc, (count - 1) >> 8, (count - 1) & 0xff])
    }
    // Rewrite the ext or bin as its 32-bit form, 4 data bytes fewer.
    const head = body[item.start]
    const isExt = head === 0xc7 || head === 0xc8 || head === 0xc9
    const dataStart = isExt ? values.float32.start - 1 : values.float32.start
    const length = item.end - dataStart - 4
    if (length < 0) return undefined
    const newHead = isExt ? [0xc9, 0, 0, length >> 8, length & 0xff, body[dataStart - 1]] : [0xc6, 0, 0, length >> 8, length & 0xff]
    return splice(body, item, Buffer.concat([Buffer.from(newHead), body.subarray(dataStart, item.end - 4)]))
  },
  'nil for a string': (body, layout, c) => {
    const item = pick(strings(layout), c.a)
    return item === undefined ? undefined : splice(body, item, [0xc0])
  },
  'a byte of a string not UTF-8': (body, layout, c) => {
    const item = pick(strings(layout).map(s => stringData(body, s)).filter(d => d.end > d.start), c.a)
    if (item === undefined) return undefined
    const at = item.start + c.b % (item.end - item.start)
    return splice(body, { start: at, end: at + 1 }, [[0xff, 0x80, 0xc0, 0xed, 0xf4, 0xe2][c.byte % 6]])
  },
  'a string longer in bytes than its limit in characters': (body, layout, c) => {
    const item = pick(strings(layout), c.a)
    if (item === undefined) return undefined
    const limit = [ENTRY_LIMITS.idMaxLength, ENTRY_LIMITS.metadataKeyMaxLength][c.b % 2]
    return splice(body, item, str('é'.repeat(limit - (c.byte % 3))))
  },
  'a field removed': (body, layout, c) => {
    const map = pick(layout.entries, c.a)
    const pair = map === undefined ? undefined : pick(map.pairs, c.b)
    if (map === undefined || pair === undefined) return undefined
    return splice(splice(body, { start: pair.key.start, end: pair.value.end }, []), map.head, map16(map.pairs.length - 1))
  },
  'another op': (body, layout, c) => {
    const op = pick(layout.entries.flatMap(map => map.pairs.filter(pair => pair.name === 'op')), c.a)
    return op === undefined ? undefined : splice(body, op.value, str(['insert', 'update', 'delete', 'upsert', 'Insert'][c.byte % 5]))
  },
  'an unknown key': (body, layout, c) => {
    const pair = pick(layout.entries.flatMap(map => map.pairs), c.a)
    return pair === undefined ? undefined : splice(body, pair.key, str(pair.name.toUpperCase()))
  },
  'wider heads': (body, layout, c) => {
    // From the end, so that each range still holds where it was.
    const chosen = widenings(body, layout).filter((_, i) => (c.a >> (i % 30)) % 2 === 1 || i % 7 === c.b % 7).sort((x, y) => y.range.start - x.range.start)
    return chosen.reduce((out, { range, wider }, i) => splice(out, range, wider((c.byte + i) % 3)), body)
  },
  'one head wider': (body, layout, c) => {
    const one = pick(widenings(body, layout), c.a)
    return one === undefined ? undefined : splice(body, one.range, one.wider(c.b % 3))
  }
}
const MUTATION_NAMES = Object.keys(MUTATIONS)
const WIDENINGS = ['wider heads', 'one head wider']

const choice = fc.record({ a: fc.nat(), b: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) })
/** msgpackr's records may use in a later entry a key list defined in an earlier one: its entries do not stand alone. */
const SPLITTABLE = ENCODINGS.filter(e => e !== 'json' && e !== 'msgpackr records, typed array')

t.test('valid bodies with heads in wider forms: taken alike, with the same bytes', async t => {
  let widened = 0
  fc.assert(fc.property(fc.array(entry, { minLength: 1, maxLength: 4 }), biased(SPLITTABLE), anyOrder, fc.constantFrom(...WIDENINGS), choice, (entries, encoding, order, name, c) => {
    const valid = batchBody(entries, encoding, order)
    const body = MUTATIONS[name](valid, layoutOf(valid), c)
    if (body === undefined || body.equals(valid)) return
    widened++
    const rules = rulesFor(encoding, FREE)
    const packed = packBatchBody(valid, rules)
    const wider = packBatchBody(body, rules)
    if (packed === undefined ? wider !== undefined : wider === undefined || !wider.payload.equals(packed.payload)) {
      throw new Error(`${name}, ${encoding}: ${valid.toString('hex')} as ${body.toString('hex')}: ${packed === undefined ? 'not taken' : 'taken'}, then ${wider === undefined ? 'not taken' : 'other bytes'}`)
    }
  }), { numRuns: 1000 })
  t.ok(widened > 500, `bodies were widened (${widened})`)
})

/** The payloads the log stored, by seq, read from its segment files as they grow. */
class StoredPayloads {
  private readonly read = new Map<string, number>()
  private readonly bySeq = new Map<number, Buffer>()

  constructor (private readonly dir: string) {}

  payload (seq: number): Buffer {
    if (!this.bySeq.has(seq)) this.catchUp()
    const payload = this.bySeq.get(seq)
    if (payload === undefined) throw new Error(`seq ${seq} is not in the segments`)
    return payload
  }

  private catchUp (): void {
    for (const file of segmentFiles(this.dir)) {
      const buf = fs.readFileSync(path.join(this.dir, file))
      let offset = this.read.get(file) ?? SEGMENT_HEADER_BYTES
      for (let result = readRecord(buf, offset); result.kind === 'record'; result = readRecord(buf, offset)) {
        const { frame } = result
        this.bySeq.set(frame.seq, Buffer.from(frame.source.subarray(frame.payloadStart, frame.payloadEnd)))
        offset += frame.size
      }
      this.read.set(file, offset)
    }
  }
}

interface Posted { status: number, seq?: number, text: string }

async function post (service: TestService, route: string, body: Buffer, type: string): Promise<Posted> {
  const response = await service.call('POST', route, body, { 'content-type': type })
  const text = await response.text()
  return { status: response.status, seq: response.status === 201 ? (JSON.parse(text) as { seq: number }).seq : undefined, text }
}

/**
 * Posts the body to /v1/batch and its entries one by one to /v1/entries; why the packer and the
 * long way disagree on it, or undefined.
 */
async function compareWays (service: TestService, stored: StoredPayloads, body: Buffer, type: string, rules: PackRules): Promise<string | undefined> {
  const packed = packBatchBody(body, rules)
  const batch = await post(service, '/v1/batch', body, type)
  if (batch.status !== 201 && batch.status !== 400) return `/v1/batch answered ${batch.status} ${batch.text}`
  if (packed !== undefined) {
    if (batch.seq === undefined) return `taken by the packer, refused by /v1/batch: ${batch.text}`
    if (!stored.payload(batch.seq).equals(packed.payload)) return 'the batch record is not the packed payload'
  }
  const ranges = entryRanges(body)
  if (ranges === undefined) return packed === undefined ? undefined : 'taken by the packer, but not a map of entries alone'
  const singles: Buffer[] = []
  for (const range of ranges) {
    const single = await post(service, '/v1/entries', body.subarray(range.start, range.end), type)
    if (single.status !== 201 && single.status !== 400) return `/v1/entries answered ${single.status} ${single.text}`
    if (single.seq === undefined) {
      if (packed !== undefined) return `taken by the packer, entry ${singles.length} refused by /v1/entries: ${single.text}`
      return batch.status === 201 ? `an entry refused by /v1/entries (${single.text}), the batch taken` : undefined
    }
    singles.push(stored.payload(single.seq))
  }
  const taken = ranges.length >= 1 && ranges.length <= ENTRY_LIMITS.batchMaxEntries
  if ((batch.status === 201) !== taken) return `every entry taken by /v1/entries, the batch answered ${batch.status} ${batch.text}`
  if (batch.seq !== undefined && !entriesPart(stored.payload(batch.seq)).equals(Buffer.concat(singles))) return 'the batch record differs from the entries stored one by one'
  return undefined
}


/** Runs valid bodies and the same mutated through `service`; answers how many of each kind the packer took. */
async function mutatedBodies (service: TestService, lengths: Omit<PackRules, 'binIsFloat32'>, entries: fc.Arbitrary<Entry[]>, numRuns: number): Promise<Record<string, number>> {
  const stored = new StoredPayloads(service.dir)
  const taken: Record<string, number> = {}
  const args = [entries, biased(SPLITTABLE), anyOrder, fc.constantFrom(...MUTATION_NAMES), choice, fc.nat(3).map(n => n === 0)] as const
  await fc.assert(fc.asyncProperty(...args, async (list, encoding, order, chosen, c, binUnsaid) => {
    const valid = batchBody(list, encoding, order)
    const layout = layoutOf(valid)
    let name = chosen
    let body = MUTATIONS[name](valid, layout, c)
    if (body === undefined) {
      name = 'overwrite a byte'
      body = MUTATIONS[name](valid, layout, c) as Buffer
    }
    // A bin vector sent without saying it holds float32 values is refused both ways.
    const rules = binUnsaid ? { ...lengths, binIsFloat32: false } : rulesFor(encoding, lengths)
    const type = binUnsaid ? 'application/msgpack' : contentType(encoding)
    for (const [kind, sent] of [['unchanged', valid], [name, body]] as const) {
      const why = await compareWays(service, stored, sent, type, rules)
      if (packBatchBody(sent, rules) !== undefined) taken[kind] = (taken[kind] ?? 0) + 1
      if (why !== undefined) throw new Error(`${kind}, ${encoding}, ${type}: ${why}; body ${sent.toString('hex')}`)
    }
    // Wider heads are as valid as the smallest, and no exclusion: a body taken is taken with them.
    if (WIDENINGS.includes(name) && packBatchBody(valid, rules) !== undefined && packBatchBody(body, rules) === undefined) {
      throw new Error(`${name}, ${encoding}: taken, but not with wider heads: ${valid.toString('hex')} as ${body.toString('hex')}`)
    }
  }), { numRuns, endOnFailure: true })
  return taken
}

// Durability is not what is compared here: the service skips fsync, and every record is read back
// from its segment files' bytes.
t.test('mutated bodies: whatever the packer takes, the long way takes and stores alike; what it refuses, the packer does not take', async t => {
  const service = await startTestService(t, {}, undefined, { io: noSyncIO })
  const taken = await mutatedBodies(service, FREE, fc.array(entry, { minLength: 1, maxLength: 4 }), 150)
  t.ok((taken.unchanged ?? 0) > 75, `most valid bodies were taken (${JSON.stringify(taken)})`)
  t.ok(Object.keys(taken).length > 3, 'and bodies after several kinds of change')
})

t.test('mutated bodies under a fixed dimension, vectors of that length and one off', async t => {
  const dimensions = 6
  const service = await startTestService(t, { VECWAL_DIMENSIONS: String(dimensions) }, undefined, { io: noSyncIO })
  const entries = fc.array(fc.tuple(entry, fc.constantFrom(dimensions - 1, dimensions, dimensions, dimensions, dimensions, dimensions + 1)).map(([e, length]) => resized(e, length)), { minLength: 1, maxLength: 3 })
  const taken = await mutatedBodies(service, { minVectorLength: dimensions, maxVectorLength: dimensions }, entries, 80)
  t.ok((taken.unchanged ?? 0) > 20, `the valid bodies with vectors of that length were taken (${JSON.stringify(taken)})`)
})

// The largest batch, every entry with a number-array vector and metadata: three maps and arrays an
// entry, and the body's map and list besides. The packer takes it on /v1/batch; the long way gets
// the same bytes when they are staged in a transaction.
t.test('the largest batch, every entry with metadata: the packer and the long way take it alike', async t => {
  const service = await startTestService(t, {}, undefined, { io: noSyncIO })
  const stored = new StoredPayloads(service.dir)
  const smallText = (minLength: number): fc.Arbitrary<string> => fc.string({ unit: 'binary', minLength, maxLength: 8 })
  const withMetadata: fc.Arbitrary<Entry> = fc.record({
    op: fc.constantFrom('insert' as const, 'update' as const),
    id,
    vector: fc.array(float32, { minLength: 1, maxLength: 4 }).map(values => Float32Array.from(values)),
    metadata: fc.dictionary(smallText(1).filter(key => key !== '__proto__' && !DIGITS_ONLY.test(key)), smallText(0), { maxKeys: 3, noNullPrototype: true })
  })
  const encoding: Encoding = 'msgpackr number array'
  await fc.assert(fc.asyncProperty(fc.array(withMetadata, { minLength: ENTRY_LIMITS.batchMaxEntries, maxLength: ENTRY_LIMITS.batchMaxEntries }), keyOrder, async (entries, order) => {
    const body = batchBody(entries, encoding, order)
    const type = contentType(encoding)
    const packed = packBatchBody(body, rulesFor(encoding, FREE))
    t.ok(packed !== undefined, 'the packer takes it')
    const batch = await post(service, '/v1/batch', body, type)
    t.equal(batch.status, 201, '/v1/batch takes it')
    const { txId } = await (await service.call('POST', '/v1/transactions')).json() as { txId: string }
    const staged = await post(service, `/v1/transactions/${txId}/entries`, body, type)
    t.equal(staged.status, 202, `staged the long way: ${staged.text}`)
    if (batch.seq === undefined || staged.status !== 202 || packed === undefined) return
    const committed = await service.call('POST', `/v1/transactions/${txId}/commit`)
    t.equal(committed.status, 201, 'committed')
    const { seq } = await committed.json() as { seq: number }
    t.ok(stored.payload(batch.seq).equals(packed.payload), 'the batch record is the packed payload')
    const committedEntries = Buffer.concat([entriesPart(packed.payload), str('txId'), str(txId)])
    t.ok(entriesPart(stored.payload(seq)).equals(committedEntries), 'the committed record holds the same entries, then its txId')
  }), { numRuns: 1 })
})
