// A record's NDJSON line, transcoded straight from its payload's msgpack bytes. Nothing is decoded
// into objects: decoding made a Float32Array (a fresh ArrayBuffer), strings and maps for every
// entry, and cost half as much again as printing the line. Keys come out in the order the payload
// holds them, which payload.ts fixes: seq, op, the body's fields in order, then timestamp.
//
// Only what payload.ts writes is accepted: maps, arrays, strings, non-negative integers (msgpackr
// writes those past 2^32 as float64) and float32 typed arrays (msgpackr's extension 0x74). Anything
// else means the payload is not a vecwal record body, and the line is refused.
import { MAX_FLOAT_CHARS, SLACK, writeFloat32Bits } from './float32-decimal.js'
import type { RecordFrame } from './format.js'
import { bodyEntries, decodeString } from './payload.js'

const CHAR_QUOTE = 0x22
const CHAR_BACKSLASH = 0x5c
const CHAR_COMMA = 0x2c
const CHAR_COLON = 0x3a
const CHAR_OPEN_BRACE = 0x7b
const CHAR_CLOSE_BRACE = 0x7d
const CHAR_OPEN_BRACKET = 0x5b
const CHAR_CLOSE_BRACKET = 0x5d

/** msgpackr's typed-array extension type, and its code for a Float32Array. */
const TYPED_ARRAY_EXTENSION = 0x74
const FLOAT32_ARRAY_CODE = 7
/** A record body nests a map, an array of entries, an entry and its metadata: room to spare. */
const MAX_DEPTH = 8

/** Thrown inside the transcoder when the payload is not a record body; recordLineBytes answers undefined. */
class NotARecordBody extends Error {}

// The transcoder's state, for the one line being written: lines are written synchronously, one at
// a time, and module state keeps every step a plain function of a few integers. src is let go
// after each line, so that it never holds a reader's buffer.
const EMPTY: Buffer = Buffer.alloc(0)
let src = EMPTY
let pos = 0
let srcEnd = 0

// Every line is written into this one buffer, which grows to the longest line seen up to
// KEPT_LINE_BYTES; a longer line gets a buffer of its own, let go once the line is copied out. One
// buffer and one DataView for all: V8 keeps the printing loop fast for a DataView it has seen
// before, and is several times slower when each chunk of a stream brings a new one.
const KEPT_LINE_BYTES = 1024 * 1024
let lineScratch = Buffer.allocUnsafeSlow(64 * 1024)
let lineView = new DataView(lineScratch.buffer, lineScratch.byteOffset, lineScratch.length)
let out = lineScratch
let view = lineView
let at = 0

// A vector's bytes are copied here first: in the payload they may lie at any offset, and an
// Int32Array reads them as float bits only at a multiple of four.
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
  ensure(text.length)
  at += out.write(text, at, 'latin1')
}

function take (bytes: number): number {
  const start = pos
  pos += bytes
  if (pos > srcEnd) throw new NotARecordBody()
  return start
}

function readUint (bytes: 1 | 2 | 4): number {
  const start = take(bytes)
  if (bytes === 1) return src[start]
  return bytes === 2 ? src.readUInt16BE(start) : src.readUInt32BE(start)
}

/** The length of the string at pos, moving past its header; throws if it is not a string. */
function stringLength (): number {
  const head = src[take(1)]
  if (head >= 0xa0 && head <= 0xbf) return head & 0x1f
  if (head === 0xd9) return readUint(1)
  if (head === 0xda) return readUint(2)
  if (head === 0xdb) return readUint(4)
  throw new NotARecordBody()
}

/**
 * Writes the string at pos as a JSON string. Printable ASCII without quotes or backslashes, which
 * is nearly every id and key, is copied byte for byte; anything else is decoded as msgpackr decodes
 * it and escaped as JSON.stringify escapes it, with U+0085, U+2028 and U+2029 escaped too: some
 * line splitters (Python's str.splitlines, for one) break lines at them.
 */
