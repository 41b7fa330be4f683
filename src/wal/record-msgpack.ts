// A record as one msgpack map, {seq, op, ...the body's fields, timestamp}: the payload's own map
// with seq put before its entries and timestamp after, the entries copied byte for byte. Vectors
// stay msgpackr's float32 typed-array extension, so a consumer holding float32 vectors reads them
// without parsing a decimal, and the stream costs little more than reading the files.
import type { RecordFrame } from './format.js'
import { bodyEntries } from './payload.js'
import { checkRecordBody } from './record-json.js'

// seq and timestamp are written as msgpackr writes numbers past 2^16 (uint32, and float64 past
// 2^32), so that msgpackr's default unpack gives numbers rather than BigInts.
const SEQ_KEY = Buffer.from([0xa3, ...Buffer.from('seq')])
const TIMESTAMP_KEY = Buffer.from([0xa9, ...Buffer.from('timestamp')])
const MAP16 = 0xde

/** Where each record is put together: it grows to the longest record seen. */
let scratch = Buffer.allocUnsafeSlow(64 * 1024)

/** Writes a non-negative safe integer as msgpackr writes it; returns the end. */
function writeUint (value: number, at: number): number {
  if (value <= 0xffffffff) {
    scratch[at] = 0xce
    scratch.writeUInt32BE(value, at + 1)
    return at + 5
  }
  scratch[at] = 0xcb
  scratch.writeDoubleBE(value, at + 1)
  return at + 9
}

/**
 * The record in `frame` as one msgpack map, a view of a shared buffer valid until the next call;
 * undefined when the payload is not a record body of the frame's type, which only a bug or
 * deliberate tampering can produce (the frame's CRC held).
 */
export function recordMsgpackBytes (frame: RecordFrame): Buffer | undefined {
  // Checked as the NDJSON line is, so that both forms refuse the same records.
  const entries = checkRecordBody(frame) ? bodyEntries(frame) : undefined
  if (entries === undefined) return undefined
  const fieldsBytes = frame.payloadEnd - entries.start
  const size = 3 + SEQ_KEY.length + 9 + fieldsBytes + TIMESTAMP_KEY.length + 9
  if (size > scratch.length) scratch = Buffer.allocUnsafeSlow(Math.max(size, scratch.length * 2))
  scratch[0] = MAP16
  scratch.writeUInt16BE(entries.count + 2, 1)
  let at = 3 + SEQ_KEY.copy(scratch, 3)
  at = writeUint(frame.seq, at)
  at += frame.source.copy(scratch, at, entries.start, frame.payloadEnd)
  at += TIMESTAMP_KEY.copy(scratch, at)
  at = writeUint(frame.timestamp, at)
  return scratch.subarray(0, at)
}
