// A record's body as objects: the read form that decodes. Vectors come out as Float32Array, the
// payload's typed-array extension.
import { Packr } from 'msgpackr'
import type { RecordBody } from '../log.js'
import { RecordType, type RecordBytes } from './record-bytes.js'

// Decoding as the payloads were once also encoded: msgpackr's typed-array extension, no records.
const packr = new Packr({ moreTypes: true, useRecords: false })

/**
 * Decodes the payload of a record whose bytes have already been checked (a frame's CRC), in place
 * in its buffer. Returns undefined when the body does not name the op its record type says, which
 * only a bug or deliberate tampering can produce.
 */
export function decodeBody (record: Pick<RecordBytes, 'type' | 'source' | 'payloadStart' | 'payloadEnd'>): RecordBody | undefined {
  const body = packr.unpack(record.source, { start: record.payloadStart, end: record.payloadEnd }) as RecordBody
  if (typeof body !== 'object' || body === null || RecordType[body.op] !== record.type) return undefined
  // The write's trailing keys belong to the write, not the entry: no read form shows them.
  const written = body as { idempotencyKey?: string, contentDigest?: Uint8Array }
  if (written.idempotencyKey !== undefined) {
    delete written.idempotencyKey
    delete written.contentDigest
  }
  return body
}

/** The msgpack item at source[start, end), decoded as decodeBody would decode it. */
export function decodeItem (source: Buffer, start: number, end: number): unknown {
  return packr.unpack(source, { start, end })
}
