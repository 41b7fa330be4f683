// A msgpack batch body (`{ entries: [...] }`) turned into the bytes its record stores, in one walk
// that builds no object: each entry checked against the entry rules of src/entry.ts as it is
// read, its fields rewritten in the stored order and forms (docs/format.md), its strings and
// float32 vectors copied as they lie. Decoding such a body into objects, validating the objects
// and encoding them again cost most of what a binary batch costs the service.
//
// It takes the form nearly every client writes (plain maps, string keys, a vector as msgpackr's
// Float32Array extension, as a bin of float32 when the client says so, or as an array of numbers)
// and answers undefined for anything else, valid or not: a body in another form, one that breaks a
// rule, or one whose stored form an object would change (a repeated key, a key an object orders
// first). The caller then decodes it and validates it the long way, which takes it or names what
// is wrong with it, so this walk never refuses anything and never needs to say why.
import type { EntryOp } from '../entry.js'
import { ENTRY_LIMITS, FLOAT32_ROUNDING_LIMIT } from '../entry.js'
import { FLOAT32_ARRAY_CODE, MsgpackKind, MsgpackMismatch, MsgpackReader, TYPED_ARRAY_EXTENSION } from '../msgpack/reader.js'
import { isUtf8At } from '../msgpack/utf8.js'
import { PackedEntries } from './packed-entries.js'
import { batchHeads, KEY_ID, KEY_METADATA, KEY_OP, KEY_VECTOR, NO_FIX_FORM, OPS, writeLengthHead } from './payload-writer.js'

export interface PackRules {
  /** The fewest and most values a vector may have (the configured dimensions, when set). */
  minVectorLength: number
  maxVectorLength: number
  /** The client said its bins hold little-endian float32 values (`; bin=float32le`). */
  binIsFloat32: boolean
}

/** The body is not in the form this walk takes: the long way decides. */
class NotPacked extends Error {}
const NOT_PACKED = new NotPacked()

function notPacked (): never {
  throw NOT_PACKED
}

const KEY_ENTRIES = Buffer.from('entries')
const FIELD_OP = 1
const FIELD_ID = 2
const FIELD_VECTOR = 4
const FIELD_METADATA = 8
const WITH_VECTOR = FIELD_OP | FIELD_ID | FIELD_VECTOR
const ENTRY_OPS: readonly EntryOp[] = ['insert', 'update', 'delete']
const OP_NAMES = ENTRY_OPS.map(op => Buffer.from(op))

/** A map16 head, as the payload writer writes every map's. */
const MAP16 = 0xde

// The payload is written into a buffer of its own, which the record keeps while it waits in the
// write queue: sized for the body's bytes and the heads that may widen (an entry's or metadata's
// fixmap becomes a map16), so that nearly every walk fills it without growing it or copying it out.
const NO_OUTPUT: Buffer = Buffer.alloc(0)
let out = NO_OUTPUT
let at = 0

/** `out`, for writing float32 values into it. */
let outView = new DataView(out.buffer, out.byteOffset, out.length)

function ensure (bytes: number): void {
  const needed = at + bytes
  if (needed <= out.length) return
  const bigger = Buffer.allocUnsafe(Math.max(needed, out.length * 2))
  out.copy(bigger, 0, 0, at)
  useOut(bigger)
}

/**
 * The payload written: `out` itself when it is nearly full, else a copy at its exact size. The
 * write queue counts a record's payload bytes against its limit, so the buffer a payload keeps
 * alive must not be much larger (a body of float64 arrays shrinks to half as float32).
 */
function fitted (): Buffer {
  if (out.length - at <= at >>> 4) return out.subarray(0, at)
  const exact = Buffer.allocUnsafeSlow(at)
  out.copy(exact, 0, 0, at)
  return exact
}

function useOut (buffer: Buffer): void {
  out = buffer
  outView = new DataView(buffer.buffer, buffer.byteOffset, buffer.length)
}

/** Below this many bytes a loop copies faster than Buffer.copy, whose every call costs ~100 ns. */
const SHORT_COPY = 64

function copyOut (src: Buffer, start: number, end: number): void {
  ensure(end - start)
  if (end - start < SHORT_COPY) {
    for (let i = start; i < end; i++) out[at++] = src[i]
  } else {
    at += src.copy(out, at, start, end)
  }
}

