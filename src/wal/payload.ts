// Record payloads: msgpack, with vectors as float32 typed arrays (msgpackr's typed-array
// extension), so a vector costs four bytes a value on disk and decodes without a parse.
// payload-writer.ts writes them (and makes the checks a stored entry must pass); this file reads them.
import { Packr } from 'msgpackr'
import type { EntryInput } from '../entry.js'
import type { RecordBody } from '../log.js'
import { MsgpackMismatch, MsgpackReader } from '../msgpack/reader.js'
import { batchPayload, checkpointPayload, entryPayload } from './payload-writer.js'
import { RecordType, recordTypeName, type RecordFrame, type RecordTypeCode, type RecordTypeName } from './format.js'

// Decoding as the payloads were once also encoded: msgpackr's typed-array extension, no records.
const packr = new Packr({ moreTypes: true, useRecords: false })

export interface EncodedPayload {
  type: RecordTypeCode
  bytes: Buffer
}

export function encodeEntry (entry: EntryInput): EncodedPayload {
  return { type: RecordType[entry.op], bytes: entryPayload(entry) }
}

export function encodeBatch (entries: readonly EntryInput[], txId?: string): EncodedPayload {
  return { type: RecordType.batch, bytes: batchPayload(entries, txId) }
}

export function encodeCheckpoint (checkpoint: number): EncodedPayload {
  return { type: RecordType.checkpoint, bytes: checkpointPayload(checkpoint) }
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
