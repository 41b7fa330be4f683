// The grammar of a record body, held here alone: the one shape payload.ts writes, key by key
// (docs/format.md). Anything else, a missing or extra key, a value of another type, a vector value
// that is not finite, bytes left over, means the payload is not a record body of its record's type,
// and every read form refuses it. The walk leaves where each part of a body lies, so that the read
// forms (record-json.ts, record-msgpack.ts) print or copy the parts without reading the grammar again.
import { FLOAT32_ARRAY_CODE, MsgpackMismatch, MsgpackReader, TYPED_ARRAY_EXTENSION } from '../msgpack/reader.js'
import { RecordType, recordTypeName, type RecordBytes, type RecordTypeName } from './record-bytes.js'

/** The slots of an entry's parts in RecordShape.parts, ENTRY_SLOTS an entry. */
export const EntrySlot = {
  /** The entry's op, a RecordType code: insert, update or delete. */
  op: 0,
  /** Where the id string begins, its head included (decodeItem reads it from there). */
  idItem: 1,
  /** Where the id's bytes begin and end. */
  idStart: 2,
  idEnd: 3,
  /** The first byte of the vector's little-endian float32 values; NO_PART for a delete. */
  vectorStart: 4,
  /** How many values the vector holds. */
  vectorCount: 5,
  /** Where the metadata map begins (its head) and ends; NO_PART for an entry without one. */
  metadataStart: 6,
  metadataEnd: 7
} as const
export const ENTRY_SLOTS = 8
/** A part the entry does not have. */
export const NO_PART = -1

/** Where the parts of a record body lie in its source buffer. */
export interface RecordShape {
  op: RecordTypeName
  /** The body map's entry count, `op` included and the write's trailing keys (idempotencyKey, contentDigest) left out. */
  count: number
  /** Where the body map's first entry, `op`, begins. */
  start: number
  /** Where the body's own fields end: the payload's end, or where the write's trailing keys begin. */
  end: number
  /** How many entries `parts` describes: one for insert, update and delete, each of a batch's, none for a checkpoint. */
  entries: number
  /** ENTRY_SLOTS an entry, as EntrySlot names them. */
  parts: Int32Array
  /** A batch's transaction id, as idItem, idStart and idEnd are an entry's; txIdItem is NO_PART without one. */
  txIdItem: number
  txIdStart: number
  txIdEnd: number
  /** A checkpoint record's checkpoint; a consumer record's. */
  checkpoint: number
  /**
   * A checkpoint record's consumer (NO_PART for `default`), or a consumer record's name, as
   * idItem, idStart and idEnd are an entry's.
   */
  consumerItem: number
  consumerStart: number
  consumerEnd: number
  /** A consumer record's event, its start and checkpointedAt (0: never checkpointed). */
  event: ConsumerEvent
  startSeq: number
  checkpointedAt: number
}

/** Thrown inside the walk when the payload is not a record body. */
class NotARecordBody extends Error {}

function utf8 (text: string): Buffer {
  return Buffer.from(text)
}

/** For each record type, the bytes the body starts with after its map head: `op` naming the type, both fixstr. */
const OP_ENTRY_BYTES: Buffer[] = []
for (const [name, code] of Object.entries(RecordType)) OP_ENTRY_BYTES[code] = Buffer.from([0xa2, ...utf8('op'), 0xa0 | name.length, ...utf8(name)])

const KEY_OP = utf8('op')
const KEY_ID = utf8('id')
const KEY_VECTOR = utf8('vector')
const KEY_METADATA = utf8('metadata')
const KEY_ENTRIES = utf8('entries')
const KEY_TX_ID = utf8('txId')
const KEY_CHECKPOINT = utf8('checkpoint')
const KEY_CONSUMER = utf8('consumer')
const KEY_NAME = utf8('name')
const KEY_EVENT = utf8('event')
const KEY_START = utf8('start')
const KEY_CHECKPOINTED_AT = utf8('checkpointedAt')

/** What a consumer record (type 6) states: the consumer was created, deleted, or carried forward past retention. */
export const CONSUMER_EVENTS = ['create', 'delete', 'carry'] as const
export type ConsumerEvent = typeof CONSUMER_EVENTS[number]
const EVENT_BYTES = CONSUMER_EVENTS.map(utf8)

const KEY_IDEMPOTENCY_KEY = utf8('idempotencyKey')
const KEY_CONTENT_DIGEST = utf8('contentDigest')

/** An idempotency key's most characters, each printable ASCII (0x20 to 0x7e). */
export const IDEMPOTENCY_KEY_MAX_LENGTH = 255
/** A content digest's bytes: the first 16 of a SHA-256. */
export const CONTENT_DIGEST_BYTES = 16
/** The most entries an entry or batch body's map has without the write's two trailing keys, which come together or not at all. */
const MOST_BODY_ENTRIES: Readonly<Record<string, number>> = { insert: 4, update: 4, delete: 2, batch: 3 }
const TRAILING_KEYS = 2

