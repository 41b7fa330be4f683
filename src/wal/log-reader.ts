// Streams records from the segment files in seq order, a chunk at a time: memory stays one chunk
// however long the log, and a consumer that stops pulling stops the reading. Every record is
// checked again on the way out (CRC, seq continuity): damage is reported, never skipped.
import path from 'node:path'
import { CorruptLogError, LogFailedError, RangeGoneError } from '../errors.js'
import type { FileIO } from './file-io.js'
import { isBookkeeping, SEGMENT_HEADER_BYTES, type RecordFrame } from './format.js'
import { FrameReader } from './frame-reader.js'
import { recordLineBytes } from '../records/record-json.js'
import { recordMsgpackBytes } from '../records/record-msgpack.js'
import { decodeBody } from '../records/record-object.js'
import { checkRecordBody } from '../records/record-shape.js'
import type { LogRecord } from '../log.js'
import type { SegmentInfo } from './open-plan.js'
import type { RecentEncodings } from '../records/recent-encodings.js'
import { markAtOrBefore } from './seq-marks.js'

export interface ReadRange {
  /** The first seq wanted. */
  from: number
  /** The last seq to read: the last durable seq when the read began (unbounded for a follow read). */
  to: number
  limit: number
  includeCheckpoints: boolean
  /** The seq of the last entry record retention deleted: a read past it that leaves out checkpoint and consumer records lost none of its records. */
  entriesGoneThrough: () => number
  /** Read on past the records durable now, waiting for each new one. */
  follow?: FollowTail
  /** Only records whose timestamp is at or after this (ms since the epoch); timestamps never decrease. */
  since?: number
}

/** How a follow read learns of new records, and why none will come any more. */
export interface FollowTail {
  /** Resolves at the log's next commit, close or failure. */
  changed: () => Promise<void>
  /** Undefined while records may still come; 'closed' once the log closed, or the error it failed with. */
  stopped: () => 'closed' | Error | undefined
  /** The reader's own end: once aborted, the read stops at the next record boundary and ends cleanly. */
  signal?: AbortSignal
  /** True while the read has yielded every durable record and waits for the next one. */
  waiting: boolean
}

/** Yielded by a follow read when it has caught up, before it waits: a byte stream flushes its partial chunk. */
export const CAUGHT_UP = Symbol('caught up')
export type FrameItem = LocatedFrame | typeof CAUGHT_UP

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

/**
 * Resolves with false at `changed`, with true if `signal` aborts first. Each wait listens to the
 * signal only while it lasts: one promise raced at every wake would gather a reaction a commit.
 */
function changedOrAborted (changed: Promise<void>, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal === undefined) return changed.then(() => false)
  if (signal.aborted) return Promise.resolve(true)
  return new Promise(resolve => {
    const onAbort = (): void => { resolve(true) }
    signal.addEventListener('abort', onAbort, { once: true })
    void changed.then(() => {
      signal.removeEventListener('abort', onAbort)
      resolve(false)
    })
  })
}

/** A record frame and where it lies: its payload is valid until the reader moves on. */
export interface LocatedFrame {
  frame: RecordFrame
  segment: string
  offset: number
}

/**
 * The frames in the range, in seq order, each checked (CRC, seq continuity) before it is yielded.
 * A follow read keeps its place in the segment it is in: woken by a commit, it reads on from where
 * it stopped (never from the segment's start), and moves to the next segment once the one it is in
 * is sealed and read to its end.
 */
