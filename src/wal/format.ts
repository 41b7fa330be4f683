// The bytes on disk. docs/format.md describes this file; keep the two in step.
import { crc32c } from '@node-rs/crc32'
import { recordTypeName, type RecordBytes, type RecordTypeCode } from '../records/record-bytes.js'

// A frame's type byte holds a record type code; src/records owns the list.
export { isBookkeeping, RecordType, recordTypeName, type RecordTypeCode, type RecordTypeName } from '../records/record-bytes.js'

/** "VWAL" read as a little-endian u32. */
export const SEGMENT_MAGIC = 0x4c415756
/** The version new segments are written in. */
export const FORMAT_VERSION = 3
/**
 * Version 1 frames do not name their write: bytes 25-27 of a frame are zero there. Version 3 adds
 * payloads (consumer records, a checkpoint's consumer) that only its segments may hold.
 */
export const FORMAT_VERSIONS = [1, 2, 3] as const
export type FormatVersion = (typeof FORMAT_VERSIONS)[number]

// Segment header: magic u32 | version u16 | flags u16 | base seq u64 | crc32c u32 | reserved u32
export const SEGMENT_HEADER_BYTES = 24
const HEADER_CRC_OFFSET = 16

// Record frame: crc32c u32 | payload length u32 | seq u64 | timestamp u64 | type u8 | write index u24 | payload
// (version 1: the write index is always zero)
export const RECORD_HEADER_BYTES = 28
const RECORD_CRC_COVERS_FROM = 4
const WRITE_INDEX_OFFSET = 25

/**
 * How many records one write may hold: a frame's write index (its distance from the first seq of
 * its write) is a u24.
 */
export const MAX_RECORDS_PER_WRITE = 2 ** 24

/** The largest payload a record may carry; a larger length field is damage, not data. */
export const MAX_PAYLOAD_BYTES = 512 * 1024 * 1024

const TWO_32 = 2 ** 32

/** Writes a non-negative safe integer as a little-endian u64 without going through BigInt. */
export function writeU64 (buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32LE(value % TWO_32, offset)
  buf.writeUInt32LE(Math.floor(value / TWO_32), offset + 4)
}

export function readU64 (buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset) + buf.readUInt32LE(offset + 4) * TWO_32
}

/** Segment files are named by their base seq, zero-padded so that names sort in seq order. */
export function segmentFileName (baseSeq: number): string {
  return `${String(baseSeq).padStart(20, '0')}.seg`
}

const SEGMENT_NAME = /^(\d{20})\.seg$/

export function parseSegmentFileName (name: string): number | undefined {
  const match = SEGMENT_NAME.exec(name)
  return match === null ? undefined : Number(match[1])
}

export function encodeSegmentHeader (baseSeq: number): Buffer {
  const buf = Buffer.alloc(SEGMENT_HEADER_BYTES)
  buf.writeUInt32LE(SEGMENT_MAGIC, 0)
  buf.writeUInt16LE(FORMAT_VERSION, 4)
  buf.writeUInt16LE(0, 6)
  writeU64(buf, baseSeq, 8)
  buf.writeUInt32LE(crc32c(buf.subarray(0, HEADER_CRC_OFFSET)), HEADER_CRC_OFFSET)
  return buf
}

export type SegmentHeaderResult =
  | { ok: true, baseSeq: number, version: FormatVersion }
  | { ok: false, reason: string }

export function decodeSegmentHeader (buf: Buffer): SegmentHeaderResult {
  if (buf.length < SEGMENT_HEADER_BYTES) return { ok: false, reason: 'segment header is cut short' }
  if (buf.readUInt32LE(HEADER_CRC_OFFSET) !== crc32c(buf.subarray(0, HEADER_CRC_OFFSET))) {
    return { ok: false, reason: 'segment header checksum mismatch' }
  }
  if (buf.readUInt32LE(0) !== SEGMENT_MAGIC) return { ok: false, reason: 'bad segment magic' }
  const version = buf.readUInt16LE(4)
  if (!isFormatVersion(version)) return { ok: false, reason: `unsupported format version ${version}` }
  return { ok: true, baseSeq: readU64(buf, 8), version }
}

