// Where a read begins, and whose checkpoint it reports: the same rules whatever the backend.
import { assertSeq, ConsumerNotFoundError, InvalidArgumentError, InvalidTimeError, RangeAheadError, RangeGoneError } from './errors.js'
import type { ReadOptions } from './log.js'

/** What a backend knows of its log that a read's start is checked against. */
export interface ReadBounds {
  /** The first seq the log still holds. */
  oldest: number
  /**
   * The seq of the last entry record deleted (0 if none): a read that leaves out checkpoint and
   * consumer records needs none of the deleted ones from there on. oldest - 1 where the kinds of
   * the deleted records are not known.
   */
  entriesGoneThrough: number
  lastSeq: number
  /** The consumer `default`'s checkpoint. */
  checkpoint: number
  /** A consumer's checkpoint; undefined if there is none of that name. */
  checkpointOf: (consumer: string) => number | undefined
}

/**
 * Checks a read's options at once (throwing for a bad argument, an unknown consumer, a start past
 * the last seq or before a record it would give that is gone) and says where it starts: after `after`, else after the
 * checkpoint of `consumer`, else (with `since`) before the oldest record, else after the consumer
 * `default`'s checkpoint; and the checkpoint the read reports, that of `consumer` or `default`.
 */
export function readStart (options: ReadOptions, bounds: ReadBounds): { after: number, checkpoint: number } {
  const { since, consumer, limit } = options
  if (since !== undefined && !(Number.isSafeInteger(since) && since >= 0)) throw new InvalidTimeError(since)
  const checkpoint = consumer === undefined ? bounds.checkpoint : bounds.checkpointOf(consumer)
  if (checkpoint === undefined) throw new ConsumerNotFoundError(consumer as string)
  const after = options.after ?? (consumer !== undefined || since === undefined ? checkpoint : bounds.oldest - 1)
  assertSeq('after', after)
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 1)) throw new InvalidArgumentError('limit', limit)
  if (after > bounds.lastSeq) throw new RangeAheadError(after, bounds.lastSeq)
  // Refused only if a record the read gives is gone: with includeCheckpoints every record after
  // `after`, else every entry record after it.
  const goneThrough = options.includeCheckpoints === true ? bounds.oldest - 1 : bounds.entriesGoneThrough
  if (after < goneThrough) throw new RangeGoneError(after, bounds.oldest)
  return { after, checkpoint }
}
