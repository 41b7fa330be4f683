// A record's NDJSON line, transcoded straight from its payload's msgpack bytes. Nothing is decoded
// into objects: decoding made a Float32Array (a fresh ArrayBuffer), strings and maps for every
// entry, and cost half as much again as printing the line.
//
// The walk follows the one shape payload.ts writes, key by key (docs/format.md): anything else, a
// missing or extra key, a value of another type, bytes left over, means the payload is not a
// record body, and the line is refused. The same walk, printing nothing, checks a body for the
// other read forms (checkRecordBody).
import { MAX_FLOAT_CHARS, SLACK, writeFloat32Bits } from './float32-decimal.js'
import type { RecordFrame } from './format.js'
import { FLOAT32_ARRAY_CODE, MsgpackMismatch, MsgpackReader, TYPED_ARRAY_EXTENSION } from '../msgpack/reader.js'
import { bodyEntries, decodeItem, type BodyEntries } from './payload.js'

const CHAR_QUOTE = 0x22
const CHAR_BACKSLASH = 0x5c
const CHAR_COMMA = 0x2c
const CHAR_COLON = 0x3a
const CHAR_OPEN_BRACE = 0x7b
const CHAR_CLOSE_BRACE = 0x7d
const CHAR_OPEN_BRACKET = 0x5b
const CHAR_CLOSE_BRACKET = 0x5d

/** The exponent bits of a float32 that is not finite. */
const NOT_FINITE = 0x7f800000

/** The keys after `op`, as the payload holds them and as the line prints them. */
function key (name: string): { bytes: Buffer, json: string } {
  return { bytes: Buffer.from(name), json: `,"${name}":` }
}
const KEY_ID = key('id')
const KEY_VECTOR = key('vector')
const KEY_METADATA = key('metadata')
const KEY_ENTRIES = key('entries')
const KEY_TX_ID = key('txId')
const KEY_CHECKPOINT = key('checkpoint')
/** A batch entry's first key: printed with its value, not before it. */
const KEY_OP = { bytes: Buffer.from('op'), json: '' }

type EntryOp = 'insert' | 'update' | 'delete'
const ENTRY_OPS: readonly EntryOp[] = ['insert', 'update', 'delete']
const ENTRY_OP_BYTES = ENTRY_OPS.map(op => Buffer.from(op))

/** Thrown inside the walk when the payload is not a record body. */
class NotARecordBody extends Error {}

// The walk's state, for the one payload being walked: walks are synchronous, one at a time, and
// module state keeps every step a plain function of a few integers. The reader lets go of its
// source after each walk, so that it never holds a reader's buffer. With `printing` false, nothing
// is written.
const reader = new MsgpackReader()
let printing = true

// Every line is written into this one buffer, which grows to the longest line seen up to
// KEPT_LINE_BYTES; a longer line gets a buffer of its own, let go after the call. One buffer and
// one DataView for all: V8 keeps the printing loop fast for a DataView it has seen before, and is
// several times slower when each chunk of a stream brings a new one.
const KEPT_LINE_BYTES = 1024 * 1024
let lineScratch = Buffer.allocUnsafeSlow(64 * 1024)
let lineView = new DataView(lineScratch.buffer, lineScratch.byteOffset, lineScratch.length)
let out = lineScratch
let view = lineView
let at = 0

// A vector's bytes are copied here first: in the payload they may lie at any offset, and an
// Int32Array reads them as float bits only at a multiple of four. Kept up to KEPT_LINE_BYTES, as
// the line buffer is.
let vectorBytes = new Uint8Array(4096)
let vectorBits = new Int32Array(vectorBytes.buffer)

/** Makes room for `bytes` more bytes of line (and SLACK), moving to a bigger buffer if need be. */
function ensure (bytes: number): void {
  const needed = at + bytes + SLACK
  if (needed <= out.length) return
  const bigger = Buffer.allocUnsafeSlow(Math.max(needed, out.length * 2))
  out.copy(bigger, 0, 0, at)
  out = bigger
  view = new DataView(bigger.buffer, bigger.byteOffset, bigger.length)
  if (bigger.length <= KEPT_LINE_BYTES) {
    lineScratch = out
    lineView = view
  }
}

function putAscii (text: string): void {
  if (!printing) return
  ensure(text.length)
  at += out.write(text, at, 'latin1')
}

function putByte (byte: number): void {
  if (!printing) return
  ensure(1)
  out[at++] = byte
}

/** Whether the source's [start, start + length) holds `bytes`: a loop, cheaper than a call into Buffer.compare for a few bytes. */
function holds (bytes: Buffer, start: number, length: number): boolean {
  if (length !== bytes.length) return false
  const src = reader.src
  for (let i = 0; i < length; i++) if (src[start + i] !== bytes[i]) return false
  return true
}