/** Whether src[start, start + length) holds exactly `name`. */
function bytesAre (src: Buffer, start: number, length: number, name: Buffer): boolean {
  if (length !== name.length) return false
  for (let i = 0; i < length; i++) if (src[start + i] !== name[i]) return false
  return true
}

const reader = new MsgpackReader()

/**
 * A string at the reader, at most `maxBytes` long in UTF-8 and at least `minBytes`: its data's
 * start (its length in reader.length). Past maxBytes its characters might still be few enough:
 * not packed, for the schema to count them.
 */
function stringAt (minBytes: number, maxBytes: number): number {
  const length = reader.string()
  if (length < minBytes || length > maxBytes) notPacked()
  const start = reader.take(length)
  if (!isUtf8At(reader.src, start, start + length)) notPacked()
  reader.length = length
  return start
}

function putString (src: Buffer, start: number, length: number): void {
  ensure(length + 5)
  at = writeLengthHead(out, at, length, 0xa0, 0xd9, 0xda, 0xdb)
  copyOut(src, start, start + length)
}

/** Whether the string head at `headAt`, of a string `length` long, is the smallest form, as the writer writes it. */
function smallestStringHead (src: Buffer, headAt: number, length: number): boolean {
  return src[headAt] === (length < 0x20 ? 0xa0 | length : length < 0x100 ? 0xd9 : length < 0x10000 ? 0xda : 0xdb)
}

/** The exponent bits of a float32 that is not finite. */
const NOT_FINITE = 0x7f800000
const NO_VIEW = new DataView(new ArrayBuffer(0))
/** The body, for reading float32 bits where they lie: one 32-bit load a value, aligned or not. */
let view: DataView = NO_VIEW

function checkVectorLength (count: number, rules: PackRules): void {
  if (count < rules.minVectorLength || count > rules.maxVectorLength) notPacked()
}

function checkFinite (start: number, count: number): void {
  const bits = view
  const end = start + count * 4
  for (let p = start; p < end; p += 4) if ((bits.getUint32(p, true) & NOT_FINITE) === NOT_FINITE) notPacked()
}

function putVectorHead (count: number): void {
  ensure(count * 4 + 8)
  at = writeLengthHead(out, at, count * 4 + 1, NO_FIX_FORM, 0xc7, 0xc8, 0xc9)
  out[at++] = TYPED_ARRAY_EXTENSION
  out[at++] = FLOAT32_ARRAY_CODE
}

/**
 * A vector sent as an array of numbers, each rounded to float32 as the engine stores it (written
 * when `emit`). The schema takes any number within the float32 range; 64-bit integers go the long way.
 */
function numberArray (count: number, emit: boolean): void {
  if (emit) putVectorHead(count)
  const src = reader.src
  for (let i = 0; i < count; i++) {
    const head = src[reader.pos]
    let value: number
    if (head === 0xcb) value = view.getFloat64(reader.take(9) + 1)
    else if (head === 0xca) value = view.getFloat32(reader.take(5) + 1)
    else if (head <= 0x7f) value = src[reader.take(1)]
    else if (head >= 0xe0) value = src[reader.take(1)] - 0x100
    else if (head === 0xcc) value = src[reader.take(2) + 1]
    else if (head === 0xcd) value = src.readUInt16BE(reader.take(3) + 1)
    else if (head === 0xce) value = src.readUInt32BE(reader.take(5) + 1)
    else if (head === 0xd0) value = src.readInt8(reader.take(2) + 1)
    else if (head === 0xd1) value = src.readInt16BE(reader.take(3) + 1)
    else if (head === 0xd2) value = src.readInt32BE(reader.take(5) + 1)
    else notPacked()
    // NaN fails both comparisons.
    if (!(value > -FLOAT32_ROUNDING_LIMIT && value < FLOAT32_ROUNDING_LIMIT)) notPacked()
    if (emit) {
      outView.setFloat32(at, value, true)
      at += 4
    }
  }
}

/**
 * Checks the vector at the reader, writing it in its stored form when `emit`: msgpackr's
 * Float32Array extension. Returns whether its bytes already are that form.
 */
