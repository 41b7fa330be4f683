// Streams records from the segment files in seq order, a chunk at a time: memory stays one chunk
// however long the log, and a consumer that stops pulling stops the reading. Every record is
// checked again on the way out (CRC, seq continuity): damage is reported, never skipped.
import path from 'node:path'
import { CorruptLogError, RangeGoneError } from '../errors.js'
import type { FileIO } from './file-io.js'
import { RecordType, SEGMENT_HEADER_BYTES, type RecordFrame } from './format.js'
import { FrameReader } from './frame-reader.js'
import { recordLineBytes } from '../records/record-json.js'
import { recordMsgpackBytes } from '../records/record-msgpack.js'
import { decodeBody } from '../records/record-object.js'
import { checkRecordBody } from '../records/record-shape.js'
import type { LogRecord } from '../log.js'
import type { SegmentInfo } from './open-plan.js'

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
    const body = checkRecordBody(frame) === undefined ? undefined : decodeBody(frame)
    if (body === undefined) throw new CorruptLogError(segment, offset, BODY_MISMATCH)
    const record = body as LogRecord
    record.seq = frame.seq
    record.timestamp = frame.timestamp
    yield record
  }
}

/**
 * Records go out in chunks of this many bytes: one socket write per chunk, not per record. Every
 * chunk is this size (the last aside), a record longer than the room left running on into the
 * next, so that a chunk written out can be filled again.
 */
const CHUNK_BYTES = 64 * 1024
/** Chunks handed back and waiting to be filled again, at most. */
const KEPT_CHUNKS = 16

/**
 * A stream's chunks, and those its consumer hands back once written. Without it every chunk is
 * garbage once written, and V8 collects external memory only every few tens of MiB: a long stream
 * lifted the process's RSS by that much. A chunk is refilled only if it came from here and is
 * still out, so a chunk handed back twice, or a buffer of someone else's, is never written into.
 */
export class ChunkPool {
  private readonly free: Buffer[] = []
  private readonly out = new WeakSet<Buffer>()

  take (): Buffer {
    const chunk = this.free.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES)
    this.out.add(chunk)
    return chunk
  }

  /** Takes back a chunk the stream yielded, once nothing holds its bytes any more. */
  give (chunk: Buffer): void {
    if (!this.out.delete(chunk) || this.free.length >= KEPT_CHUNKS) return
    this.free.push(chunk)
  }
}

/**
 * The records, each encoded by `encode` (undefined for a body that is not a record body), as one
 * byte stream in chunks from `pool`. `encode` may answer a view of a shared buffer, which another
 * stream may overwrite while this one waits: a record is copied whole before any of its chunks
 * goes out.
 */
async function * readEncoded (frames: AsyncIterable<LocatedFrame>, pool: ChunkPool, encode: (frame: RecordFrame) => Buffer | undefined): AsyncGenerator<Buffer> {
  let chunk = pool.take()
  let used = 0
  try {
    for await (const { frame, segment, offset } of frames) {
      const bytes = encode(frame)
      if (bytes === undefined) throw new CorruptLogError(segment, offset, BODY_MISMATCH)
      const full: Buffer[] = []
      for (let from = 0; from < bytes.length;) {
        const copied = bytes.copy(chunk, used, from)
        used += copied
        from += copied
        if (used === CHUNK_BYTES) {
          full.push(chunk)
          chunk = pool.take()
          used = 0
        }
      }
      yield * full
    }
  } catch (err) {
    // At damage, every record before it goes out first.
    if (used > 0) yield chunk.subarray(0, used)
    throw err
  }
  if (used > 0) yield chunk.subarray(0, used)
}

/** The records as NDJSON lines (record-json.ts). */
export function readNdjson (frames: AsyncIterable<LocatedFrame>, pool: ChunkPool): AsyncGenerator<Buffer> {
  return readEncoded(frames, pool, recordLineBytes)
}

/** The records as concatenated msgpack maps (record-msgpack.ts). */
export function readMsgpack (frames: AsyncIterable<LocatedFrame>, pool: ChunkPool): AsyncGenerator<Buffer> {
  return readEncoded(frames, pool, recordMsgpackBytes)
}