/** Moves past the string at the reader, which must hold exactly `name`, and prints `,"name":`. */
function expectKey (name: { bytes: Buffer, json: string }): void {
  const length = reader.string()
  if (!holds(name.bytes, reader.take(length), length)) throw new NotARecordBody()
  putAscii(name.json)
}

/**
 * Prints the string at the reader as a JSON string. Printable ASCII without quotes or backslashes, which
 * is nearly every id and key, is copied byte for byte; anything else is decoded as msgpackr decodes
 * it and escaped as JSON.stringify escapes it.
 */
function putString (): void {
  const headerStart = reader.pos
  const length = reader.string()
  const start = reader.take(length)
  if (!printing) return
  const { src, pos: end } = reader
  ensure(length + 2)
  out[at] = CHAR_QUOTE
  let to = at + 1
  for (let from = start; from < end; from++) {
    const byte = src[from]
    if (byte < 0x20 || byte >= 0x80 || byte === CHAR_QUOTE || byte === CHAR_BACKSLASH) {
      putJson(decodeItem(src, headerStart, end))
      return
    }
    out[to++] = byte
  }
  out[to] = CHAR_QUOTE
  at = to + 1
}

const RAW_LINE_BREAK = /[\u0085\u2028\u2029]/
const RAW_LINE_BREAKS = /[\u0085\u2028\u2029]/g

