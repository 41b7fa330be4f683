// Record payloads written straight into bytes: the one shape docs/format.md gives, byte for byte
// what msgpackr's pack (moreTypes, no records) wrote for the same body before. Going through
// msgpackr cost about 2.4 µs a 128-dimension entry, most of it turning a JSON number array into a
// Float32Array twice and walking a fresh object; writing the bytes directly costs a fraction.
//
// The checks a stored entry must pass (every vector value a finite float32, every string free of
// lone surrogates) are made here, as the bytes are written, so a refused entry writes nothing.
import { createHash } from 'node:crypto'
import type { EntryInput } from '../entry.js'
import { FLOAT32_ARRAY_CODE, TYPED_ARRAY_EXTENSION } from '../msgpack/reader.js'
import { CONTENT_DIGEST_BYTES, type ConsumerEvent } from '../records/record-shape.js'
import { InvalidEntryError } from '../errors.js'
import type { PackedEntries } from './packed-entries.js'

/** What a consumer record (type 6) holds: docs/format.md. */
export interface ConsumerRecord {
  name: string
  event: ConsumerEvent
  /** The checkpoint it was created at. */
  start: number
  checkpoint: number
  /** When it last checkpointed (ms since the epoch), 0 if never. */
  checkpointedAt: number
}

/** The keys, as fixstr bytes. */
function fixstr (text: string): Buffer {
  return Buffer.concat([Buffer.from([0xa0 | text.length]), Buffer.from(text, 'latin1')])
}
export const KEY_OP = fixstr('op')
export const KEY_ID = fixstr('id')
export const KEY_VECTOR = fixstr('vector')
export const KEY_METADATA = fixstr('metadata')
const KEY_ENTRIES = fixstr('entries')
const KEY_TX_ID = fixstr('txId')
const KEY_CHECKPOINT = fixstr('checkpoint')
const KEY_CONSUMER = fixstr('consumer')
const KEY_NAME = fixstr('name')
const KEY_EVENT = fixstr('event')
const KEY_START = fixstr('start')
const KEY_CHECKPOINTED_AT = fixstr('checkpointedAt')
const KEY_IDEMPOTENCY_KEY = fixstr('idempotencyKey')
const KEY_CONTENT_DIGEST = fixstr('contentDigest')
export const OPS: Record<string, Buffer> = {
  insert: fixstr('insert'),
  update: fixstr('update'),
  delete: fixstr('delete'),
  batch: fixstr('batch'),
  checkpoint: fixstr('checkpoint'),
  consumer: fixstr('consumer')
}

/** A lone surrogate: in a u-mode pattern a pair is one code point, never in category Cs. */
const LONE_SURROGATE = /\p{Cs}/u
/** The exponent bits of a float32 that is not finite. */
const NOT_FINITE = 0x7f800000
const TWO_32 = 2 ** 32

// Every payload is written into this one buffer, then copied out at its exact size: payloads wait
// in the write queue, so each needs bytes of its own. Kept up to KEPT_BYTES, as the readers' are.
const KEPT_BYTES = 1024 * 1024
let kept = Buffer.allocUnsafeSlow(64 * 1024)
let out = kept
let at = 0

// A vector's values are converted here (a Float32Array assignment rounds each number to float32
// natively), checked as bits, and copied into the payload as bytes.
let vectorScratch = new Float32Array(4096)
let vectorBits = new Uint32Array(vectorScratch.buffer)

function ensure (bytes: number): void {
  const needed = at + bytes
  if (needed <= out.length) return
  const bigger = Buffer.allocUnsafeSlow(Math.max(needed, out.length * 2))
  out.copy(bigger, 0, 0, at)
  out = bigger
  if (bigger.length <= KEPT_BYTES) kept = bigger
}

function putBytes (bytes: Buffer): void {
  ensure(bytes.length)
  at += bytes.copy(out, at)
}

/** A map16 head, as msgpackr writes every object's. */
function putMapHead (count: number): void {
  ensure(3)
  out[at] = 0xde
  out.writeUInt16BE(count, at + 1)
  at += 3
}

function putArrayHead (count: number): void {
  ensure(5)
  if (count < 0x10) {
    out[at++] = 0x90 | count
  } else if (count < 0x10000) {
    out[at] = 0xdc
    out.writeUInt16BE(count, at + 1)
    at += 3
  } else {
    out[at] = 0xdd
    out.writeUInt32BE(count, at + 1)
    at += 5
  }
}

/** An ext has no fix form for its length. */
export const NO_FIX_FORM = -1

/**
 * Writes at `pos` the head of an item of `length` in its smallest form, as msgpackr writes it:
 * `fix` with the length in its low bits below 32 (unless NO_FIX_FORM), then the 8-, 16- or 32-bit
 * length form; returns the position after it. The caller has ensured room (5 bytes).
 */
