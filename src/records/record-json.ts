// A record's NDJSON line, transcoded straight from its payload's msgpack bytes. Nothing is decoded
// into objects: decoding made a Float32Array (a fresh ArrayBuffer), strings and maps for every
// entry, and cost half as much again as printing the line.
//
// record-shape.ts checks the payload and says where each part lies; this file prints the parts
// from there, trusting what the check passed (a finite vector, a map of strings).
import { MAX_FLOAT_CHARS, SLACK, writeFloat32Bits } from './float32-decimal.js'
import { MsgpackReader } from '../msgpack/reader.js'
import { recordTypeName, type RecordBytes } from './record-bytes.js'
import { decodeItem } from './record-object.js'
import { checkRecordBody, ENTRY_SLOTS, EntrySlot, NO_PART, type RecordShape } from './record-shape.js'

const CHAR_QUOTE = 0x22
const CHAR_BACKSLASH = 0x5c
const CHAR_COMMA = 0x2c
const CHAR_COLON = 0x3a
const CHAR_OPEN_BRACE = 0x7b
const CHAR_CLOSE_BRACE = 0x7d
const CHAR_OPEN_BRACKET = 0x5b
const CHAR_CLOSE_BRACKET = 0x5d

const EMPTY: Buffer = Buffer.alloc(0)

// The record being printed: its payload's buffer, let go after the call so that it never holds a
// reader's buffer, and its parts. Printing is synchronous, one record at a time.
let src = EMPTY
let shape: RecordShape
// Reads the metadata map's strings, whose heads the check has passed.
const metadataReader = new MsgpackReader()

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
  ensure(text.length)
  at += out.write(text, at, 'latin1')
}

function putByte (byte: number): void {
  ensure(1)
  out[at++] = byte
}

/**
 * Prints the string whose item begins at `item` and whose bytes are src[start, end) as a JSON
 * string. Printable ASCII without quotes or backslashes, which is nearly every id and key, is copied
 * byte for byte; anything else is decoded as msgpackr decodes it and escaped as JSON.stringify
 * escapes it.
 */
function putString (item: number, start: number, end: number): void {
  ensure(end - start + 2)
  out[at] = CHAR_QUOTE
  let to = at + 1
  for (let from = start; from < end; from++) {
    const byte = src[from]
    if (byte < 0x20 || byte >= 0x80 || byte === CHAR_QUOTE || byte === CHAR_BACKSLASH) {
      putJson(decodeItem(src, item, end))
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

/** Prints the `count` little-endian float32 values at src[start...]. */
function putVector (start: number, count: number): void {
  const byteLength = count * 4
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
  bytes.set(src.subarray(start, start + byteLength))
  ensure(2 + count * (MAX_FLOAT_CHARS + 1))
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

/**
 * Prints the metadata map at src[start, end): string values by string key. A key that is not ASCII
 * prints as it decodes, and logs from before lone surrogates were refused may hold keys that decode
 * alike (invalid UTF-8, each bad byte U+FFFD): a map with such a key prints as decoded, one key once.
 */
function putMetadata (start: number, end: number): void {
  const lineStart = at
  const reader = metadataReader
  reader.reset(src, start, end)
  try {
    const count = reader.map()
    putByte(CHAR_OPEN_BRACE)
    for (let i = 0; i < count; i++) {
      if (i > 0) putByte(CHAR_COMMA)
      const keyItem = reader.pos
      const keyLength = reader.string()
      const keyStart = reader.take(keyLength)
      if (!isAscii(keyStart, reader.pos)) {
        at = lineStart
        putJson(decodeItem(src, start, end))
        return
      }
      putString(keyItem, keyStart, reader.pos)
      putByte(CHAR_COLON)
      const valueItem = reader.pos
      const valueLength = reader.string()
      const valueStart = reader.take(valueLength)
      putString(valueItem, valueStart, reader.pos)
    }
    putByte(CHAR_CLOSE_BRACE)
  } finally {
    reader.release()
  }
}

function isAscii (start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (src[i] >= 0x80) return false
  return true
}

/** Prints entry `index`'s fields after its op. */
function putEntryFields (index: number): void {
  const parts = shape.parts
  const base = index * ENTRY_SLOTS
  putAscii(',"id":')
  putString(parts[base + EntrySlot.idItem], parts[base + EntrySlot.idStart], parts[base + EntrySlot.idEnd])
  const vectorStart = parts[base + EntrySlot.vectorStart]
  if (vectorStart === NO_PART) return
  putAscii(',"vector":')
  putVector(vectorStart, parts[base + EntrySlot.vectorCount])
  const metadataStart = parts[base + EntrySlot.metadataStart]
  if (metadataStart === NO_PART) return
  putAscii(',"metadata":')
  putMetadata(metadataStart, parts[base + EntrySlot.metadataEnd])
}

/** Prints a batch's entries, each `op` first. */
function putBatchEntries (): void {
  putAscii(',"entries":[')
  for (let i = 0; i < shape.entries; i++) {
    if (i > 0) putByte(CHAR_COMMA)
    putAscii(`{"op":"${recordTypeName(shape.parts[i * ENTRY_SLOTS + EntrySlot.op]) as string}"`)
    putEntryFields(i)
    putByte(CHAR_CLOSE_BRACE)
  }
  putByte(CHAR_CLOSE_BRACKET)
}

/** Prints the line of a record whose shape is `shape`, into `out` from 0. */
function putLine (record: RecordBytes): void {
  at = 0
  putAscii(`{"seq":${record.seq},"op":"${shape.op}"`)
  switch (shape.op) {
    case 'insert':
    case 'update':
    case 'delete':
      putEntryFields(0)
      break
    case 'batch':
      putBatchEntries()
      if (shape.txIdItem !== NO_PART) {
        putAscii(',"txId":')
        putString(shape.txIdItem, shape.txIdStart, shape.txIdEnd)
      }
      break
    case 'checkpoint':
      putAscii(`,"checkpoint":${shape.checkpoint}`)
      if (shape.consumerItem !== NO_PART) {
        putAscii(',"consumer":')
        putString(shape.consumerItem, shape.consumerStart, shape.consumerEnd)
      }
      break
    case 'consumer':
      putAscii(',"name":')
      putString(shape.consumerItem, shape.consumerStart, shape.consumerEnd)
      putAscii(`,"event":"${shape.event}","start":${shape.startSeq},"checkpoint":${shape.checkpoint},"checkpointedAt":${shape.checkpointedAt}`)
  }
  putAscii(`,"timestamp":${record.timestamp}}\n`)
}

/**
 * One NDJSON line, trailing newline included, for the record: seq, op, the body's fields, then
 * timestamp. The bytes are a view of a shared buffer, valid until the next call: copy them before
 * anything else may print a line. Undefined when the payload is not a record body of the record's
 * type (checkRecordBody).
 */
export function recordLineBytes (record: RecordBytes): Buffer | undefined {
  const checked = checkRecordBody(record)
  if (checked === undefined) return undefined
  shape = checked
  src = record.source
  try {
    putLine(record)
    return out.subarray(0, at)
  } finally {
    src = EMPTY
    out = lineScratch
    view = lineView
  }
}
