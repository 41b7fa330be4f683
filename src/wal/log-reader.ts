// Streams records from the segment files in seq order, a chunk at a time: memory stays one chunk
// however long the log, and a consumer that stops pulling stops the reading. Every record is
// checked again on the way out (CRC, seq continuity): damage is reported, never skipped.
import path from 'node:path'
import { CorruptLogError, RangeGoneError } from './errors.js'
import type { FileIO } from './file-io.js'
import { RecordType, SEGMENT_HEADER_BYTES, type RecordFrame } from './format.js'
import { FrameReader } from './frame-reader.js'
import { checkRecordBody, recordLineBytes } from './record-json.js'
import { recordMsgpackBytes } from './record-msgpack.js'
import { decodeBody, type LogRecord } from './payload.js'
import type { SegmentInfo } from './recover.js'

export interface ReadRange {
  /** The first seq wanted. */
  from: number
  /** The last seq to read: the last durable seq when the read began. */
  to: number
  limit: number
  includeCheckpoints: boolean
}

/** The segment that holds `seq`, if retention has not deleted it. */
function segmentHolding (segments: readonly SegmentInfo[], seq: number): SegmentInfo | undefined {
  let lo = 0
  let hi = segments.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const s = segments[mid]
    if (seq < s.baseSeq) hi = mid - 1
    else if (seq > s.lastSeq) lo = mid + 1
    else return s
  }
  return undefined
}

/** A record frame and where it lies: its payload is valid until the reader moves on. */
export interface LocatedFrame {
  frame: RecordFrame
  segment: string
  offset: number
}

/** The frames in the range, in seq order, each checked (CRC, seq continuity) before it is yielded. */
export async function * readFrames (io: FileIO, dir: string, segments: readonly SegmentInfo[], range: ReadRange): AsyncGenerator<LocatedFrame> {
  let next = range.from
  let yielded = 0
  while (next <= range.to && yielded < range.limit) {
    const segment = segmentHolding(segments, next)
    if (segment === undefined) throw new RangeGoneError(next - 1, segments[0]?.baseSeq ?? next)
    // A snapshot: bytes past it may be mid-write, and the records up to it are durable.
    const end = segment.bytes
    let fd: number
    try {
      fd = await io.openRead(path.join(dir, segment.name))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new RangeGoneError(next - 1, segments[0]?.baseSeq ?? next)
      throw err
    }
    try {
      const frames = new FrameReader(io, fd, SEGMENT_HEADER_BYTES, end)
      let expected = segment.baseSeq
      for (;;) {
        const step = frames.buffered() ?? await frames.next()
        if (step.kind === 'end') break
        if (step.kind === 'short') throw new CorruptLogError(segment.name, step.offset, 'record cut short')
        if (step.kind === 'bad') throw new CorruptLogError(segment.name, step.offset, step.reason)
        const { frame } = step
        if (frame.seq !== expected) throw new CorruptLogError(segment.name, step.offset, `seq ${frame.seq} where ${expected} was expected`)
        expected++
        if (frame.seq < next) continue
        if (frame.seq > range.to || yielded >= range.limit) return
        next = frame.seq + 1
        if (frame.type === RecordType.checkpoint && !range.includeCheckpoints) continue
        yielded++
        yield { frame, segment: segment.name, offset: step.offset }
      }
      // The segment ended, yet the log says it holds the next seq wanted: records are missing.
      if (next <= range.to && segmentHolding(segments, next) === segment) {
        throw new CorruptLogError(segment.name, end, `segment ends before seq ${next}`)
      }
    } finally {
      await io.close(fd)
    }
  }
}

const BODY_MISMATCH = 'record body does not match its type'

/** The records in the range, decoded. */
export async function * readRecords (frames: AsyncIterable<LocatedFrame>): AsyncGenerator<LogRecord> {
  for await (const { frame, segment, offset } of frames) {
    // Checked as the stream forms check it, so that every form refuses the same records.
    const body = checkRecordBody(frame) ? decodeBody(frame) : undefined
    if (body === undefined) throw new CorruptLogError(segment, offset, BODY_MISMATCH)
    const record = body as LogRecord
    record.seq = frame.seq
    record.timestamp = frame.timestamp
    yield record
  }
}

/** Records are gathered into chunks of this many bytes: one socket write per chunk, not per record. */
const CHUNK_BYTES = 64 * 1024

/**
 * The records, each encoded by `encode` (undefined for a body that is not a record body), in
 * chunks of whole records. Each chunk is a fresh buffer, since its consumer may still hold the
 * last one; a record longer than a chunk gets a chunk of its own size. `encode` may answer a view
 * of a shared buffer: it is copied before the next call.
 */
async function * readEncoded (frames: AsyncIterable<LocatedFrame>, encode: (frame: RecordFrame) => Buffer | undefined): AsyncGenerator<Buffer> {
  let chunk = Buffer.allocUnsafe(CHUNK_BYTES)
  let used = 0
  try {
    for await (const { frame, segment, offset } of frames) {
      const bytes = encode(frame)
      if (bytes === undefined) throw new CorruptLogError(segment, offset, BODY_MISMATCH)
      if (used + bytes.length > chunk.length) {
        if (used > 0) yield chunk.subarray(0, used)
        chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, bytes.length))
        used = 0
      }
      used += bytes.copy(chunk, used)
    }
  } catch (err) {
    // At damage, every record before it goes out first.
    if (used > 0) yield chunk.subarray(0, used)
    throw err
  }
  if (used > 0) yield chunk.subarray(0, used)
}

/** The records as NDJSON lines (record-json.ts), in chunks of whole lines. */
export function readNdjson (frames: AsyncIterable<LocatedFrame>): AsyncGenerator<Buffer> {
  return readEncoded(frames, recordLineBytes)
}

/** The records as concatenated msgpack maps (record-msgpack.ts), in chunks of whole records. */
export function readMsgpack (frames: AsyncIterable<LocatedFrame>): AsyncGenerator<Buffer> {
  return readEncoded(frames, recordMsgpackBytes)
}
