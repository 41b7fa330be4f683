// Verifies one segment file end to end: header, every record's framing and CRC, seq continuity.
// It only reads; deciding what the damage means (torn tail or corruption) is open-plan.ts's job.
import { ShortReadError } from '../errors.js'
import type { FileIO } from './file-io.js'
import {
  decodeSegmentHeader, type FormatVersion, isBookkeeping, MAX_PAYLOAD_BYTES, readRecord, readU64, recordTypeName, RecordType,
  RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES
} from './format.js'
import { FrameReader, DEFAULT_CHUNK_BYTES } from './frame-reader.js'
import { consumerChange, DEFAULT_CONSUMER, type ConsumerChange } from '../consumer-state.js'
import { markDue, type SeqMark } from './seq-marks.js'
import { readTrailingKeys, type TrailingKeys } from '../records/record-shape.js'

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
    version: FormatVersion
    /** Version 2: the first seq of the write that holds the last whole record (undefined if none). */
    lastWriteFirstSeq?: number
    /** baseSeq - 1 when the segment holds no record. */
    lastSeq: number
    /** The end of the last whole record: where a torn tail would be cut. */
    validEnd: number
    /** What the segment's checkpoint and consumer records say of consumers, in seq order. */
    consumerChanges: ConsumerChange[]
    /** Where some of its records lie (seq-marks.ts). */
    marks: SeqMark[]
    /** The last whole record's timestamp, 0 if none. */
    lastTimestamp: number
    /** The seq of its last entry record (not a checkpoint or consumer record), 0 if none. */
    lastEntrySeq: number
    damage?: SegmentDamage
  }

/** Told of each whole record, before any damage, that carries the write's trailing keys. */
export type KeyedRecordSink = (keys: TrailingKeys, seq: number, timestamp: number) => void

