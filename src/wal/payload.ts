// Record payloads: msgpack, with vectors as float32 typed arrays (msgpackr's typed-array
// extension), so a vector costs four bytes a value on disk and decodes without a parse.
import { Packr } from 'msgpackr'
import type { EntryInput, StoredEntry } from '../entry.js'
import { MsgpackMismatch, MsgpackReader } from '../msgpack/reader.js'
import { InvalidEntryError } from './errors.js'
import { RecordType, recordTypeName, type RecordFrame, type RecordTypeCode, type RecordTypeName } from './format.js'

// useRecords: false keeps every payload self-contained: msgpackr's record structures would make a
// record depend on structures defined by earlier ones.
const packr = new Packr({ moreTypes: true, useRecords: false })

export type RecordBody =
  | StoredEntry
  | { op: 'batch', entries: StoredEntry[], txId?: string }
  | { op: 'checkpoint', checkpoint: number }

/** A record as readers see it: its body plus the seq and timestamp the writer gave it. */
export type LogRecord = RecordBody & { seq: number, timestamp: number }

export function toFloat32 (vector: readonly number[] | Float32Array): Float32Array {
  return vector instanceof Float32Array ? vector : Float32Array.from(vector)
}

/** A lone surrogate: in a u-mode pattern a pair is one code point, never in category Cs. */
const LONE_SURROGATE = /\p{Cs}/u

function assertWellFormed (field: string, text: string): void {
  if (LONE_SURROGATE.test(text)) throw new InvalidEntryError(`${field} holds a lone surrogate`)
}

/**
 * Throws InvalidEntryError unless the entry, stored, reads back as it is: every vector value a
 * finite float32 (as a float32, so past the float32 range counts as infinite), every string
 * well-formed Unicode. The HTTP schemas refuse all of these first; this holds for any caller.
 */
export function assertStorable (entry: EntryInput): void {
  assertWellFormed('id', entry.id)
  if (entry.op === 'delete') return
  const vector = toFloat32(entry.vector)
  for (let i = 0; i < vector.length; i++) {
    if (!Number.isFinite(vector[i])) throw new InvalidEntryError(`vector value ${i} is not a finite 32-bit float`)
  }
  if (entry.metadata === undefined) return
  for (const key in entry.metadata) {
    assertWellFormed('a metadata key', key)
    assertWellFormed(`metadata value ${key}`, entry.metadata[key])
  }
}

function storedEntry (entry: EntryInput): StoredEntry {
  assertStorable(entry)
  if (entry.op === 'delete') return { op: 'delete', id: entry.id }
  const vector = toFloat32(entry.vector)
  return entry.metadata === undefined
    ? { op: entry.op, id: entry.id, vector }
    : { op: entry.op, id: entry.id, vector, metadata: entry.metadata }
}

export interface EncodedPayload {
  type: RecordTypeCode
  bytes: Buffer
}

export function encodeEntry (entry: EntryInput): EncodedPayload {
  return { type: RecordType[entry.op], bytes: packr.pack(storedEntry(entry)) }
}

export function encodeBatch (entries: readonly EntryInput[], txId?: string): EncodedPayload {
  const body: RecordBody = { op: 'batch', entries: entries.map(storedEntry) }
  if (txId !== undefined) body.txId = txId
  return { type: RecordType.batch, bytes: packr.pack(body) }
}

export function encodeCheckpoint (checkpoint: number): EncodedPayload {
  return { type: RecordType.checkpoint, bytes: packr.pack({ op: 'checkpoint', checkpoint }) }
}

/**
 * Decodes the payload of a frame whose CRC has already been checked, in place in the frame's
 * buffer. Returns undefined when the body does not name the op its record type says, which only a
 * bug or deliberate tampering can produce.
 */
export function decodeBody (frame: Pick<RecordFrame, 'type' | 'source' | 'payloadStart' | 'payloadEnd'>): RecordBody | undefined {
  const body = packr.unpack(frame.source, { start: frame.payloadStart, end: frame.payloadEnd }) as RecordBody
  if (typeof body !== 'object' || body === null || RecordType[body.op] !== frame.type) return undefined
  return body
}

/** The msgpack item at source[start, end), decoded as decodeBody would decode it. */
export function decodeItem (source: Buffer, start: number, end: number): unknown {
  return packr.unpack(source, { start, end })
}

const OP_KEY = Buffer.from([0xa2, 0x6f, 0x70]) // the fixstr "op"
const bodyReader = new MsgpackReader()

/** Where a body's map entries begin, how many there are, and where those after `op` begin. */
export interface BodyEntries {
  op: RecordTypeName
  count: number
  /** The first entry, `op`. */
  start: number
  fieldsStart: number
}

/**
 * The entries of a payload that is a map whose first entry is `op` naming the frame's record type,
 * as encode* writes it; undefined otherwise. Nothing is decoded: the read forms walk or copy the
 * entries from there.
 */
export function bodyEntries (frame: Pick<RecordFrame, 'type' | 'source' | 'payloadStart' | 'payloadEnd'>): BodyEntries | undefined {
  const { source, payloadEnd: end } = frame
  const op = recordTypeName(frame.type)
  if (op === undefined) return undefined
  let count: number
  let start: number
  bodyReader.reset(source, frame.payloadStart, end)
  try {
    count = bodyReader.map()
    start = bodyReader.pos
  } catch (err) {
    if (err instanceof MsgpackMismatch) return undefined
    throw err
  } finally {
    bodyReader.release()
  }
  const nameAt = start + OP_KEY.length
  const fieldsStart = nameAt + 1 + op.length
  if (count === 0 || fieldsStart > end) return undefined
  if (OP_KEY.compare(source, start, nameAt) !== 0 || source[nameAt] !== (0xa0 | op.length)) return undefined
  if (source.toString('latin1', nameAt + 1, fieldsStart) !== op) return undefined
  return { op, count, start, fieldsStart }
}
