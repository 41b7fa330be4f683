// What opening a log directory would do, decided by reading alone: which segments form the log,
// where a torn tail would be cut, and which damage refuses to open (or, with the repair option, is
// set aside). open-apply.ts carries a plan out; the offline tools (src/tools/) print one.
//
// A torn tail is damage in the newest segment with no whole record after it: a crash mid-write
// leaves a partial, zeroed or garbled end, never a whole record behind the tear. One more kind of
// tear has whole records behind it: a power cut that wrote back a later page of the last, unsynced
// write and not an earlier one leaves sectors of zeros inside that write (version 2 segments name
// each frame's write, so this is knowable). Damage anywhere else, a record out of seq order, or a
// whole record found after the damage that does not fit that tear is corruption.
import path from 'node:path'
import type { FileIO } from './file-io.js'
import { type FormatVersion, parseSegmentFileName, SEGMENT_HEADER_BYTES } from './format.js'
import { applyConsumerChange, DEFAULT_CONSUMER, type ConsumerState } from '../consumer-state.js'
import { DEFAULT_CHUNK_BYTES } from './frame-reader.js'
import type { SeqMark } from './seq-marks.js'
import { findTornLastWrite, findWholeRecordAfter, scanSegment, type KeyedRecordSink } from './segment-scan.js'

export interface SegmentInfo {
  name: string
  baseSeq: number
  /** baseSeq - 1 while the segment holds no record. */
  lastSeq: number
  /** Durable bytes, header included. */
  bytes: number
  version: FormatVersion
  /** Where some of its records lie (seq-marks.ts); empty while it holds no record. */
  marks: SeqMark[]
  /** The seq of its last entry record (not a checkpoint or consumer record), 0 if it holds none. */
  lastEntrySeq: number
}

/** A change to the directory that opening makes. */
export type OpenStep =
  /** The newest segment's creation was torn (header only, invalid): rename it to `.broken`. */
  | { kind: 'set-aside-torn-creation', segment: string, size: number, reason: string }
  /**
   * Damage at the end of the newest segment with nothing whole after it, or with only records of
   * the torn last write after it (`tornWrite`: that write's first seq): truncate at `offset`,
   * keeping [offset, size) in a `.broken` copy unless those bytes are all zero.
   */
  | { kind: 'cut-torn-tail', segment: string, offset: number, size: number, zeros: boolean, reason: string, tornWrite?: number }
  /** Repair only: truncate the damaged segment at the corruption, keeping the rest in a `.broken` copy. */
  | { kind: 'repair-cut', segment: string, offset: number, size: number, reason: string }
  /** Repair only: rename a damaged segment, or one after the damage, to `.broken`. */
  | { kind: 'repair-set-aside', segment: string, size: number, reason: string }

export interface Corruption { file: string, offset: number, reason: string }

export interface OpenPlan {
  /** The segments that form the log once the plan is applied, oldest first. */
  segments: SegmentInfo[]
  /** Every consumer's state, as the kept records state them. */
  consumers: Map<string, ConsumerState>
  /** The consumer `default`'s checkpoint, 0 if it has none. */
  checkpoint: number
  /** The timestamp of the last kept record, 0 if none: the next may not be earlier. */
  lastTimestamp: number
  /** The seq of the last kept entry record (not a checkpoint or consumer record), 0 if none. */
  lastEntrySeq: number
  /** The seq the next record gets. */
  nextSeq: number
  /** Damage that refuses to open without the repair option; `steps` are then the repair's. */
  corruption?: Corruption
  steps: OpenStep[]
}

/** The segment files of a directory (names matching the segment pattern), in seq order. */
export async function listSegments (io: FileIO, dir: string): Promise<Array<{ name: string, baseSeq: number }>> {
  const found: Array<{ name: string, baseSeq: number }> = []
  for (const name of await io.readdir(dir)) {
    const baseSeq = parseSegmentFileName(name)
    if (baseSeq !== undefined) found.push({ name, baseSeq })
  }
  return found.sort((a, b) => a.baseSeq - b.baseSeq)
}

/**
 * Reads the directory's segments and decides what opening it would do. Changes nothing. `keyed`
 * is told of the keyed records of the segments the log keeps, in seq order, as the scan reads them.
 */
