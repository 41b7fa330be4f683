// A record as one msgpack map, {seq, op, ...the body's fields, timestamp}: the payload's own map
// with seq put before its entries and timestamp after, the entries copied byte for byte. Vectors
// stay msgpackr's float32 typed-array extension, so a consumer holding float32 vectors reads them
// without parsing a decimal, and the stream costs little more than reading the files.
import type { RecordBytes } from './record-bytes.js'
import { checkRecordBody } from './record-shape.js'

// seq and timestamp are written as msgpackr writes numbers past 2^16 (uint32, and float64 past
// 2^32), so that msgpackr's default unpack gives numbers rather than BigInts.
const SEQ_KEY = Buffer.from([0xa3, ...Buffer.from('seq')])
const TIMESTAMP_KEY = Buffer.from([0xa9, ...Buffer.from('timestamp')])
const MAP16 = 0xde

// Each record is put together in this one buffer, which grows to the longest record seen up to
// KEPT_RECORD_BYTES; a longer record gets a buffer of its own, let go once it is copied out.
const KEPT_RECORD_BYTES = 1024 * 1024
let scratch = Buffer.allocUnsafeSlow(64 * 1024)

/** Writes a non-negative safe integer as msgpackr writes it; returns the end. */
function writeUint (out: Buffer, value: number, at: number): number {
  if (value <= 0xffffffff) {
    out[at] = 0xce
    out.writeUInt32BE(value, at + 1)
    return at + 5
  }
  out[at] = 0xcb
  out.writeDoubleBE(value, at + 1)
  return at + 9
}

/**
 * The record as one msgpack map, a view of a shared buffer valid until the next call; undefined
 * when the payload is not a record body of the record's type (checkRecordBody).
 */
export function recordMsgpackBytes (record: RecordBytes): Buffer | undefined {
  // Checked as the NDJSON line is, so that both forms refuse the same records.
  const shape = checkRecordBody(record)
  if (shape === undefined) return undefined
  const fieldsBytes = shape.end - shape.start
  const size = 3 + SEQ_KEY.length + 9 + fieldsBytes + TIMESTAMP_KEY.length + 9
  if (size > scratch.length && size <= KEPT_RECORD_BYTES) scratch = Buffer.allocUnsafeSlow(Math.min(Math.max(size, scratch.length * 2), KEPT_RECORD_BYTES))
  const out = size <= scratch.length ? scratch : Buffer.allocUnsafeSlow(size)
  out[0] = MAP16
  out.writeUInt16BE(shape.count + 2, 1)
  let at = 3 + SEQ_KEY.copy(out, 3)
  at = writeUint(out, record.seq, at)
  at += record.source.copy(out, at, shape.start, shape.end)
  at += TIMESTAMP_KEY.copy(out, at)
  at = writeUint(out, record.timestamp, at)
  return out.subarray(0, at)
}