export async function scanSegment (io: FileIO, fd: number, chunkBytes = DEFAULT_CHUNK_BYTES, keyed?: KeyedRecordSink): Promise<SegmentScan> {
  const size = await io.size(fd)
  const headerBuf = Buffer.alloc(Math.min(size, SEGMENT_HEADER_BYTES))
  if (headerBuf.length > 0) await io.read(fd, headerBuf, 0, headerBuf.length, 0)
  const header = decodeSegmentHeader(headerBuf)
  if (!header.ok) return { kind: 'bad-header', size, reason: header.reason }

  const frames = new FrameReader(io, fd, SEGMENT_HEADER_BYTES, size, chunkBytes)
  let expected = header.baseSeq
  const consumerChanges: ConsumerChange[] = []
  const marks: SeqMark[] = []
  let lastTimestamp = 0
  let lastEntrySeq = 0
  let damage: SegmentDamage | undefined
  let lastWriteIndex: number | undefined
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
    if (header.version === 1 && frame.writeIndex !== 0) {
      damage = { offset: step.offset, reason: 'reserved header bytes are not zero', certain: false }
      break
    }
    if (frame.seq !== expected) {
      damage = { offset: step.offset, reason: `seq ${frame.seq} where ${expected} was expected`, certain: true }
      break
    }
    // Writes lie back to back: a record starts a write (index 0) or follows the one before it in
    // the same write. A segment's first record starts a write.
    if (header.version !== 1 && frame.writeIndex !== 0 && frame.writeIndex !== (lastWriteIndex ?? -1) + 1) {
      damage = { offset: step.offset, reason: `write index ${frame.writeIndex} where 0 or ${(lastWriteIndex ?? -1) + 1} was expected`, certain: true }
      break
    }
    if (frame.type === RecordType.checkpoint || frame.type === RecordType.consumer) {
      const change = consumerChange(frame)
      if (change === undefined) {
        damage = { offset: step.offset, reason: `${recordTypeName(frame.type) as string} record body does not decode`, certain: true }
        break
      }
      // Consumer records and checkpoints that name a consumer came with version 3.
      if (header.version < 3 && (frame.type === RecordType.consumer || change.name !== DEFAULT_CONSUMER)) {
        damage = { offset: step.offset, reason: `a version ${header.version} segment holds a version 3 record`, certain: true }
        break
      }
      consumerChanges.push(change)
    } else if (keyed !== undefined) {
      const keys = readTrailingKeys(frame)
      if (keys !== undefined) keyed(keys, frame.seq, frame.timestamp)
    }
    if (markDue(marks, step.offset)) marks.push({ seq: frame.seq, offset: step.offset, timestamp: frame.timestamp })
    lastTimestamp = frame.timestamp
    if (!isBookkeeping(frame.type)) lastEntrySeq = frame.seq
    lastWriteIndex = frame.writeIndex
    expected++
  }
  const lastSeq = expected - 1
  return {
    kind: 'scanned',
    size,
    baseSeq: header.baseSeq,
    version: header.version,
    ...(header.version === 1 || lastWriteIndex === undefined ? {} : { lastWriteFirstSeq: lastSeq - lastWriteIndex }),
    lastSeq,
    validEnd: damage?.offset ?? size,
    consumerChanges,
    marks,
    lastTimestamp,
    lastEntrySeq,
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

/** The unit a disk writes whole: a page of a torn write that never reached it reads as sectors of zeros. */

export interface TornWriteScope {
  size: number
  baseSeq: number
  /** The last whole record before the damage. */
  lastSeq: number
  lastWriteFirstSeq?: number
}

/**
 * For damage at `damageAt` in a version 2 segment, with a whole record found again at `wholeAt`:
 * whether it is the segment's last write, torn by a power cut that wrote back a later page of it
 * before an earlier one. It is when every damaged stretch (from a failing frame to the next whole
 * record) holds a frame header of zeros (zeroedHeaderIn), and the damaged record (seq `lastSeq` + 1), the
 * whole records before it in its write, and every whole record after it all belong to one write,
 * which is then the last. Returns that write's first seq, or undefined when it is not so.
 */
export async function findTornLastWrite (io: FileIO, fd: number, scope: TornWriteScope, damageAt: number, wholeAt: number): Promise<number | undefined> {
  const { size, baseSeq, lastSeq, lastWriteFirstSeq } = scope
  let writeFirstSeq: number | undefined
  let stretchFrom = damageAt
  let afterSeq = lastSeq
  let at: number | undefined = wholeAt
  while (at !== undefined) {
    if (!await zeroedHeaderIn(io, fd, stretchFrom, at)) return undefined
    const frames = new FrameReader(io, fd, at, size)
    let previousIndex: number | undefined
    let step = await frames.next()
    for (; step.kind === 'record'; step = await frames.next()) {
      const { seq, writeIndex } = step.frame
      if (seq <= afterSeq) return undefined
      // Records read one after another are consecutive in seq and in their write.
      if (previousIndex !== undefined && (seq !== afterSeq + 1 || writeIndex !== previousIndex + 1)) return undefined
      writeFirstSeq ??= seq - writeIndex
      if (seq - writeIndex !== writeFirstSeq) return undefined
      afterSeq = seq
      previousIndex = writeIndex
    }
    if (step.kind === 'end') break
    stretchFrom = step.offset
    at = await findWholeRecordAfter(io, fd, stretchFrom + 1, size, afterSeq)
  }
  // The write begins in this segment (no write spans two), at or before the damaged record...
  if (writeFirstSeq === undefined || writeFirstSeq < baseSeq || writeFirstSeq > lastSeq + 1) return undefined
  // ...and the whole records before the damage that lie in it name it too.
  if (writeFirstSeq <= lastSeq && lastWriteFirstSeq !== writeFirstSeq) return undefined
  return writeFirstSeq
}

/**
 * Whether a frame header in [from, to) is all zeros, following frame lengths from `from` (where a
 * frame starts): the mark a power cut leaves where a page of a write was never written. No header
 * is ever zero (its seq and type are not), so neither a flipped bit nor zeros inside a record's
 * payload (a sparse vector) make one; a hole that zeroes no header cannot be told from damage to
 * an acknowledged record, and is not taken for a torn write. A header met on the way that is
 * neither zero nor whole (a plausible type and length) ends the search: past it no frame can be
 * placed, and a zeroed length field must not lead the walk into a payload's zeros.
 */
async function zeroedHeaderIn (io: FileIO, fd: number, from: number, to: number): Promise<boolean> {
  const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES)
  for (let at = from; at + RECORD_HEADER_BYTES <= to;) {
    await readFully(io, fd, header, RECORD_HEADER_BYTES, at)
    if (isZero(header, 0, RECORD_HEADER_BYTES)) return true
    const length = header.readUInt32LE(4)
    if (length === 0 || length > MAX_PAYLOAD_BYTES || recordTypeName(header[24]) === undefined) return false
    at += RECORD_HEADER_BYTES + length
  }
  return false
}

function isZero (buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return false
  return true
}
