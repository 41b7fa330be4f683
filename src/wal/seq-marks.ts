// A sparse index of each segment: the seq, byte offset and timestamp of its first record and of the
// first record at or past every MARK_BYTES after the mark before. Built by the opener's scan and by
// the writer as it writes, it finds where a seq or a moment lies with at most MARK_BYTES read
// (timestamps never decrease, so the marks are in timestamp order too), and counts a consumer's lag
// in bytes without reading. A 64 MiB segment holds 64 marks.
import type { SegmentInfo } from './open-plan.js'

export const MARK_BYTES = 1024 * 1024

export interface SeqMark {
  seq: number
  /** Where the record's frame begins in its segment. */
  offset: number
  timestamp: number
}

/** Whether a record beginning at `offset` takes a mark: the first, or the first at or past MARK_BYTES after the last mark. */
export function markDue (marks: readonly SeqMark[], offset: number): boolean {
  const last = marks.at(-1)
  return last === undefined || offset >= last.offset + MARK_BYTES
}

/** The index of the last mark with seq at or below `seq`, or -1. */
export function markAtOrBefore (marks: readonly SeqMark[], seq: number): number {
  let lo = 0
  let hi = marks.length - 1
  let found = -1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (marks[mid].seq <= seq) {
      found = mid
      lo = mid + 1
    } else {
      hi = mid - 1
    }
  }
  return found
}

/** The segment index holding `seq`, or -1. */
function segmentIndexHolding (segments: readonly SegmentInfo[], seq: number): number {
  let lo = 0
  let hi = segments.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (seq < segments[mid].baseSeq) hi = mid - 1
    else if (seq > segments[mid].lastSeq) lo = mid + 1
    else return mid
  }
  return -1
}

/**
 * Bytes of the log after record `seq`, frame headers included, counted from the mark at or before
 * seq + 1: exact to within MARK_BYTES, never less than the truth. All of it when seq + 1 is gone.
 */
export function bytesAfter (segments: readonly SegmentInfo[], seq: number): number {
  const at = segmentIndexHolding(segments, seq + 1)
  if (at < 0) return seq + 1 < segments[0].baseSeq ? segments.reduce((sum, s) => sum + s.bytes, 0) : 0
  const { marks } = segments[at]
  let bytes = segments[at].bytes - marks[Math.max(markAtOrBefore(marks, seq + 1), 0)].offset
  for (let i = at + 1; i < segments.length; i++) bytes += segments[i].bytes
  return bytes
}

/**
 * The seq to start reading from for the records at or after `since`: the last mark whose timestamp
 * is before it (timestamps never decrease), or the oldest record. At most MARK_BYTES of records
 * before `since` lie between it and the first record wanted.
 */
export function seekTime (segments: readonly SegmentInfo[], since: number): number {
  let found = segments[0].baseSeq
  for (let lo = 0, hi = segments.length - 1; lo <= hi;) {
    const mid = (lo + hi) >> 1
    const first = segments[mid].marks[0]
    if (first !== undefined && first.timestamp < since) {
      const { marks } = segments[mid]
      let m = 0
      for (let a = 0, b = marks.length - 1; a <= b;) {
        const c = (a + b) >> 1
        if (marks[c].timestamp < since) {
          m = c
          a = c + 1
        } else {
          b = c - 1
        }
      }
      found = marks[m].seq
      lo = mid + 1
    } else {
      hi = mid - 1
    }
  }
  return found
}