export async function planOpen (io: FileIO, dir: string, keyed?: KeyedRecordSink): Promise<OpenPlan> {
  const files = await listSegments(io, dir)
  const segments: SegmentInfo[] = []
  const steps: OpenStep[] = []
  const consumers = new Map<string, ConsumerState>()
  let lastTimestamp = 0
  let lastEntrySeq = 0
  let corruption: Corruption | undefined

  for (let i = 0; i < files.length && corruption === undefined; i++) {
    const { name, baseSeq } = files[i]
    const isLast = i === files.length - 1
    const fd = await io.openRead(path.join(dir, name))
    // Held until the segment is known to be kept: a segment set aside takes its keys with it.
    const found: Array<Parameters<KeyedRecordSink>> = []
    try {
      const scan = await scanSegment(io, fd, undefined, keyed === undefined ? undefined : (...record) => { found.push(record) })
      const previous = segments.at(-1)
      let damage: { offset: number, reason: string } | undefined
      let cutsAtDamage = false
      if (scan.kind === 'bad-header') {
        if (isLast && scan.size <= SEGMENT_HEADER_BYTES) {
          // A crash while the newest segment was being created: no record can be in it.
          steps.push({ kind: 'set-aside-torn-creation', segment: name, size: scan.size, reason: scan.reason })
          break
        }
        damage = { offset: 0, reason: scan.reason }
      } else if (scan.baseSeq !== baseSeq) {
        damage = { offset: 0, reason: `header base seq ${scan.baseSeq} does not match the file name` }
      } else if (previous !== undefined && scan.baseSeq !== previous.lastSeq + 1) {
        damage = { offset: 0, reason: `base seq ${scan.baseSeq} does not follow seq ${previous.lastSeq} of ${previous.name}` }
      } else {
        const kept = { name, baseSeq, lastSeq: scan.lastSeq, bytes: scan.validEnd, version: scan.version, marks: scan.marks, lastEntrySeq: scan.lastEntrySeq }
        const keep = (): void => {
          segments.push(kept)
          for (const change of scan.consumerChanges) applyConsumerChange(consumers, change)
          if (scan.lastTimestamp > 0) lastTimestamp = scan.lastTimestamp
          if (scan.lastEntrySeq > 0) lastEntrySeq = scan.lastEntrySeq
          for (const record of found) keyed?.(...record)
        }
        damage = scan.damage
        if (scan.damage !== undefined && isLast && !scan.damage.certain) {
          const { offset, reason } = scan.damage
          const zeros = await isAllZero(io, fd, offset, scan.size)
          // Every record has a non-zero type byte: zeros cannot hide one.
          const whole = zeros ? undefined : await findWholeRecordAfter(io, fd, offset + 1, scan.size, scan.lastSeq)
          // A version 1 segment does not say which write a record is in: whole records after the
          // damage are corruption there, whatever the damage looks like.
          const tornWrite = whole === undefined || scan.version === 1 ? undefined : await findTornLastWrite(io, fd, scan, offset, whole)
          if (whole === undefined) {
            steps.push({ kind: 'cut-torn-tail', segment: name, offset, size: scan.size, zeros, reason })
            damage = undefined
          } else if (tornWrite !== undefined) {
            steps.push({
              kind: 'cut-torn-tail',
              segment: name,
              offset,
              size: scan.size,
              zeros,
              reason: `${reason}, where sectors of zeros tore the last write (seq ${tornWrite} on), whose later records at byte ${whole} go with it`,
              tornWrite
            })
            damage = undefined
          } else {
            damage = { offset, reason: `${reason}, and a whole record follows at byte ${whole}` }
          }
        }
        if (damage === undefined) {
          keep()
        } else if (damage.offset > SEGMENT_HEADER_BYTES) {
          // Repair keeps the records before the damage.
          keep()
          steps.push({ kind: 'repair-cut', segment: name, offset: damage.offset, size: scan.size, reason: damage.reason })
          cutsAtDamage = true
        }
      }
      if (damage !== undefined) {
        corruption = { file: name, offset: damage.offset, reason: damage.reason }
        if (!cutsAtDamage) steps.push({ kind: 'repair-set-aside', segment: name, size: scan.size, reason: damage.reason })
        for (const later of files.slice(i + 1)) {
          steps.push({ kind: 'repair-set-aside', segment: later.name, size: await sizeOf(io, dir, later.name), reason: `after the corruption in ${name}` })
        }
      }
    } finally {
      await io.close(fd)
    }
  }
  // A log with no segment left continues at the seq its first file would have held.
  const nextSeq = (segments.at(-1)?.lastSeq ?? (files[0]?.baseSeq ?? 1) - 1) + 1
  // No entry record held, though records before the oldest held were deleted (past
  // VECWAL_RETAIN_MAX_BYTES, retention may take the segment holding the last one): its seq is not
  // known, only that it is no later than the seq before the oldest held. Taken as that, a
  // conditional append expecting less is refused, never let through as if the log held no entry.
  const oldest = segments[0]?.baseSeq ?? nextSeq
  if (lastEntrySeq === 0 && oldest > 1) lastEntrySeq = oldest - 1
  const checkpoint = consumers.get(DEFAULT_CONSUMER)?.checkpoint ?? 0
  return { segments, consumers, checkpoint, lastTimestamp, lastEntrySeq, nextSeq, ...(corruption === undefined ? {} : { corruption }), steps }
}

async function sizeOf (io: FileIO, dir: string, name: string): Promise<number> {
  const fd = await io.openRead(path.join(dir, name))
  try {
    return await io.size(fd)
  } finally {
    await io.close(fd)
  }
}

/** Whether bytes [from, end) of a file are all zero (a preallocated or zero-filled tail). */
async function isAllZero (io: FileIO, fd: number, from: number, end: number): Promise<boolean> {
  const chunk = Buffer.allocUnsafe(Math.min(DEFAULT_CHUNK_BYTES, Math.max(end - from, 0)))
  const zeros = Buffer.alloc(chunk.length)
  for (let at = from; at < end;) {
    const got = await io.read(fd, chunk, 0, Math.min(chunk.length, end - at), at)
    if (got === 0) break
    if (!chunk.subarray(0, got).equals(zeros.subarray(0, got))) return false
    at += got
  }
  return true
}
