// What the HTTP layer needs of a log, and all it may know of one: the seam between the routes and
// a storage backend (the segment engine in src/wal/ today; a replicated one can stand beside it).
// Whatever a backend stores, it answers in these terms. The status is one schema: the backend's
// type, the route's response and the OpenAPI document all come from it.
import { Type, type Static } from '@sinclair/typebox'
import type { EntryInput, EntryOp, StoredEntry } from './entry.js'
import type { PackedEntries } from './payload/packed-entries.js'

/**
 * The codes a log refuses a call with, whatever its backend: each has its HTTP status in
 * src/http/errors.ts, and the compiler holds the two lists to each other.
 */
export const LOG_ERROR_CODES = [
  'WAL_QUEUE_FULL', 'WAL_TX_MEMORY_FULL', 'WAL_DISK_FULL', 'WAL_SEGMENT_UNAVAILABLE', 'WAL_FAILED', 'WAL_CLOSED',
  'WAL_CORRUPT', 'WAL_CHECKPOINT_BACKWARDS', 'WAL_CHECKPOINT_AHEAD', 'WAL_TX_EMPTY', 'WAL_TX_NOT_FOUND',
  'WAL_TX_TOO_LARGE', 'WAL_RECORD_TOO_LARGE', 'WAL_RANGE_GONE', 'WAL_RANGE_AHEAD', 'WAL_INVALID_ARGUMENT',
  'WAL_INVALID_ENTRY', 'WAL_UNAVAILABLE',
  // Named consumers (issue #12).
  'WAL_CONSUMER_NOT_FOUND', 'WAL_CONSUMER_EXISTS', 'WAL_CONSUMER_LIMIT',
  // Safe retries: a condition that did not hold, a key given again with other content.
  'WAL_SEQ_MISMATCH', 'WAL_IDEMPOTENCY_KEY_REUSED'
] as const
export type LogErrorCode = typeof LOG_ERROR_CODES[number]

/** Codes that stop a log from opening, before any call: the command line explains them. */
export type OpenErrorCode = 'WAL_LOCKED' | 'WAL_OPEN_FAILED' | 'WAL_CORRUPT'

export const DurabilitySchema = Type.Union([Type.Literal('fsync'), Type.Literal('none'), Type.Literal('quorum')], {
  description: 'fsync: a write is answered once it is fsynced; none: once written (tests and benchmarks only); ' +
    'quorum: once a quorum of the stream\'s replicas stored it (JetStream backend: see its fsync policy in the README)'
})
/** When a write is acknowledged. */
export type Durability = Static<typeof DurabilitySchema>

export const LogStateSchema = Type.Union([Type.Literal('ok'), Type.Literal('unavailable'), Type.Literal('failed'), Type.Literal('closed')], {
  description: 'failed: a write or fsync failed and the log refuses writes until reopened; ' +
    'unavailable: the log\'s storage cannot be reached for now (JetStream backend: the NATS connection is down, or the stream has no leader that hears from a quorum of its replicas); ' +
    'writes are answered 503 WAL_UNAVAILABLE once their ack is overdue, reads that do not follow are refused so before they begin, followers end with an unavailable line, and the log finds out by itself when it can be reached again'
})
export type LogState = Static<typeof LogStateSchema>

export const SegmentStatusSchema = Type.Object({
  name: Type.String(),
  firstSeq: Type.Integer(),
  lastSeq: Type.Integer({ description: 'firstSeq - 1 while the segment is empty' }),
  bytes: Type.Integer()
})
export type SegmentStatus = Static<typeof SegmentStatusSchema>

export const LogStatusSchema = Type.Object({
  lastSeq: Type.Integer(),
  checkpoint: Type.Integer(),
  state: LogStateSchema,
  durability: DurabilitySchema,
  /** A backend that keeps no segment files leaves this out. */
  segments: Type.Optional(Type.Array(SegmentStatusSchema, { description: 'the segment files, oldest first (segment backend)' })),
  bytes: Type.Integer({ description: 'bytes the log holds' }),
  queuedBytes: Type.Integer({ description: 'bytes waiting to be written, or being written' }),
  queueLimitBytes: Type.Integer({ description: 'the limit of queuedBytes: past it writes are refused (503 WAL_QUEUE_FULL)' }),
  openTransactions: Type.Integer(),
  diskFull: Type.Boolean({ description: 'free space is below VECWAL_MIN_FREE_BYTES: writes are refused (507), checkpoints pass' }),
  /** A backend that keeps no files on a local disk leaves this out. */
  freeBytes: Type.Optional(Type.Integer({ description: 'free bytes of the data directory\'s file system, as last asked (segment backend; absent while VECWAL_MIN_FREE_BYTES is 0, which never asks)' })),
  idempotencyKeys: Type.Integer({ description: 'idempotency keys remembered, whose writes a retry would be answered from' })
}, { title: 'Status' })
export type LogStatus = Static<typeof LogStatusSchema>