function escapeLineBreak (char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`
}

/**
 * Prints a decoded value as JSON.stringify does, with U+0085, U+2028 and U+2029 escaped too: some
 * line splitters (Python's str.splitlines, for one) break lines at them.
 */
function putJson (value: unknown): void {
  let json = JSON.stringify(value)
  if (RAW_LINE_BREAK.test(json)) json = json.replace(RAW_LINE_BREAKS, escapeLineBreak)
  // A UTF-16 unit takes at most 3 bytes in UTF-8.
  ensure(json.length * 3)
  at += out.write(json, at, 'utf8')
}

/** Prints the float32 vector at the reader: msgpackr's typed-array extension, code 7, finite values. */
function putVector (): void {
  const length = reader.ext()
  const start = reader.take(length)
  const { src, pos: end } = reader
  if (reader.extType !== TYPED_ARRAY_EXTENSION || src[start] !== FLOAT32_ARRAY_CODE || length % 4 !== 1) throw new NotARecordBody()
  const byteLength = length - 1
  const count = byteLength >> 2
  if (!printing) {
    // Little-endian float32s: the exponent is the low 7 bits of the fourth byte and the top bit of the third.
    for (let at = start + 1; at < end; at += 4) {
      if ((src[at + 3] & 0x7f) === 0x7f && (src[at + 2] & 0x80) !== 0) throw new NotARecordBody()
    }
    return
  }
  let bytes = vectorBytes
  let bits = vectorBits
  if (byteLength > bytes.length) {
    bytes = new Uint8Array(byteLength)
    bits = new Int32Array(bytes.buffer)
    if (byteLength <= KEPT_LINE_BYTES) {
      vectorBytes = bytes
      vectorBits = bits
    }
  }
  bytes.set(src.subarray(start + 1, end))
  ensure(2 + count * (MAX_FLOAT_CHARS + 1))
  const target = view
  let to = at
  out[to++] = CHAR_OPEN_BRACKET
  for (let i = 0; i < count; i++) {
    if (i > 0) out[to++] = CHAR_COMMA
    if ((bits[i] & NOT_FINITE) === NOT_FINITE) throw new NotARecordBody()
    to = writeFloat32Bits(bits[i], target, to)
  }
  out[to++] = CHAR_CLOSE_BRACKET
  at = to
}

/**
 * Prints the metadata map at the reader: string values by string key. A key that is not ASCII prints as
 * it decodes, and logs from before lone surrogates were refused may hold keys that decode alike
 * (invalid UTF-8, each bad byte U+FFFD): a map with such a key prints as decoded, one key once.
 */
function putMetadata (): void {
  const mapStart = reader.pos
  const lineStart = at
  const count = reader.map()
  putByte(CHAR_OPEN_BRACE)
  for (let i = 0; i < count; i++) {
    if (i > 0) putByte(CHAR_COMMA)
    const keyStart = reader.pos
    const keyLength = reader.string()
    const keyBytes = reader.take(keyLength)
    if (printing && !isAscii(keyBytes, keyLength)) {
      printing = false
      reader.pos = keyStart
      try {
        putMetadataEntries(count - i)
      } finally {
        printing = true
      }
      at = lineStart
      putJson(decodeItem(reader.src, mapStart, reader.pos))
      return
    }
    reader.pos = keyStart
    putString()
    putByte(CHAR_COLON)
    putString()
  }
  putByte(CHAR_CLOSE_BRACE)
}

function putMetadataEntries (count: number): void {
  for (let i = 0; i < count; i++) {
    putString()
    putString()
  }
}

function isAscii (start: number, length: number): boolean {
  const src = reader.src
  for (let i = start; i < start + length; i++) if (src[i] >= 0x80) return false
  return true
}

/** Prints an entry's fields after its op; `count` is its map's entry count, op included. */
function putEntryFields (op: EntryOp, count: number): void {
  expectKey(KEY_ID)
  putString()
  if (op === 'delete') {
    if (count !== 2) throw new NotARecordBody()
    return
  }
  if (count !== 3 && count !== 4) throw new NotARecordBody()
  expectKey(KEY_VECTOR)
  putVector()
  if (count === 4) {
    expectKey(KEY_METADATA)
    putMetadata()
  }
}

/** Prints a batch's entries: a map each, `op` first, naming insert, update or delete. */
function putBatchEntries (): void {
  // The engine writes an empty batch if asked to (HTTP refuses one).
  const count = reader.array()
  putByte(CHAR_OPEN_BRACKET)
  for (let i = 0; i < count; i++) {
    if (i > 0) putByte(CHAR_COMMA)
    const fields = reader.map()
    if (fields < 2) throw new NotARecordBody()
    expectKey(KEY_OP)
    const opLength = reader.string()
    const opStart = reader.take(opLength)
    const index = ENTRY_OP_BYTES.findIndex(name => holds(name, opStart, opLength))
    if (index === -1) throw new NotARecordBody()
    putAscii(`{"op":"${ENTRY_OPS[index]}"`)
    putEntryFields(ENTRY_OPS[index], fields)
    putByte(CHAR_CLOSE_BRACE)
  }
  putByte(CHAR_CLOSE_BRACKET)
}

/** Prints the non-negative integer at the reader (msgpackr writes those past 2^32 as float64). */
function putUint (): void {
  const head = reader.byte()
  let value: number
  if (head <= 0x7f) value = head
  else if (head === 0xcc) value = reader.uint(1)
  else if (head === 0xcd) value = reader.uint(2)
  else if (head === 0xce) value = reader.uint(4)
  else if (head === 0xcb) value = reader.src.readDoubleBE(reader.take(8))
  else throw new NotARecordBody()
  if (!Number.isSafeInteger(value) || value < 0) throw new NotARecordBody()
  putAscii(String(value))
}

/** Walks the body, printing its line into `out` from 0 when `printing`; answers where its entries lie. */
function walk (frame: RecordFrame): BodyEntries {
  at = 0
  const body = bodyEntries(frame)
  if (body === undefined) throw new NotARecordBody()
  reader.reset(frame.source, body.fieldsStart, frame.payloadEnd)
  putAscii(`{"seq":${frame.seq},"op":"${body.op}"`)
  switch (body.op) {
    case 'insert':
    case 'update':
    case 'delete':
      putEntryFields(body.op, body.count)
      break
    case 'batch':
      if (body.count !== 2 && body.count !== 3) throw new NotARecordBody()
      expectKey(KEY_ENTRIES)
      putBatchEntries()
      if (body.count === 3) {
        expectKey(KEY_TX_ID)
        putString()
      }
      break
    case 'checkpoint':
      if (body.count !== 2) throw new NotARecordBody()
      expectKey(KEY_CHECKPOINT)
      putUint()
  }
  if (reader.pos !== reader.end) throw new NotARecordBody()
  putAscii(`,"timestamp":${frame.timestamp}}\n`)
  return body
}

/** The body's entries if the walk got through it, else undefined; the source is let go either way. */
function walked (frame: RecordFrame): BodyEntries | undefined {
  try {
    return walk(frame)
  } catch (err) {
    if (err instanceof NotARecordBody || err instanceof MsgpackMismatch) return undefined
    throw err
  } finally {
    reader.release()
  }
}

/**
 * One NDJSON line, trailing newline included, for the record in `frame`: seq, op, the body's
 * fields, then timestamp. The bytes are a view of a shared buffer, valid until the next call: copy
 * them before anything else may print a line. Undefined when the payload is not a record body of
 * the frame's type, which only a bug or deliberate tampering can produce (the frame's CRC held).
 */
export function recordLineBytes (frame: RecordFrame): Buffer | undefined {
  printing = true
  const body = walked(frame)
  const line = out.subarray(0, at)
  out = lineScratch
  view = lineView
  return body === undefined ? undefined : line
}

/**
 * Where the body's entries lie, if the payload is a record body of the frame's type (recordLineBytes's
 * check, printing nothing); undefined if it is not.
 */
export function checkRecordBody (frame: RecordFrame): BodyEntries | undefined {
  printing = false
  try {
    return walked(frame)
  } finally {
    printing = true
  }
}