function isFormatVersion (version: number): version is FormatVersion {
  return (FORMAT_VERSIONS as readonly number[]).includes(version)
}

/**
 * Writes one record's frame header into `target` at `offset`, for `payload` to follow it: the
 * length, seq, timestamp, type and write index, and a CRC32C over all of them but the CRC field
 * and over the payload, which is not copied (the writer hands the file both, back to back).
 * `writeIndex` is the record's distance from the first seq of the write that holds it (always 0
 * in a version 1 segment; 0 too for a record written alone). Returns the offset past the header.
 */
export function writeFrameHeader (
  target: Buffer,
  offset: number,
  seq: number,
  timestamp: number,
  type: RecordTypeCode,
  payload: Uint8Array,
  writeIndex = 0
): number {
  if (!Number.isInteger(writeIndex) || writeIndex < 0 || writeIndex >= MAX_RECORDS_PER_WRITE) {
    throw new RangeError(`write index ${writeIndex} does not fit in a u24`)
  }
  target.writeUInt32LE(payload.length, offset + 4)
  writeU64(target, seq, offset + 8)
  writeU64(target, timestamp, offset + 16)
  target[offset + 24] = type
  target.writeUIntLE(writeIndex, offset + WRITE_INDEX_OFFSET, 3)
  const end = offset + RECORD_HEADER_BYTES
  target.writeUInt32LE(crc32c(payload, crc32c(target.subarray(offset + RECORD_CRC_COVERS_FROM, end))), offset)
  return end
}

/** Frames one record into `target` at `offset`, header and payload (writeFrameHeader's arguments). Returns the offset just past the record. */
export function writeRecord (...frame: Parameters<typeof writeFrameHeader>): number {
  const [target, , , , , payload] = frame
  const payloadAt = writeFrameHeader(...frame)
  target.set(payload, payloadAt)
  return payloadAt + payload.length
}

/** A record as a segment holds it: the payload lies in `source`, valid until that buffer is reused. */
export interface RecordFrame extends RecordBytes {
  /** The distance from the first seq of the write that holds the record (0 in version 1). */
  writeIndex: number
  /** Total bytes of the frame, header included. */
  size: number
}

export type FrameResult =
  | { kind: 'record', frame: RecordFrame }
  /** Fewer bytes are available than the frame needs: a torn tail, or more to read. */
  | { kind: 'short', needed: number }
  | { kind: 'bad', reason: string }

/**
 * Decodes the frame at `offset`, checking its framing and its CRC. The write index is not checked
 * here: what it may be depends on the segment's version and the records before (segment-scan.ts).
 */
export function readRecord (buf: Buffer, offset: number, end: number = buf.length): FrameResult {
  if (end - offset < RECORD_HEADER_BYTES) return { kind: 'short', needed: RECORD_HEADER_BYTES }
  const length = buf.readUInt32LE(offset + 4)
  if (length > MAX_PAYLOAD_BYTES) return { kind: 'bad', reason: `record length ${length} is past the maximum` }
  const type = buf[offset + 24]
  if (recordTypeName(type) === undefined) return { kind: 'bad', reason: `unknown record type ${type}` }
  const size = RECORD_HEADER_BYTES + length
  if (end - offset < size) return { kind: 'short', needed: size }
  const stored = buf.readUInt32LE(offset)
  if (stored !== crc32c(buf.subarray(offset + RECORD_CRC_COVERS_FROM, offset + size))) {
    return { kind: 'bad', reason: 'record checksum mismatch' }
  }
  return {
    kind: 'record',
    frame: {
      seq: readU64(buf, offset + 8),
      timestamp: readU64(buf, offset + 16),
      type: type as RecordTypeCode,
      writeIndex: buf.readUIntLE(offset + WRITE_INDEX_OFFSET, 3),
      source: buf,
      payloadStart: offset + RECORD_HEADER_BYTES,
      payloadEnd: offset + size,
      size
    }
  }
}
