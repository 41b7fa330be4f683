// Every way the engine refuses, declared once, each with a stable code. The HTTP layer maps codes
// to statuses; the engine knows nothing of HTTP.
import type { AppendConditions, LogErrorCode, OpenErrorCode } from './log.js'
import { IDEMPOTENCY_KEY_MAX_LENGTH } from './records/record-shape.js'

/**
 * A code of the Log interface's (src/log.ts), one that stops an open, or WAL_SEGMENT_CHANGED, which
 * is only ever the cause of a WAL_FAILED.
 */
export type WalErrorCode = LogErrorCode | OpenErrorCode | 'WAL_SEGMENT_CHANGED'

export class WalError extends Error {
  readonly code: WalErrorCode
  constructor (code: WalErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'WalError'
    this.code = code
  }
}

/** A file ended before the end it had when its reading began: it was cut while being read. */
export class ShortReadError extends WalError {
  constructor (offset: number) {
    super('WAL_CORRUPT', `the file ended at byte ${offset}, short of the end it had when its reading began (cut while being read?)`)
  }
}

/** Damage that is not a torn tail: the log will not open (or read) past it without repair. */
export class CorruptLogError extends WalError {
  readonly file: string
  readonly offset: number
  readonly reason: string
  constructor (file: string, offset: number, reason: string) {
    super('WAL_CORRUPT', `${file} at byte ${offset}: ${reason}`)
    this.file = file
    this.offset = offset
    this.reason = reason
  }
}

/** Opening could not carry out one of its steps (a copy, a truncation, a rename): named here with its file. */
export class OpenStepError extends WalError {
  constructor (step: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause)
    super('WAL_OPEN_FAILED', `opening the log: could not ${step}: ${detail}`, { cause })
  }
}

/** A write or fsync failed earlier, or another writer was found; the log accepts nothing until it is reopened. */
export class LogFailedError extends WalError {
  constructor (cause?: unknown) {
    super('WAL_FAILED', 'the log failed a write or fsync, or found another writer, and accepts nothing until it is reopened', { cause })
  }
}

/**
 * The active segment is not the size this writer last made it: another process wrote to it or cut
 * it. Writing on would overwrite or interleave that process's bytes, so the log fails instead.
 */
export class SegmentChangedError extends WalError {
  constructor (file: string, expected: number, actual: number) {
    super('WAL_SEGMENT_CHANGED', `${file} is ${actual} bytes where this writer left it at ${expected}: another process is writing to the log`)
  }
}

/**
 * A new segment file could not be created (no descriptor free, no space for a directory entry):
 * nothing was written, so nothing can have been lost, and the log stays open. The records of the
 * batch that come before the rotation are durable already and keep their seqs; the rest are
 * refused with this error and the creation is tried again by the next batch.
 */
export class SegmentUnavailableError extends WalError {
  /** The first seq of the batch and how many of its records are durable (written before the rotation). */
  readonly firstSeq: number
  readonly durableRecords: number
  constructor (cause: unknown, firstSeq: number, durableRecords: number) {
    // The errno code only: the message of a failed open names the data directory's path.
    super('WAL_SEGMENT_UNAVAILABLE', `a new segment could not be created (${(cause as NodeJS.ErrnoException).code ?? 'error'}); nothing was written, retry shortly`, { cause })
    this.firstSeq = firstSeq
    this.durableRecords = durableRecords
  }
}

/**
 * A record of a backend that keeps no segment files (JetStream) is not what vecwal wrote: a body
 * that does not match its type, a seq missing from the run. Named by where it lies.
 */
export class CorruptRecordError extends WalError {
  constructor (where: string, reason: string) {
    super('WAL_CORRUPT', `${where}: ${reason}`)
  }
}

/**
 * A replicated backend did not answer in time, or answered that it cannot store now (no quorum, a
 * leader election). A write refused so may or may not have been stored: retry it, with an
 * idempotency key where it must not be stored twice. The log stays open.
 */
export class BackendUnavailableError extends WalError {
  constructor (what: string, cause?: unknown) {
    const detail = cause instanceof Error ? `: ${cause.message}` : ''
    super('WAL_UNAVAILABLE', `${what}${detail}; retry shortly`, { cause })
  }
}

export class LogClosedError extends WalError {
  constructor () { super('WAL_CLOSED', 'the log is closed') }
}

export class QueueFullError extends WalError {
  constructor (limit: number) {
    super('WAL_QUEUE_FULL', `the write queue holds its limit of ${limit} bytes; retry shortly`)
  }
}

/** Free space is below VECWAL_MIN_FREE_BYTES: appends wait until checkpoints and retention free some. */
export class DiskFullError extends WalError {
  constructor (free: number, minimum: number) {
    super('WAL_DISK_FULL', `the disk has ${Math.max(free, 0)} bytes free, below the minimum of ${minimum} kept for checkpoints; checkpoint to let retention free space, or free some`)
  }
}

export class DirectoryLockedError extends WalError {
  constructor (dir: string, holder: string) {
    super('WAL_LOCKED', `${dir} is held by another process (${holder})`)
  }
}