export type RecordBody =
  | StoredEntry
  | { op: 'batch', entries: StoredEntry[], txId?: string }
  | { op: 'checkpoint', checkpoint: number, consumer?: string }
  | { op: 'consumer', name: string, event: 'create' | 'delete' | 'carry', start: number, checkpoint: number, checkpointedAt: number }

/** A record as readers see it: its body plus the seq and timestamp the log gave it. */
export type LogRecord = RecordBody & { seq: number, timestamp: number }

export interface ReadOptions {
  /** Records after this seq; default: the checkpoint of `consumer`, else the oldest retained record's seq - 1 with `since`, else the consumer `default`'s checkpoint. */
  after?: number
  limit?: number
  /** Checkpoint and consumer records too (the log's own bookkeeping, left out by default). */
  includeCheckpoints?: boolean
  // Named consumers (issue #12).
  /** Start after this consumer's checkpoint (unless `after` is given). */
  consumer?: string
  /** Only records whose timestamp is at or after this moment (ms since the epoch). */
  since?: number
  // Follow (issue #12): a read that goes on as the log grows.
  /**
   * Read on past the last seq: each new record as soon as it is durable, never before. The streams
   * then end only when `limit` records were read, `signal` aborts (cleanly, at a record boundary),
   * the log closes (cleanly, after its last record) or the log fails (they throw WAL_FAILED, after
   * every record that was durable).
   */
  follow?: boolean
  /** Ends a follow read: its stream ends cleanly at the next record boundary. */
  signal?: AbortSignal
}

/** What a long poll waits for: a record after `after`, for at most `timeoutMs`. */
export interface WaitOptions {
  /** Default: the last checkpoint. */
  after?: number
  timeoutMs: number
  /** Ends the wait early. */
  signal?: AbortSignal
}

export interface LogRead {
  /** When the read began, the checkpoint of the read's `consumer`, or of the consumer `default`. */
  checkpoint: number
  /** The last durable seq when the read began: a read that does not follow ends there. */
  lastSeq: number
  // Three forms of the same records: read one of them. Each starts reading on its first pull.
  /** The records, decoded. */
  records: AsyncIterable<LogRecord>
  /** The records as NDJSON, a byte stream in chunks. */
  ndjson: AsyncIterable<Buffer>
  /** The records as concatenated msgpack maps, a byte stream in chunks. */
  msgpack: AsyncIterable<Buffer>
  /**
   * Hands back a chunk of `ndjson` or `msgpack` once nothing holds its bytes any more (its socket
   * write is done), for a backend that fills chunks again rather than allocating more.
   */
  recycle?: (chunk: Buffer) => void
  /**
   * For a backend whose records lie elsewhere (across a network): begins the read ahead of its
   * first pull, resolving once the records it starts with are at hand (or it is known there are
   * none), rejecting with what the read would throw (WAL_UNAVAILABLE: the storage cannot be
   * reached) when it cannot begin, so that a caller can refuse the read before it answers any of
   * it. Without it, or when it is not called, a read begins on its first pull.
   */
  start?: () => Promise<void>
  /**
   * For a follow read: true while it has given out every durable record and waits for the next.
   * Every byte its streams yielded so far then ends on a record boundary.
   */
  caughtUp: () => boolean
}

export interface CheckpointResult {
  checkpoint: number
  /** The seq of the checkpoint record itself. */
  seq: number
  /** Segments (or whatever the backend stores) that retention let go. */
  deletedSegments: number
}

// Consumers: each keeps its own checkpoint; retention keeps every record above the lowest.
export const ConsumerNameSchema = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9._-]+$',
  description: 'a consumer name: 1-64 letters, digits, `.`, `_` or `-`'
})

export const ConsumerStatusSchema = Type.Object({
  name: ConsumerNameSchema,
  checkpoint: Type.Integer({ description: 'everything up to this seq is persisted by the consumer' }),
  start: Type.Integer({ description: 'the checkpoint it was created at' }),
  lagSeqs: Type.Integer({ description: 'the seq of the last entry record (checkpoint and consumer records aside) minus the checkpoint, 0 if not above it: 0 once the consumer has every entry' }),
  lagBytes: Type.Integer({ description: 'bytes of the log after the checkpoint, counted from the sparse index: exact to within 1 MiB (a backend without byte counts: 0)' }),
  checkpointedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'when it last checkpointed (RFC 3339), null if never' }),
  passedByRetention: Type.Boolean({ description: 'VECWAL_RETAIN_MAX_BYTES let retention delete records after its checkpoint: reading from it answers 410' })
}, { title: 'Consumer' })
export type ConsumerStatus = Static<typeof ConsumerStatusSchema>

