// What the HTTP layer needs of a log, and all it may know of one: the seam between the routes and
// a storage backend (the segment engine in src/wal/ today; a replicated one can stand beside it).
// Whatever a backend stores, it answers in these terms. The status is one schema: the backend's
// type, the route's response and the OpenAPI document all come from it.
import { Type, type Static } from '@sinclair/typebox'
import type { EntryInput, EntryOp, StoredEntry } from './entry.js'

/**
 * The codes a log refuses a call with, whatever its backend: each has its HTTP status in
 * src/http/errors.ts, and the compiler holds the two lists to each other.
 */
export const LOG_ERROR_CODES = [
  'WAL_QUEUE_FULL', 'WAL_TX_MEMORY_FULL', 'WAL_DISK_FULL', 'WAL_SEGMENT_UNAVAILABLE', 'WAL_FAILED', 'WAL_CLOSED',
  'WAL_CORRUPT', 'WAL_CHECKPOINT_BACKWARDS', 'WAL_CHECKPOINT_AHEAD', 'WAL_TX_EMPTY', 'WAL_TX_NOT_FOUND',
  'WAL_TX_TOO_LARGE', 'WAL_RECORD_TOO_LARGE', 'WAL_RANGE_GONE', 'WAL_RANGE_AHEAD', 'WAL_INVALID_ARGUMENT',
  'WAL_INVALID_ENTRY', 'WAL_UNAVAILABLE'
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

export const LogStateSchema = Type.Union([Type.Literal('ok'), Type.Literal('failed'), Type.Literal('closed')], {
  description: 'failed: a write or fsync failed and the log refuses writes until reopened'
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
  openTransactions: Type.Integer(),
  diskFull: Type.Boolean({ description: 'free space is below VECWAL_MIN_FREE_BYTES: writes are refused (507), checkpoints pass' })
}, { title: 'Status' })
export type LogStatus = Static<typeof LogStatusSchema>

export type RecordBody =
  | StoredEntry
  | { op: 'batch', entries: StoredEntry[], txId?: string }
  | { op: 'checkpoint', checkpoint: number }

/** A record as readers see it: its body plus the seq and timestamp the log gave it. */
export type LogRecord = RecordBody & { seq: number, timestamp: number }

export interface ReadOptions {
  /** Records after this seq; default: the last checkpoint. */
  after?: number
  limit?: number
  includeCheckpoints?: boolean
}

export interface LogRead {
  /** The checkpoint when the read began. */
  checkpoint: number
  /** The last durable seq when the read began: the read ends there. */
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
}

export interface CheckpointResult {
  checkpoint: number
  /** The seq of the checkpoint record itself. */
  seq: number
  /** Segments (or whatever the backend stores) that retention let go. */
  deletedSegments: number
}

/** Transactions stage entries in memory and commit them as one batch record. */
export interface Transactions {
  /** Opens a transaction; its id. */
  begin: () => string
  /** Stages entries; how many the transaction holds now. */
  stage: (txId: string, entries: readonly EntryInput[]) => number
  commit: (txId: string) => Promise<{ seq: number, count: number }>
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
}

export interface Log {
  readonly state: LogState
  readonly lastSeq: number
  readonly transactions: Transactions
  /** Resolves with the entry's seq once it is durable. */
  append: (entry: EntryInput) => Promise<number>
  /** Resolves with the one seq of all the entries, once they are durable together. */
  appendBatch: (entries: readonly EntryInput[], txId?: string) => Promise<number>
  /** Records that the consumer holds everything up to `seq` (default: the last seq). */
  checkpoint: (seq?: number) => Promise<CheckpointResult>
  read: (options?: ReadOptions) => LogRead
  status: () => LogStatus
  /** Makes everything queued durable and closes; the log answers nothing after. */
  close: () => Promise<void>
}