function putString (): void {
  const headerStart = pos
  const length = stringLength()
  const start = take(length)
  ensure(length + 2)
  out[at] = CHAR_QUOTE
  let to = at + 1
  for (let from = start; from < pos; from++) {
    const byte = src[from]
    if (byte < 0x20 || byte >= 0x80 || byte === CHAR_QUOTE || byte === CHAR_BACKSLASH) {
      putEscapedString(decodeString(src, headerStart, pos))
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

function putEscapedString (text: string): void {
  let json = JSON.stringify(text)
  if (RAW_LINE_BREAK.test(json)) json = json.replace(RAW_LINE_BREAKS, escapeLineBreak)
  // A UTF-16 unit takes at most 3 bytes in UTF-8.
  ensure(json.length * 3)
  at += out.write(json, at, 'utf8')
}

/** Writes the extension at pos, past its length, which must be a float32 typed array. */
function putVector (extensionLength: number): void {
  const type = src[take(1)]
  const start = take(extensionLength)
  if (type !== TYPED_ARRAY_EXTENSION || src[start] !== FLOAT32_ARRAY_CODE || extensionLength % 4 !== 1) {
    throw new NotARecordBody()
  }
  const byteLength = extensionLength - 1
  if (byteLength > vectorBytes.length) {
    vectorBytes = new Uint8Array(byteLength)
    vectorBits = new Int32Array(vectorBytes.buffer)
  }
  vectorBytes.set(src.subarray(start + 1, pos))
  const count = byteLength >> 2
  ensure(2 + count * (MAX_FLOAT_CHARS + 1))
  const bits = vectorBits
  const target = view
  let to = at
  out[to++] = CHAR_OPEN_BRACKET
  for (let i = 0; i < count; i++) {
    if (i > 0) out[to++] = CHAR_COMMA
    to = writeFloat32Bits(bits[i], target, to)
  }
  out[to++] = CHAR_CLOSE_BRACKET
  at = to
}

function putMapEntries (count: number, depth: number): void {
  for (let i = 0; i < count; i++) {
    if (i > 0) putByte(CHAR_COMMA)
    putString()
    putByte(CHAR_COLON)
    putValue(depth)
  }
}

function putByte (byte: number): void {
  ensure(1)
  out[at++] = byte
}

function putContainer (count: number, isMap: boolean, depth: number): void {
  if (depth >= MAX_DEPTH) throw new NotARecordBody()
  if (isMap) {
    putByte(CHAR_OPEN_BRACE)
    putMapEntries(count, depth + 1)
    putByte(CHAR_CLOSE_BRACE)
    return
  }
  putByte(CHAR_OPEN_BRACKET)
  for (let i = 0; i < count; i++) {
    if (i > 0) putByte(CHAR_COMMA)
    putValue(depth + 1)
  }
  putByte(CHAR_CLOSE_BRACKET)
}

function putValue (depth: number): void {
  const head = src[pos]
  if (head >= 0xa0 && head <= 0xbf) return putString()
  pos++
  if (pos > srcEnd) throw new NotARecordBody()
  if (head <= 0x7f) return putAscii(String(head))
  if (head <= 0x8f) return putContainer(head & 0x0f, true, depth)
  if (head <= 0x9f) return putContainer(head & 0x0f, false, depth)
  switch (head) {
    case 0xd9: case 0xda: case 0xdb:
      pos--
      return putString()
    case 0xcc: return putAscii(String(readUint(1)))
    case 0xcd: return putAscii(String(readUint(2)))
    case 0xce: return putAscii(String(readUint(4)))
    case 0xcb: {
      const value = src.readDoubleBE(take(8))
      if (!Number.isSafeInteger(value) || value < 0) throw new NotARecordBody()
      return putAscii(String(value))
    }
    case 0xd4: return putVector(1) // an empty vector: only its type code
    case 0xc7: return putVector(readUint(1))
    case 0xc8: return putVector(readUint(2))
    case 0xc9: return putVector(readUint(4))
    case 0xde: return putContainer(readUint(2), true, depth)
    case 0xdf: return putContainer(readUint(4), true, depth)
    case 0xdc: return putContainer(readUint(2), false, depth)
    case 0xdd: return putContainer(readUint(4), false, depth)
  }
  throw new NotARecordBody()
}

/** Writes the line into `out` from 0. */
function writeRecordLine (frame: RecordFrame): void {
  src = frame.source
  pos = frame.payloadStart
  srcEnd = frame.payloadEnd
  out = lineScratch
  view = lineView
  at = 0
  const entries = bodyEntries(frame)
  if (entries === undefined) throw new NotARecordBody()
  pos = entries.start
  putAscii(`{"seq":${frame.seq},`)
  putMapEntries(entries.count, 1)
  if (pos !== srcEnd) throw new NotARecordBody()
  putAscii(`,"timestamp":${frame.timestamp}}\n`)
}

/**
 * One NDJSON line, trailing newline included, for the record in `frame`: seq, then the body's
 * fields, then timestamp. The bytes are a view of a shared buffer, valid until the next call: copy
 * them before anything else may print a line. Undefined when the payload is not a record body of
 * the frame's type, which only a bug or deliberate tampering can produce (the frame's CRC held).
 */
export function recordLineBytes (frame: RecordFrame): Buffer | undefined {
  try {
    writeRecordLine(frame)
  } catch (err) {
    // A RangeError is a vector value that is not a finite float32, which no entry can hold.
    if (err instanceof NotARecordBody || err instanceof RangeError) return undefined
    throw err
  } finally {
    src = EMPTY
  }
  return out.subarray(0, at)
}
