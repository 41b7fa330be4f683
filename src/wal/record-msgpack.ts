// A record as one msgpack map, {seq, op, ...the body's fields, timestamp}: the payload's own map
// with seq put before its entries and timestamp after, the entries copied byte for byte. Vectors
// stay msgpackr's float32 typed-array extension, so a consumer holding float32 vectors reads them
// without parsing a decimal, and the stream costs little more than reading the files.
import { Packr } from 'msgpackr'
import type { RecordFrame } from './format.js'
import { bodyEntries } from './payload.js'
import { checkRecordBody } from './record-json.js'

// Numbers are written as msgpackr writes them (past 2^32 as float64), so that msgpackr's default
// unpack gives numbers rather than BigInts.
const packr = new Packr({ useRecords: false })
const SEQ_KEY = packr.pack('seq')
const TIMESTAMP_KEY = packr.pack('timestamp')
const MAP16 = 0xde

/**
 * The record in `frame` as one msgpack map; undefined when the payload is not a record body of the
 * frame's type, which only a bug or deliberate tampering can produce (the frame's CRC held).
 */
export function recordMsgpackBytes (frame: RecordFrame): Buffer | undefined {
  // Checked as the NDJSON line is, so that both forms refuse the same records.
  const entries = checkRecordBody(frame) ? bodyEntries(frame) : undefined
  if (entries === undefined) return undefined
  const header = Buffer.allocUnsafe(3)
  header[0] = MAP16
  header.writeUInt16BE(entries.count + 2, 1)
  return Buffer.concat([
    header,
    SEQ_KEY,
    packr.pack(frame.seq),
    frame.source.subarray(entries.start, frame.payloadEnd),
    TIMESTAMP_KEY,
    packr.pack(frame.timestamp)
  ])
}
