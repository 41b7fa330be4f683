// Record payloads: msgpack, with vectors as float32 typed arrays (msgpackr's typed-array
// extension), so a vector costs four bytes a value on disk and decodes without a parse.
import { Packr } from 'msgpackr'
import type { EntryInput, StoredEntry } from '../entry.js'
import { RecordType, type RecordFrame, type RecordTypeCode } from './format.js'

// useRecords: false keeps every payload self-contained: msgpackr's record structures would make a
// record depend on structures defined by earlier ones.
const packr = new Packr({ moreTypes: true, useRecords: false })

export type RecordBody =
  | StoredEntry
  | { op: 'batch', entries: StoredEntry[], txId?: string }
  | { op: 'checkpoint', checkpoint: number }

/** A record as readers see it: its body plus the seq and timestamp the writer gave it. */
export type LogRecord = RecordBody & { seq: number, timestamp: number }

function toFloat32 (vector: readonly number[] | Float32Array): Float32Array {
  return vector instanceof Float32Array ? vector : Float32Array.from(vector)
}

function storedEntry (entry: EntryInput): StoredEntry {
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
