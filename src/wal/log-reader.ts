// Streams records from the segment files in seq order, a chunk at a time: memory stays one chunk
// however long the log, and a consumer that stops pulling stops the reading. Every record is
// checked again on the way out (CRC, seq continuity): damage is reported, never skipped.
import path from 'node:path'
import { CorruptLogError, RangeGoneError } from './errors.js'
import type { FileIO } from './file-io.js'
import { RecordType, SEGMENT_HEADER_BYTES } from './format.js'
import { FrameReader } from './frame-reader.js'
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

export async function * readRecords (io: FileIO, dir: string, segments: readonly SegmentInfo[], range: ReadRange): AsyncGenerator<LogRecord> {
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
        const body = decodeBody(frame)
        if (body === undefined) throw new CorruptLogError(segment.name, step.offset, 'record body does not match its type')
        const record = body as LogRecord
        record.seq = frame.seq
        record.timestamp = frame.timestamp
        yielded++
        yield record
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