export interface Consumers {
  /**
   * Creates a consumer at checkpoint `after` (default: just before the oldest retained record).
   * An existing one is answered as it is (`created` false) when `after` is absent or its start;
   * otherwise WAL_CONSUMER_EXISTS.
   */
  create: (name: string, after?: number) => Promise<{ consumer: ConsumerStatus, created: boolean }>
  list: () => ConsumerStatus[]
  /** WAL_CONSUMER_NOT_FOUND if there is none of that name. */
  get: (name: string) => ConsumerStatus
  delete: (name: string) => Promise<void>
  /** As Log.checkpoint, for this consumer. */
  checkpoint: (name: string, seq?: number) => Promise<CheckpointResult>
}

// --- Safe retries (idempotency keys and conditional appends) ---

/** What a write may be made on. */
export interface AppendConditions {
  /**
   * 1 to 255 printable ASCII characters. A write with a key the log remembers, with the same
   * content, writes nothing and is answered as the first was (`replayed`); with other content it
   * is refused with WAL_IDEMPOTENCY_KEY_REUSED. A write with a key still in flight waits for it.
   */
  idempotencyKey?: string
  /**
   * Written only if the seq of the log's last entry record (checkpoint and consumer records, the
   * log's own, aside) is exactly this when the record's seq is assigned (in commit order);
   * otherwise refused with WAL_SEQ_MISMATCH, whose error carries that seq as `lastSeq`. A replay
   * is answered whatever the log holds now.
   */
  expectedLastSeq?: number
}

export interface AppendResult {
  seq: number
  /** True when the key's first write answered: nothing was written this time. */
  replayed: boolean
}

export type BatchAppendResult = AppendResult & { count: number }

/** WAL_SEQ_MISMATCH's error carries the seq of the log's last entry record when the condition was checked. */
export interface SeqMismatch { code: 'WAL_SEQ_MISMATCH', lastSeq: number }

/** Transactions stage entries in memory and commit them as one batch record. */
export interface Transactions {
  /** Opens a transaction; its id. */
  begin: () => string
  /** Stages entries; how many the transaction holds now. */
  stage: (txId: string, entries: readonly EntryInput[]) => number
  /**
   * A commit retried with the key of one that was written answers as it did, even though the
   * transaction is gone by then.
   */
  commit: (txId: string, conditions?: AppendConditions) => Promise<BatchAppendResult>
  abort: (txId: string) => void
}

/** What a log tells of its work as it goes: the metrics listen. */
export interface LogObserver {
  /** A batch of records became durable. */
  committed?: (records: number, bytes: number) => void
  /** One write of records was made durable in this many seconds (an fdatasync, or a quorum's answer). */
  synced?: (seconds: number) => void
  /** Entries of this op became durable (counted one by one, inside batches too). */
  appended?: (op: EntryOp, entries: number) => void
  /** A keyed write was answered from the write its key had made, writing nothing. */
  replayed?: () => void
  /** Idempotency keys were forgotten before their window ended, to keep to the cap on keys held. */
  keysEvicted?: (keys: number) => void
}

export interface Log {
  readonly state: LogState
  readonly lastSeq: number
  readonly transactions: Transactions
  /** Named consumers; `checkpoint` below is the consumer `default`'s. */
  readonly consumers: Consumers
  /** Resolves with the entry's seq once it is durable. */
  append: (entry: EntryInput) => Promise<number>
  /** Resolves with the one seq of all the entries, once they are durable together. */
  appendBatch: (entries: readonly EntryInput[], txId?: string) => Promise<number>
  /** `append` under conditions: an idempotency key, an expected last seq. */
  appendWith: (entry: EntryInput, conditions: AppendConditions) => Promise<AppendResult>
  /** `appendBatch` under conditions; the entries may come already in their stored bytes (a msgpack body walked once). */
  appendBatchWith: (entries: readonly EntryInput[] | PackedEntries, conditions: AppendConditions) => Promise<BatchAppendResult>
  /** Records that the consumer `default` holds everything up to `seq` (default: the last seq). */
  checkpoint: (seq?: number) => Promise<CheckpointResult>
  read: (options?: ReadOptions) => LogRead
  /**
   * Long poll: resolves once a record after `after` is durable, or when the time is up, the signal
   * aborts, or the log closes or fails, whichever comes first; at once if one is there already or
   * `after` lies past the last seq (a read then says why).
   */
  waitForRecords: (options: WaitOptions) => Promise<void>
  status: () => LogStatus
  /** Makes everything queued durable and closes; the log answers nothing after. */
  close: () => Promise<void>
}