export function readFrames (io: FileIO, dir: string, segments: readonly SegmentInfo[], range: ReadRange & { follow?: undefined }): AsyncGenerator<LocatedFrame>
export function readFrames (io: FileIO, dir: string, segments: readonly SegmentInfo[], range: ReadRange): AsyncGenerator<FrameItem>
export async function * readFrames (io: FileIO, dir: string, segments: readonly SegmentInfo[], range: ReadRange): AsyncGenerator<FrameItem> {
  const { follow } = range
  let next = range.from
  let yielded = 0
  while (next <= range.to && yielded < range.limit) {
    const active = segments[segments.length - 1]
    // A follow read that has every record waits in the active segment, from its end.
    const segment = segmentHolding(segments, next) ?? (follow !== undefined && next === active.lastSeq + 1 ? active : undefined)
    if (segment === undefined) {
      const oldest = segments[0].baseSeq
      // Retention deleted the segments: the read goes on from the oldest held only if the records
      // it lost are all checkpoint and consumer records, which it leaves out anyway.
      if (next < oldest && !range.includeCheckpoints && next > range.entriesGoneThrough()) {
        next = oldest
        continue
      }
      throw new RangeGoneError(next - 1, oldest)
    }
    const atEnd = next === segment.lastSeq + 1
    // Reading begins at the last mark at or before `next` (at most MARK_BYTES before it), not at
    // the segment's first record.
    const mark = atEnd ? undefined : segment.marks[markAtOrBefore(segment.marks, next)]
    // A snapshot: bytes past it may be mid-write, and the records up to it are durable.
    const start = atEnd ? segment.bytes : mark?.offset ?? SEGMENT_HEADER_BYTES
    let fd: number
    try {
      fd = await io.openRead(path.join(dir, segment.name))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      // Deleted as the read came to it: likewise, the read goes on past it if none of the records
      // it wanted there was an entry.
      if (!range.includeCheckpoints && segment.lastEntrySeq < next && segment !== active) {
        next = segment.lastSeq + 1
        continue
      }
      throw new RangeGoneError(next - 1, segments.find(s => s !== segment)?.baseSeq ?? next)
    }
    try {
      const frames = new FrameReader(io, fd, start, segment.bytes)
      let expected = atEnd ? next : mark?.seq ?? segment.baseSeq
      let flushed = false
      for (;;) {
        if (follow?.signal?.aborted === true) return
        const step = frames.buffered() ?? await frames.next()
        if (step.kind === 'end') {
          if (follow === undefined) break
          if (segment.bytes > frames.rangeEnd) {
            frames.extendTo(segment.bytes)
            // Records committed while the last catch-up was handed out: they too are flushed
            // before the next wait, or they would sit in a partial chunk until another commit.
            flushed = false
            continue
          }
          if (segments[segments.length - 1] !== segment) break
          if (!flushed) {
            flushed = true
            yield CAUGHT_UP
            continue
          }
          // Taken before the log is looked at, so that a commit in between is not missed.
          const changed = follow.changed()
          const stopped = follow.stopped()
          if (stopped === 'closed') return
          if (stopped !== undefined) throw new LogFailedError(stopped)
          follow.waiting = true
          const abort = await changedOrAborted(changed, follow.signal)
          follow.waiting = false
          if (abort) return
          flushed = false
          continue
        }
        if (step.kind === 'short') throw new CorruptLogError(segment.name, step.offset, 'record cut short')
        if (step.kind === 'bad') throw new CorruptLogError(segment.name, step.offset, step.reason)
        const { frame } = step
        if (frame.seq !== expected) throw new CorruptLogError(segment.name, step.offset, `seq ${frame.seq} where ${expected} was expected`)
        expected++
        if (frame.seq < next) continue
        if (frame.seq > range.to || yielded >= range.limit) return
        next = frame.seq + 1
        if (isBookkeeping(frame.type) && !range.includeCheckpoints) continue
        if (range.since !== undefined && frame.timestamp < range.since) continue
        yielded++
        yield { frame, segment: segment.name, offset: step.offset }
        // A follow read at its limit must not wait for a record it will not give.
        if (yielded >= range.limit) return
      }
      // The segment ended, yet the log says it holds the next seq wanted: records are missing.
      if (next <= range.to && segmentHolding(segments, next) === segment) {
        throw new CorruptLogError(segment.name, frames.rangeEnd, `segment ends before seq ${next}`)
      }
    } finally {
      await io.close(fd)
    }
  }
}

const BODY_MISMATCH = 'record body does not match its type'

/** The records in the range, decoded. */
export async function * readRecords (frames: AsyncIterable<FrameItem>): AsyncGenerator<LogRecord> {
  for await (const item of frames) {
    if (item === CAUGHT_UP) continue
    const { frame, segment, offset } = item
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
  /** Each buffer out (a whole chunk, or the filled part of one), and the chunk it lies in. */
  private readonly out = new WeakMap<Buffer, Buffer>()

  take (): Buffer {
    const chunk = this.free.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES)
    this.out.set(chunk, chunk)
    return chunk
  }

  /** The first `used` bytes of `chunk`, to go out in its place: handed back, they return the whole chunk. */
  part (chunk: Buffer, used: number): Buffer {
    const filled = chunk.subarray(0, used)
    this.out.delete(chunk)
    this.out.set(filled, chunk)
    return filled
  }

  /** Takes back a buffer the stream yielded, once nothing holds its bytes any more. */
  give (buffer: Buffer): void {
    const chunk = this.out.get(buffer)
    if (chunk === undefined) return
    this.out.delete(buffer)
    if (this.free.length < KEPT_CHUNKS) this.free.push(chunk)
  }
}

/**
 * The records, each encoded by `encode` (undefined for a body that is not a record body), as one
 * byte stream in chunks from `pool`. `encode` may answer a view of a shared buffer, which another
 * stream may overwrite while this one waits: a record is copied whole before any of its chunks
 * goes out.
 */
async function * readEncoded (frames: AsyncIterable<FrameItem>, pool: ChunkPool, encode: (frame: RecordFrame) => Buffer | undefined): AsyncGenerator<Buffer> {
  let chunk = pool.take()
  let used = 0
  try {
    for await (const item of frames) {
      if (item === CAUGHT_UP) {
        // A follower gets what it has been sent whole before the read waits for more.
        if (used > 0) {
          yield pool.part(chunk, used)
          chunk = pool.take()
          used = 0
        }
        continue
      }
      const { frame, segment, offset } = item
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
    if (used > 0) yield pool.part(chunk, used)
    throw err
  }
  if (used > 0) yield pool.part(chunk, used)
}

/** The records as NDJSON lines (record-json.ts), those of the newest records from `shared` when given. */
export function readNdjson (frames: AsyncIterable<FrameItem>, pool: ChunkPool, shared?: RecentEncodings): AsyncGenerator<Buffer> {
  return readEncoded(frames, pool, shared?.encoder(recordLineBytes) ?? recordLineBytes)
}

/** The records as concatenated msgpack maps (record-msgpack.ts), those of the newest records from `shared` when given. */
export function readMsgpack (frames: AsyncIterable<FrameItem>, pool: ChunkPool, shared?: RecentEncodings): AsyncGenerator<Buffer> {
  return readEncoded(frames, pool, shared?.encoder(recordMsgpackBytes) ?? recordMsgpackBytes)
}