const ENTRY_OPS = [RecordType.insert, RecordType.update, RecordType.delete].map(code => ({ code, name: utf8(recordTypeName(code) as string) }))

// The walk's state, for the one payload being walked: walks are synchronous, one at a time, and
// module state keeps every step a plain function of a few integers. The reader lets go of its
// source after each walk, so that it never holds a reader's buffer.
const reader = new MsgpackReader()

// The parts of every body are written into one array, which grows to the largest batch seen up to
// KEPT_PARTS slots; a larger batch gets an array of its own, let go at the next walk.
const KEPT_PARTS = 256 * 1024
let keptParts = new Int32Array(64 * ENTRY_SLOTS)
const shape: RecordShape = {
  op: 'insert',
  count: 0,
  start: 0,
  end: 0,
  entries: 0,
  parts: keptParts,
  txIdItem: NO_PART,
  txIdStart: 0,
  txIdEnd: 0,
  checkpoint: 0,
  consumerItem: NO_PART,
  consumerStart: 0,
  consumerEnd: 0,
  event: 'create',
  startSeq: 0,
  checkpointedAt: 0
}

/** The parts array with room for entry `index`, growing it if need be. */
function roomFor (index: number): Int32Array {
  const needed = (index + 1) * ENTRY_SLOTS
  if (needed <= shape.parts.length) return shape.parts
  const bigger = new Int32Array(Math.max(needed, shape.parts.length * 2))
  bigger.set(shape.parts)
  shape.parts = bigger
  if (bigger.length <= KEPT_PARTS) keptParts = bigger
  return bigger
}

/** Whether the source's [start, start + length) holds `bytes`: a loop, cheaper than a call into Buffer.compare for a few bytes. */
function holds (bytes: Buffer, start: number, length: number): boolean {
  if (length !== bytes.length) return false
  const src = reader.src
  for (let i = 0; i < length; i++) if (src[start + i] !== bytes[i]) return false
  return true
}

/** Moves past the string at the reader, which must hold exactly `name`. */
function expectKey (name: Buffer): void {
  const length = reader.string()
  if (!holds(name, reader.take(length), length)) throw new NotARecordBody()
}

/** Moves past the string at the reader, noting where it begins, and where its bytes begin and end, at parts[slot, slot + 3). */
function stringAt (parts: Int32Array, slot: number): void {
  parts[slot] = reader.pos
  const length = reader.string()
  parts[slot + 1] = reader.take(length)
  parts[slot + 2] = reader.pos
}

/** Moves past the float32 vector at the reader: msgpackr's typed-array extension, code 7, finite values. */
function vectorAt (parts: Int32Array, base: number): void {
  const length = reader.ext()
  const start = reader.take(length)
  const { src, pos: end } = reader
  if (reader.extType !== TYPED_ARRAY_EXTENSION || src[start] !== FLOAT32_ARRAY_CODE || length % 4 !== 1) throw new NotARecordBody()
  // Little-endian float32s: the exponent is the low 7 bits of the fourth byte and the top bit of the third.
  for (let at = start + 1; at < end; at += 4) {
    if ((src[at + 3] & 0x7f) === 0x7f && (src[at + 2] & 0x80) !== 0) throw new NotARecordBody()
  }
  parts[base + EntrySlot.vectorStart] = start + 1
  parts[base + EntrySlot.vectorCount] = (length - 1) >> 2
}

/** Moves past the metadata map at the reader: string values by string key. */
function metadataAt (parts: Int32Array, base: number): void {
  parts[base + EntrySlot.metadataStart] = reader.pos
  const count = reader.map()
  for (let i = 0; i < 2 * count; i++) {
    const length = reader.string()
    reader.take(length)
  }
  parts[base + EntrySlot.metadataEnd] = reader.pos
}

/** Walks entry `index`'s fields after its op; `count` is its map's entry count, op included. */
function entryAt (index: number, op: number, count: number): void {
  const parts = roomFor(index)
  const base = index * ENTRY_SLOTS
  parts[base + EntrySlot.op] = op
  parts[base + EntrySlot.vectorStart] = NO_PART
  parts[base + EntrySlot.metadataStart] = NO_PART
  expectKey(KEY_ID)
  stringAt(parts, base + EntrySlot.idItem)
  if (op === RecordType.delete) {
    if (count !== 2) throw new NotARecordBody()
    return
  }
  if (count !== 3 && count !== 4) throw new NotARecordBody()
  expectKey(KEY_VECTOR)
  vectorAt(parts, base)
  if (count === 4) {
    expectKey(KEY_METADATA)
    metadataAt(parts, base)
  }
}