export class CheckpointBackwardsError extends WalError {
  constructor (requested: number, current: number) {
    super('WAL_CHECKPOINT_BACKWARDS', `checkpoint ${requested} is before the current checkpoint ${current}`)
  }
}

export class CheckpointAheadError extends WalError {
  constructor (requested: number, lastSeq: number) {
    super('WAL_CHECKPOINT_AHEAD', `checkpoint ${requested} is past the last seq ${lastSeq}`)
  }
}

export class RangeGoneError extends WalError {
  constructor (after: number, oldest: number) {
    super('WAL_RANGE_GONE', `entries after ${after} were deleted by retention; the oldest retained seq is ${oldest}`)
  }
}

export class RangeAheadError extends WalError {
  constructor (after: number, lastSeq: number) {
    super('WAL_RANGE_AHEAD', `after ${after} is past the last seq ${lastSeq}`)
  }
}

export class TransactionNotFoundError extends WalError {
  constructor (txId: string) {
    super('WAL_TX_NOT_FOUND', `transaction ${txId} is unknown, committed, aborted or expired`)
  }
}

export class TransactionTooLargeError extends WalError {
  constructor (limit: number) {
    super('WAL_TX_TOO_LARGE', `the transaction would stage more than ${limit} bytes`)
  }
}

export class TransactionsFullError extends WalError {
  constructor (limit: number) {
    super('WAL_TX_MEMORY_FULL', `open transactions already stage ${limit} bytes; commit or abort some`)
  }
}

export class EmptyTransactionError extends WalError {
  constructor (txId: string) {
    super('WAL_TX_EMPTY', `transaction ${txId} has no entries to commit`)
  }
}

/** A seq or limit that is not a whole number in range: a caller's bug (HTTP validates first). */
export class InvalidArgumentError extends WalError {
  constructor (name: string, value: unknown) {
    super('WAL_INVALID_ARGUMENT', `${name} must be a non-negative safe integer${name === 'limit' ? ' of at least 1' : ''}, not ${String(value)}`)
  }
}

/**
 * An entry no record may hold: a vector value that is not a finite 32-bit float, or a string with
 * a lone surrogate (no UTF-8 form). Stored, either would not read back as it was given.
 */
/** Refuses a seq argument that is not a non-negative safe integer. */
export function assertSeq (name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError(name, value)
}

const PRINTABLE_ASCII = /^[\x20-\x7e]+$/

/** Refuses conditions that are not well formed (HTTP validates first). */
export function assertConditions ({ idempotencyKey, expectedLastSeq }: AppendConditions): void {
  if (idempotencyKey !== undefined && !(idempotencyKey.length <= IDEMPOTENCY_KEY_MAX_LENGTH && PRINTABLE_ASCII.test(idempotencyKey))) {
    throw new InvalidArgumentError('idempotencyKey', idempotencyKey)
  }
  if (expectedLastSeq !== undefined) assertSeq('expectedLastSeq', expectedLastSeq)
}

export class InvalidEntryError extends WalError {
  constructor (reason: string) {
    super('WAL_INVALID_ENTRY', `the entry cannot be stored: ${reason}`)
  }
}

export class RecordTooLargeError extends WalError {
  constructor (bytes: number, limit: number) {
    super('WAL_RECORD_TOO_LARGE', `a record of ${bytes} bytes is past the limit of ${limit}`)
  }
}

export class ConsumerNotFoundError extends WalError {
  constructor (name: string) {
    super('WAL_CONSUMER_NOT_FOUND', `there is no consumer ${name}`)
  }
}

export class ConsumerExistsError extends WalError {
  constructor (name: string, start: number, asked: number) {
    super('WAL_CONSUMER_EXISTS', `consumer ${name} exists, created at ${start}, not ${asked}`)
  }
}

export class ConsumerLimitError extends WalError {
  constructor (limit: number) {
    super('WAL_CONSUMER_LIMIT', `the log holds its limit of ${limit} consumers; delete one first`)
  }
}

export class InvalidConsumerNameError extends WalError {
  constructor (name: string) {
    super('WAL_INVALID_ARGUMENT', `consumer name ${JSON.stringify(name)} is not 1-64 letters, digits, '.', '_' or '-'`)
  }
}

export class InvalidTimeError extends WalError {
  constructor (value: unknown) {
    super('WAL_INVALID_ARGUMENT', `since must be a time in ms since the epoch, not ${String(value)}`)
  }
}

/** The seq of the log's last entry record was not the one the write expected when its seq was to be assigned. */
export class SeqMismatchError extends WalError {
  readonly lastSeq: number
  constructor (expected: number, lastSeq: number) {
    super('WAL_SEQ_MISMATCH', `the last entry record's seq is ${lastSeq}, not the expected ${expected}; nothing was written`)
    this.lastSeq = lastSeq
  }
}

/** An idempotency key the log remembers came with other content than its first write's. */
export class IdempotencyKeyReusedError extends WalError {
  constructor (key: string) {
    super('WAL_IDEMPOTENCY_KEY_REUSED', `idempotency key ${JSON.stringify(key)} was used for a write of other content; nothing was written`)
  }
}
