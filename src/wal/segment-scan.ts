// Verifies one segment file end to end: header, every record's framing and CRC, seq continuity.
// It only reads; deciding what the damage means (torn tail or corruption) is open-plan.ts's job.
import { ShortReadError } from './errors.js'
import type { FileIO } from './file-io.js'
import {
  decodeSegmentHeader, MAX_PAYLOAD_BYTES, readRecord, readU64, recordTypeName, RecordType,
  RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES
} from './format.js'
import { FrameReader, DEFAULT_CHUNK_BYTES } from './frame-reader.js'
import { decodeBody } from './payload.js'

export interface SegmentDamage {
  offset: number
  reason: string
  /** True when the damage cannot be a torn write wherever it stands (a whole record out of order). */
  certain: boolean
}

export type SegmentScan =
  | { kind: 'bad-header', size: number, reason: string }
  | {
    kind: 'scanned'
    size: number
    baseSeq: number
    /** baseSeq - 1 when the segment holds no record. */
    lastSeq: number
    /** The end of the last whole record: where a torn tail would be cut. */
    validEnd: number
    /** The highest checkpoint recorded in this segment, 0 if none. */
    checkpoint: number
    damage?: SegmentDamage
  }

export async function scanSegment (io: FileIO, fd: number, chunkBytes = DEFAULT_CHUNK_BYTES): Promise<SegmentScan> {
  const size = await io.size(fd)
  const headerBuf = Buffer.alloc(Math.min(size, SEGMENT_HEADER_BYTES))
  if (headerBuf.length > 0) await io.read(fd, headerBuf, 0, headerBuf.length, 0)
  const header = decodeSegmentHeader(headerBuf)
  if (!header.ok) return { kind: 'bad-header', size, reason: header.reason }

  const frames = new FrameReader(io, fd, SEGMENT_HEADER_BYTES, size, chunkBytes)
  let expected = header.baseSeq
  let checkpoint = 0
  let damage: SegmentDamage | undefined
  for (;;) {
    const step = frames.buffered() ?? await frames.next()
    if (step.kind === 'end') break
    if (step.kind === 'short') {
      damage = { offset: step.offset, reason: 'record cut short by the end of the file', certain: false }
      break
    }
    if (step.kind === 'bad') {
      damage = { offset: step.offset, reason: step.reason, certain: false }
      break
    }
    const { frame } = step
    if (frame.seq !== expected) {
      damage = { offset: step.offset, reason: `seq ${frame.seq} where ${expected} was expected`, certain: true }
      break
    }
    if (frame.type === RecordType.checkpoint) {
      const body = decodeBody(frame)
      if (body?.op !== 'checkpoint') {
        damage = { offset: step.offset, reason: 'checkpoint record body does not decode', certain: true }
        break
      }
      checkpoint = Math.max(checkpoint, body.checkpoint)
    }
    expected++
  }
  return {
    kind: 'scanned',
    size,
    baseSeq: header.baseSeq,
    lastSeq: expected - 1,
    validEnd: damage?.offset ?? size,
    checkpoint,
    ...(damage === undefined ? {} : { damage })
  }
}

/**
 * Looks for a whole, checksummed record with a seq above `afterSeq` anywhere in [from, end). A torn
 * write leaves nothing whole behind it; a record found past damage proves the damage is corruption
 * in the middle of the log. Only runs after damage was found, so a byte-by-byte search is fine.
 */
export async function findWholeRecordAfter (io: FileIO, fd: number, from: number, end: number, afterSeq: number): Promise<number | undefined> {
  const window = Buffer.allocUnsafe(DEFAULT_CHUNK_BYTES)
  for (let chunkStart = from; chunkStart + RECORD_HEADER_BYTES <= end; chunkStart += window.length - RECORD_HEADER_BYTES) {
    const length = Math.min(window.length, end - chunkStart)
    await readFully(io, fd, window, length, chunkStart)
    for (let i = 0; i + RECORD_HEADER_BYTES <= length; i++) {
      const at = chunkStart + i
      if (!plausibleHeader(window, i, end - at, afterSeq, at - from)) continue
      const size = RECORD_HEADER_BYTES + window.readUInt32LE(i + 4)
      const candidate = i + size <= length ? window.subarray(i, i + size) : await readAt(io, fd, size, at)
      if (readRecord(candidate, 0).kind === 'record') return at
    }
    if (chunkStart + length >= end) break
  }
  return undefined
}

// A cheap filter before the CRC: the length fits, the type exists, and the seq is one that could
// stand here (the records between the damage and this offset take at least a header each).
function plausibleHeader (buf: Buffer, i: number, remaining: number, afterSeq: number, skipped: number): boolean {
  const payload = buf.readUInt32LE(i + 4)
  if (payload > MAX_PAYLOAD_BYTES || RECORD_HEADER_BYTES + payload > remaining) return false
  if (recordTypeName(buf[i + 24]) === undefined) return false
  const seq = readU64(buf, i + 8)
  return seq > afterSeq && seq <= afterSeq + 1 + Math.floor(skipped / RECORD_HEADER_BYTES)
}

async function readAt (io: FileIO, fd: number, size: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size)
  await readFully(io, fd, buf, size, position)
  return buf
}

async function readFully (io: FileIO, fd: number, into: Buffer, length: number, position: number): Promise<void> {
  let done = 0
  while (done < length) {
    const got = await io.read(fd, into, done, length - done, position + done)
    if (got === 0) throw new ShortReadError(position + done)
    done += got
  }
}