function vector (rules: PackRules, emit: boolean): boolean {
  const src = reader.src
  const headAt = reader.pos
  const kind = reader.head()
  const length = reader.length
  if (kind === MsgpackKind.array) {
    checkVectorLength(length, rules)
    numberArray(length, emit)
    return false
  }
  let start: number
  let count: number
  let canonical = false
  if (kind === MsgpackKind.ext) {
    const dataAt = reader.take(length)
    if (reader.extType !== TYPED_ARRAY_EXTENSION || length % 4 !== 1 || src[dataAt] !== FLOAT32_ARRAY_CODE) notPacked()
    start = dataAt + 1
    count = (length - 1) / 4
    canonical = src[headAt] === (length < 0x100 ? 0xc7 : length < 0x10000 ? 0xc8 : 0xc9)
  } else if (kind === MsgpackKind.bin && rules.binIsFloat32 && length % 4 === 0) {
    start = reader.take(length)
    count = length / 4
  } else {
    notPacked()
  }
  checkVectorLength(count, rules)
  checkFinite(start, count)
  if (emit) {
    putVectorHead(count)
    copyOut(src, start, start + count * 4)
  }
  return canonical
}

/**
 * Whether a metadata key would not keep its place in an object: an object lists integer-like keys
 * first. Any key of digits only goes the long way, which writes what the object holds.
 */
function digitsOnly (src: Buffer, start: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (src[start + i] < 0x30 || src[start + i] > 0x39) return false
  return true
}

const PROTO = Buffer.from('__proto__')
const keyStarts: number[] = []
const keyLengths: number[] = []

/**
 * Checks the metadata map at the reader (string keys, none repeated, to string values, as the
 * schema has them), writing it in its stored form when `emit`. Returns whether its bytes already
 * are that form.
 */
function metadata (emit: boolean): boolean {
  const src = reader.src
  let canonical = src[reader.pos] === MAP16
  const count = reader.map()
  if (count > ENTRY_LIMITS.metadataMaxKeys) notPacked()
  if (emit) {
    ensure(3)
    out[at] = MAP16
    out.writeUInt16BE(count, at + 1)
    at += 3
  }
  for (let i = 0; i < count; i++) {
    const keyHead = reader.pos
    const keyStart = stringAt(1, ENTRY_LIMITS.metadataKeyMaxLength)
    const keyLength = reader.length
    if (digitsOnly(src, keyStart, keyLength) || bytesAre(src, keyStart, keyLength, PROTO)) notPacked()
    for (let k = 0; k < i; k++) {
      if (keyLengths[k] === keyLength && src.compare(src, keyStart, keyStart + keyLength, keyStarts[k], keyStarts[k] + keyLength) === 0) notPacked()
    }
    keyStarts[i] = keyStart
    keyLengths[i] = keyLength
    const valueHead = reader.pos
    const valueStart = stringAt(0, ENTRY_LIMITS.metadataValueMaxLength)
    const valueLength = reader.length
    canonical &&= smallestStringHead(src, keyHead, keyLength) && smallestStringHead(src, valueHead, valueLength)
    if (emit) {
      putString(src, keyStart, keyLength)
      putString(src, valueStart, valueLength)
    }
  }
  return canonical
}

/** The key names, as the stored keys' bytes less their fixstr head. */
const KEY_OP_NAME = KEY_OP.subarray(1)
const KEY_ID_NAME = KEY_ID.subarray(1)
const KEY_VECTOR_NAME = KEY_VECTOR.subarray(1)
const KEY_METADATA_NAME = KEY_METADATA.subarray(1)

/** The entry field a key names, told apart by length first; not packed for any other key. */
function fieldOf (src: Buffer, start: number, length: number): number {
  if (length === 2) {
    if (bytesAre(src, start, 2, KEY_ID_NAME)) return FIELD_ID
    if (bytesAre(src, start, 2, KEY_OP_NAME)) return FIELD_OP
  } else if (length === 6) {
    if (bytesAre(src, start, 6, KEY_VECTOR_NAME)) return FIELD_VECTOR
  } else if (length === 8) {
    if (bytesAre(src, start, 8, KEY_METADATA_NAME)) return FIELD_METADATA
  }
  notPacked()
}

/** The index in ENTRY_OPS of the op a string names; not packed for any other. */
function opOf (src: Buffer, start: number, length: number): number {
  for (let op = 0; op < OP_NAMES.length; op++) if (bytesAre(src, start, length, OP_NAMES[op])) return op
  notPacked()
}

/** Where the entries not yet written out begin: a run of entries whose bytes are their stored form goes out in one copy. */
let runStart = 0