export function writeLengthHead (target: Buffer, pos: number, length: number, fix: number, head8: number, head16: number, head32: number): number {
  if (fix !== NO_FIX_FORM && length < 0x20) {
    target[pos] = fix | length
    return pos + 1
  }
  if (length < 0x100) {
    target[pos] = head8
    target[pos + 1] = length
    return pos + 2
  }
  if (length < 0x10000) {
    target[pos] = head16
    target.writeUInt16BE(length, pos + 1)
    return pos + 3
  }
  target[pos] = head32
  target.writeUInt32BE(length, pos + 1)
  return pos + 5
}

function putLengthHead (length: number, fix: number, head8: number, head16: number, head32: number): void {
  at = writeLengthHead(out, at, length, fix, head8, head16, head32)
}

/** Strings up to this long are tried as ASCII first: nearly every id, key and value is. */
const ASCII_TRY_MAX = 0xff

/**
 * Writes a short ASCII string with its head, copying char codes (no surrogate can be among them);
 * false, having written nothing that counts, at the first character that is not ASCII.
 */
function putAscii (text: string): boolean {
  const length = text.length
  const head = length < 0x20 ? 1 : 2
  ensure(head + length)
  let to = at + head
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 0x80) return false
    out[to++] = code
  }
  if (head === 1) {
    out[at] = 0xa0 | length
  } else {
    out[at] = 0xd9
    out[at + 1] = length
  }
  at = to
  return true
}

function putString (field: string, text: string): void {
  if (text.length <= ASCII_TRY_MAX && putAscii(text)) return
  if (LONE_SURROGATE.test(text)) throw new InvalidEntryError(`${field} holds a lone surrogate`)
  const length = Buffer.byteLength(text)
  ensure(length + 5)
  putLengthHead(length, 0xa0, 0xd9, 0xda, 0xdb)
  at += out.write(text, at, length, 'utf8')
}

/** The vector as msgpackr's typed-array extension: ext head, type 0x74, code 7, the float32 bytes. */
function putVector (vector: readonly number[] | Float32Array): void {
  const count = vector.length
  if (count > vectorScratch.length) {
    const scratch = new Float32Array(count)
    if (count * 4 > KEPT_BYTES) return putVectorValues(vector, scratch, new Uint32Array(scratch.buffer))
    vectorScratch = scratch
    vectorBits = new Uint32Array(scratch.buffer)
  }
  putVectorValues(vector, vectorScratch, vectorBits)
}

function putVectorValues (vector: readonly number[] | Float32Array, scratch: Float32Array, bits: Uint32Array): void {
  const count = vector.length
  scratch.set(vector)
  for (let i = 0; i < count; i++) {
    if ((bits[i] & NOT_FINITE) === NOT_FINITE) throw new InvalidEntryError(`vector value ${i} is not a finite 32-bit float`)
  }
  const dataLength = count * 4 + 1
  ensure(dataLength + 6)
  putLengthHead(dataLength, NO_FIX_FORM, 0xc7, 0xc8, 0xc9)
  out[at++] = TYPED_ARRAY_EXTENSION
  out[at++] = FLOAT32_ARRAY_CODE
  out.set(new Uint8Array(scratch.buffer, 0, count * 4), at)
  at += count * 4
}

function putMetadata (metadata: Readonly<Record<string, string>>): void {
  const headAt = at
  putMapHead(0)
  let count = 0
  for (const key in metadata) {
    putString('a metadata key', key)
    putString(`metadata value ${key}`, metadata[key])
    count++
  }
  if (count > 0xffff) throw new InvalidEntryError(`metadata has ${count} keys, more than a map16 holds`)
  out.writeUInt16BE(count, headAt + 1)
}

/** An entry's map: op, id, then vector and metadata where the op has them. */
function putEntry (entry: EntryInput): void {
  if (entry.op === 'delete') {
    putMapHead(2)
    putBytes(KEY_OP)
    putBytes(OPS.delete)
    putBytes(KEY_ID)
    putString('id', entry.id)
    return
  }
  putMapHead(entry.metadata === undefined ? 3 : 4)
  putBytes(KEY_OP)
  putBytes(OPS[entry.op])
  putBytes(KEY_ID)
  putString('id', entry.id)
  putBytes(KEY_VECTOR)
  putVector(entry.vector)
  if (entry.metadata !== undefined) {
    putBytes(KEY_METADATA)
    putMetadata(entry.metadata)
  }
}

/** A non-negative safe integer, as msgpackr writes one (past 2^32 as float64). */
function putUint (value: number): void {
  ensure(9)
  if (value < 0x80) {
    out[at++] = value
  } else if (value < 0x100) {
    out[at++] = 0xcc
    out[at++] = value
  } else if (value < 0x10000) {
    out[at] = 0xcd
    out.writeUInt16BE(value, at + 1)
    at += 3
  } else if (value < TWO_32) {
    out[at] = 0xce
    out.writeUInt32BE(value, at + 1)
    at += 5
  } else {
    out[at] = 0xcb
    out.writeDoubleBE(value, at + 1)
    at += 9
  }
}