/** Walks a batch's entries: a map each, `op` first, naming insert, update or delete. */
function batchEntries (): number {
  // The engine writes an empty batch if asked to (HTTP refuses one).
  const count = reader.array()
  for (let i = 0; i < count; i++) {
    const fields = reader.map()
    if (fields < 2) throw new NotARecordBody()
    expectKey(KEY_OP)
    const opLength = reader.string()
    const opStart = reader.take(opLength)
    const op = ENTRY_OPS.find(({ name }) => holds(name, opStart, opLength))
    if (op === undefined) throw new NotARecordBody()
    entryAt(i, op.code, fields)
  }
  return count
}

/** The non-negative integer at the reader (msgpackr writes those past 2^32 as float64). */
function uint (): number {
  const head = reader.byte()
  let value: number
  if (head <= 0x7f) value = head
  else if (head === 0xcc) value = reader.uint(1)
  else if (head === 0xcd) value = reader.uint(2)
  else if (head === 0xce) value = reader.uint(4)
  else if (head === 0xcb) value = reader.src.readDoubleBE(reader.take(8))
  else throw new NotARecordBody()
  if (!Number.isSafeInteger(value) || value < 0) throw new NotARecordBody()
  return value
}

/** Moves past the consumer name at the reader, noting where it lies. */
function consumerName (): void {
  shape.consumerItem = reader.pos
  const length = reader.string()
  shape.consumerStart = reader.take(length)
  shape.consumerEnd = reader.pos
}

/** The consumer record event at the reader. */
function eventName (): ConsumerEvent {
  const length = reader.string()
  const start = reader.take(length)
  const index = EVENT_BYTES.findIndex(bytes => holds(bytes, start, length))
  if (index < 0) throw new NotARecordBody()
  return CONSUMER_EVENTS[index]
}

function walk (record: Pick<RecordBytes, 'type' | 'source' | 'payloadStart' | 'payloadEnd'>): void {
  const op = recordTypeName(record.type)
  if (op === undefined) throw new NotARecordBody()
  shape.op = op
  shape.parts = keptParts
  shape.entries = 0
  shape.txIdItem = NO_PART
  shape.consumerItem = NO_PART
  reader.reset(record.source, record.payloadStart, record.payloadEnd)
  const mapCount = reader.map()
  // Past the most entries a body of this op has without them, the write's trailing keys are there.
  const keyed = op !== 'checkpoint' && mapCount > MOST_BODY_ENTRIES[op]
  const count = keyed ? mapCount - TRAILING_KEYS : mapCount
  shape.count = count
  shape.start = reader.pos
  const opEntry = OP_ENTRY_BYTES[record.type]
  if (count === 0 || !holds(opEntry, reader.take(opEntry.length), opEntry.length)) throw new NotARecordBody()
  switch (op) {
    case 'insert':
    case 'update':
    case 'delete':
      entryAt(0, record.type, count)
      shape.entries = 1
      break
    case 'batch':
      if (count !== 2 && count !== 3) throw new NotARecordBody()
      expectKey(KEY_ENTRIES)
      shape.entries = batchEntries()
      if (count === 3) {
        expectKey(KEY_TX_ID)
        shape.txIdItem = reader.pos
        const length = reader.string()
        shape.txIdStart = reader.take(length)
        shape.txIdEnd = reader.pos
      }
      break
    case 'checkpoint':
      if (count !== 2 && count !== 3) throw new NotARecordBody()
      expectKey(KEY_CHECKPOINT)
      shape.checkpoint = uint()
      if (count === 3) {
        expectKey(KEY_CONSUMER)
        consumerName()
      }
      break
    case 'consumer':
      if (count !== 6) throw new NotARecordBody()
      expectKey(KEY_NAME)
      consumerName()
      expectKey(KEY_EVENT)
      shape.event = eventName()
      expectKey(KEY_START)
      shape.startSeq = uint()
      expectKey(KEY_CHECKPOINT)
      shape.checkpoint = uint()
      expectKey(KEY_CHECKPOINTED_AT)
      shape.checkpointedAt = uint()
  }
  shape.end = reader.pos
  if (keyed) trailingKeys()
  if (reader.pos !== reader.end) throw new NotARecordBody()
}

const BIN8 = 0xc4
const FIXSTR = 0xa0
const FIXSTR_MAX_LENGTH = 0x1f
const STR8 = 0xd9
const MAP16 = 0xde

function isPrintableAscii (byte: number): boolean {
  return byte >= 0x20 && byte <= 0x7e
}