/**
 * One entry's map, checked whole. If its bytes are its stored form (a map16, its fields in the
 * order op, id, vector, metadata, every head the smallest, the vector msgpackr's Float32Array),
 * they join the run to copy as they are; else the run so far goes out, then the entry is written
 * field by field in that order, its vector and metadata walked again where they lie.
 */
function putEntry (rules: PackRules, ops: number[]): void {
  const src = reader.src
  const entryStart = reader.pos
  let canonical = src[entryStart] === MAP16
  const count = reader.map()
  if (count < 2 || count > 4) notPacked()
  let fields = 0
  let op = -1
  let idStart = 0
  let idLength = 0
  let vectorAt = -1
  let metadataAt = -1
  for (let i = 0; i < count; i++) {
    const keyHead = reader.pos
    const keyLength = reader.string()
    const field = fieldOf(src, reader.take(keyLength), keyLength)
    if ((fields & field) !== 0) notPacked()
    // Fields in the stored order have rising flags.
    canonical &&= field > fields && src[keyHead] === (0xa0 | keyLength)
    fields |= field
    const valueHead = reader.pos
    if (field === FIELD_ID) {
      idStart = stringAt(1, ENTRY_LIMITS.idMaxLength)
      idLength = reader.length
      canonical &&= smallestStringHead(src, valueHead, idLength)
    } else if (field === FIELD_OP) {
      const length = reader.string()
      op = opOf(src, reader.take(length), length)
      canonical &&= src[valueHead] === (0xa0 | length)
    } else if (field === FIELD_VECTOR) {
      vectorAt = valueHead
      canonical = vector(rules, false) && canonical
    } else {
      metadataAt = valueHead
      canonical = metadata(false) && canonical
    }
  }
  const isDelete = ENTRY_OPS[op] === 'delete'
  if (isDelete ? fields !== (FIELD_OP | FIELD_ID) : (fields & WITH_VECTOR) !== WITH_VECTOR) notPacked()
  ops[op]++
  if (canonical) return
  const end = reader.pos
  copyOut(src, runStart, entryStart)
  runStart = end
  ensure(3)
  out[at] = MAP16
  out.writeUInt16BE(count, at + 1)
  at += 3
  copyOut(KEY_OP, 0, KEY_OP.length)
  const opBytes = OPS[ENTRY_OPS[op]]
  copyOut(opBytes, 0, opBytes.length)
  copyOut(KEY_ID, 0, KEY_ID.length)
  putString(src, idStart, idLength)
  if (!isDelete) {
    copyOut(KEY_VECTOR, 0, KEY_VECTOR.length)
    reader.pos = vectorAt
    vector(rules, true)
    if (metadataAt !== -1) {
      copyOut(KEY_METADATA, 0, KEY_METADATA.length)
      reader.pos = metadataAt
      metadata(true)
    }
  }
  reader.pos = end
}

/**
 * A msgpack batch body as its record's payload, or undefined when the body is not in the form this
 * walk takes (see the top of this file): decode and validate it the long way then.
 */
export function packBatchBody (body: Buffer, rules: PackRules): PackedEntries | undefined {
  reader.reset(body, 0, body.length)
  view = new DataView(body.buffer, body.byteOffset, body.length)
  at = 0
  try {
    if (reader.map() !== 1) notPacked()
    const keyLength = reader.string()
    if (!bytesAre(body, reader.take(keyLength), keyLength, KEY_ENTRIES)) notPacked()
    const count = reader.array()
    if (count < 1 || count > ENTRY_LIMITS.batchMaxEntries) notPacked()
    useOut(Buffer.allocUnsafe(body.length + 4 * count + 32))
    const heads = batchHeads(count)
    copyOut(heads, 0, heads.length)
    const ops = [0, 0, 0]
    runStart = reader.pos
    for (let i = 0; i < count; i++) putEntry(rules, ops)
    if (reader.pos !== reader.end) notPacked()
    copyOut(body, runStart, reader.pos)
    const counts = new Map<EntryOp, number>()
    ENTRY_OPS.forEach((op, i) => { if (ops[i] > 0) counts.set(op, ops[i]) })
    return new PackedEntries(fitted(), count, counts)
  } catch (err) {
    if (err instanceof NotPacked || err instanceof MsgpackMismatch) return undefined
    throw err
  } finally {
    useOut(NO_OUTPUT)
    view = NO_VIEW
    reader.release()
  }
}