/**
 * The write's two trailing keys after a body already written: the idempotency key, then the first
 * 16 bytes of the SHA-256 of the body as it stands (without them), with the body map's head
 * counting both. An entry and a batch body's map head is always a map16 at the start.
 */
function putTrailingKeys (idempotencyKey: string): void {
  const digest = createHash('sha256').update(out.subarray(0, at)).digest().subarray(0, CONTENT_DIGEST_BYTES)
  out.writeUInt16BE(out.readUInt16BE(1) + 2, 1)
  putBytes(KEY_IDEMPOTENCY_KEY)
  putString('idempotencyKey', idempotencyKey)
  putBytes(KEY_CONTENT_DIGEST)
  ensure(2)
  out[at++] = 0xc4
  out[at++] = CONTENT_DIGEST_BYTES
  putBytes(digest)
}

/** Runs `write` from the start of the buffer, then the trailing keys if there is a key, and hands back what it wrote, copied out. */
function written (write: () => void, idempotencyKey?: string): Buffer {
  at = 0
  try {
    write()
    if (idempotencyKey !== undefined) putTrailingKeys(idempotencyKey)
    const bytes = Buffer.allocUnsafe(at)
    out.copy(bytes, 0, 0, at)
    return bytes
  } finally {
    out = kept
  }
}

/**
 * Throws InvalidEntryError unless the entry, stored, reads back as it is: every vector value a
 * finite float32 (as a float32, so past the float32 range counts as infinite), every string
 * well-formed Unicode. The HTTP schemas refuse all of these first; this holds for any caller.
 * Transactions check entries as they are staged, long before they are written.
 */
export function assertStorable (entry: EntryInput): void {
  at = 0
  try {
    putEntry(entry)
  } finally {
    out = kept
  }
}

/** An entry's payload; with an idempotency key, the write's trailing keys after it (the key must be 1-255 printable ASCII characters). */
export function entryPayload (entry: EntryInput, idempotencyKey?: string): Buffer {
  return written(() => { putEntry(entry) }, idempotencyKey)
}

/** The heads of a batch payload of `keys` keys (txId the third), up to its entries. */
function putBatchHeads (count: number, keys: 2 | 3): void {
  putMapHead(keys)
  putBytes(KEY_OP)
  putBytes(OPS.batch)
  putBytes(KEY_ENTRIES)
  putArrayHead(count)
}

export function batchPayload (entries: readonly EntryInput[], txId?: string, idempotencyKey?: string): Buffer {
  return written(() => {
    putBatchHeads(entries.length, txId === undefined ? 2 : 3)
    for (const entry of entries) putEntry(entry)
    if (txId !== undefined) {
      putBytes(KEY_TX_ID)
      putString('txId', txId)
    }
  }, idempotencyKey)
}

/** The bytes of a batch payload without txId up to its entries, for the packer (batch-body-packer.ts) to write the entries after. */
export function batchHeads (count: number): Buffer {
  return written(() => { putBatchHeads(count, 2) })
}

/** A packed batch's payload: its bytes as the packer wrote them, or copied with the write's trailing keys after them. */
export function packedBatchPayload (packed: PackedEntries, idempotencyKey?: string): Buffer {
  if (idempotencyKey === undefined) return packed.payload
  return written(() => { putBytes(packed.payload) }, idempotencyKey)
}

/** A checkpoint; without a consumer (the consumer `default`), byte for byte the version 1 and 2 record. */
export function checkpointPayload (checkpoint: number, consumer?: string): Buffer {
  return written(() => {
    putMapHead(consumer === undefined ? 2 : 3)
    putBytes(KEY_OP)
    putBytes(OPS.checkpoint)
    putBytes(KEY_CHECKPOINT)
    putUint(checkpoint)
    if (consumer !== undefined) {
      putBytes(KEY_CONSUMER)
      putString('consumer', consumer)
    }
  })
}

/** A consumer record: one consumer's whole state, as an event made it. */
export function consumerPayload (record: ConsumerRecord): Buffer {
  return written(() => {
    putMapHead(6)
    putBytes(KEY_OP)
    putBytes(OPS.consumer)
    putBytes(KEY_NAME)
    putString('name', record.name)
    putBytes(KEY_EVENT)
    putString('event', record.event)
    putBytes(KEY_START)
    putUint(record.start)
    putBytes(KEY_CHECKPOINT)
    putUint(record.checkpoint)
    putBytes(KEY_CHECKPOINTED_AT)
    putUint(record.checkpointedAt)
  })
}