/** Moves past the write's trailing keys: idempotencyKey, printable ASCII, then contentDigest, 16 bytes. */
function trailingKeys (): void {
  expectKey(KEY_IDEMPOTENCY_KEY)
  const length = reader.string()
  const start = reader.take(length)
  if (length === 0 || length > IDEMPOTENCY_KEY_MAX_LENGTH) throw new NotARecordBody()
  for (let at = start; at < reader.pos; at++) if (!isPrintableAscii(reader.src[at])) throw new NotARecordBody()
  expectKey(KEY_CONTENT_DIGEST)
  if (reader.byte() !== BIN8 || reader.byte() !== CONTENT_DIGEST_BYTES) throw new NotARecordBody()
  reader.take(CONTENT_DIGEST_BYTES)
}

/** What a keyed payload holds between its key's characters and its digest's bytes: contentDigest's name and its bin8 head. */
const DIGEST_HEAD = Buffer.from([FIXSTR | KEY_CONTENT_DIGEST.length, ...KEY_CONTENT_DIGEST, BIN8, CONTENT_DIGEST_BYTES])
/** What comes before the key's string: idempotencyKey's name. */
const IDEMPOTENCY_KEY_HEAD = Buffer.from([FIXSTR | KEY_IDEMPOTENCY_KEY.length, ...KEY_IDEMPOTENCY_KEY])

/** Whether src holds `bytes` at `at`: a loop, as `holds` is, with no view made for the open scan's every record. */
function holdsAt (src: Buffer, at: number, bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (src[at + i] !== bytes[i]) return false
  return true
}

export interface TrailingKeys {
  idempotencyKey: string
  /** The content digest's 16 bytes as latin1 text, one character a byte: a compact value to hold and compare. */
  contentDigest: string
}

/**
 * The write's trailing keys of an entry or batch record, read from the payload's two ends without
 * walking its body, for the open scan, which reads every record: the map head's count says whether
 * they are there (past the most entries a body of the op has without them), and the payload ends
 * in their fixed layout. A key is printable ASCII, so walking back from the digest's name over
 * printable bytes stops at its string head (fixstr, or str8 whose length byte may itself be
 * printable). Undefined for a record without keys, or whose bytes do not have that layout.
 */
export function readTrailingKeys (record: Pick<RecordBytes, 'type' | 'source' | 'payloadStart' | 'payloadEnd'>): TrailingKeys | undefined {
  const op = recordTypeName(record.type)
  if (op === undefined || op === 'checkpoint') return undefined
  const { source: src, payloadStart: start, payloadEnd: end } = record
  if (end - start < 3 || src[start] !== MAP16 || src.readUInt16BE(start + 1) <= MOST_BODY_ENTRIES[op]) return undefined
  const digestAt = end - CONTENT_DIGEST_BYTES
  const keyEnd = digestAt - DIGEST_HEAD.length
  if (keyEnd < start || !holdsAt(src, keyEnd, DIGEST_HEAD)) return undefined
  let at = keyEnd - 1
  const lowest = Math.max(start, keyEnd - IDEMPOTENCY_KEY_MAX_LENGTH - 2)
  while (at >= lowest && isPrintableAscii(src[at])) at--
  // The bytes after `at`: the key's characters, and in the third form below its str8 length too.
  const after = keyEnd - at - 1
  let headAt: number
  let keyStart: number
  if (after >= 1 && after <= FIXSTR_MAX_LENGTH && src[at] === (FIXSTR | after)) {
    headAt = at
    keyStart = at + 1
  } else if (src[at] === after && src[at - 1] === STR8) {
    headAt = at - 1
    keyStart = at + 1
  } else if (src[at] === STR8 && src[at + 1] === after - 1 && after - 1 > FIXSTR_MAX_LENGTH) {
    headAt = at
    keyStart = at + 2
  } else {
    return undefined
  }
  const nameAt = headAt - IDEMPOTENCY_KEY_HEAD.length
  if (nameAt < start || !holdsAt(src, nameAt, IDEMPOTENCY_KEY_HEAD)) return undefined
  return { idempotencyKey: src.toString('latin1', keyStart, keyEnd), contentDigest: src.toString('latin1', digestAt, end) }
}

/**
 * Where the parts of the record's body lie, if its payload is a record body of its type; undefined
 * if it is not, which only a bug or deliberate tampering can produce (the bytes were checked
 * against their CRC). The answer is one shared object, valid until the next call.
 */
export function checkRecordBody (record: Pick<RecordBytes, 'type' | 'source' | 'payloadStart' | 'payloadEnd'>): RecordShape | undefined {
  try {
    walk(record)
    return shape
  } catch (err) {
    if (err instanceof NotARecordBody || err instanceof MsgpackMismatch) return undefined
    throw err
  } finally {
    reader.release()
  }
}
