// The engine's one entry point: open a directory, append, checkpoint, read, stage transactions.
import type { EntryInput } from '../entry.js'
import type { CheckpointResult, Durability, Log, LogObserver, LogRead, LogState, LogStatus, ReadOptions, SegmentStatus } from '../log.js'
import { DirLock } from './dir-lock.js'
import { DiskSpaceGuard, statfsFreeBytes, type FreeBytes } from './disk-space.js'
import {
  CheckpointAheadError, CheckpointBackwardsError, InvalidArgumentError, LogClosedError, LogFailedError, RangeAheadError, RangeGoneError
} from '../errors.js'
import { nodeFileIO, type FileIO } from './file-io.js'
import { GroupCommitQueue } from './group-commit.js'
import { silentLogger, type WalLogger } from './logger.js'
import { ChunkPool, readFrames, readMsgpack, readNdjson, readRecords, type LocatedFrame } from './log-reader.js'
import { encodeBatch, encodeCheckpoint, encodeEntry } from '../payload/payload.js'
import { applyOpenPlan } from './open-apply.js'
import { planOpen } from './open-plan.js'
import { SegmentWriter } from './segment-writer.js'
import { TransactionManager, type TransactionLimits } from '../transactions.js'

export interface WalOptions {
  dir: string
  /** 'fsync' (the default) acknowledges after fdatasync; 'none' after the write call, for tests and benchmarks only. */
  durability?: Durability
  /** Rotate to a new segment before one would pass this size. */
  segmentBytes?: number
  /** Sealed segments kept after a checkpoint covers them. */
  retainSegments?: number
  queueLimitBytes?: number
  maxBatchBytes?: number
  maxBatchRecords?: number
  transactions?: Partial<TransactionLimits>
  /** Open past corruption by setting everything after it aside. */
  repair?: boolean
  /** Below this many free bytes on the directory's file system, appends are refused (checkpoints pass); 0: never. */
  minFreeBytes?: number
  /** How often the free space is asked of the file system (statfs), in milliseconds. */
  freeSpaceCheckMs?: number
  /** Where free space is read from; tests may replace it. */
  freeBytes?: FreeBytes
  io?: FileIO
  logger?: WalLogger
  observer?: LogObserver
}

/** The engine's defaults, stated here once: the service's configuration takes them from here. */
export const WAL_DEFAULTS = {
  durability: 'fsync' as Durability,
  segmentBytes: 64 * 1024 * 1024,
  retainSegments: 0,
  queueLimitBytes: 64 * 1024 * 1024,
  maxBatchBytes: 8 * 1024 * 1024,
  maxBatchRecords: Number.POSITIVE_INFINITY,
  minFreeBytes: 0,
  freeSpaceCheckMs: 1000,
  transactions: { maxBytes: 64 * 1024 * 1024, maxTotalBytes: 256 * 1024 * 1024, idleMs: 60_000 }
}

/** The segment engine's status: it always has segment files to list. */
export type WalStatus = LogStatus & { segments: SegmentStatus[] }

/** The segment engine's reads: their chunks can always be handed back. */
export type WalRead = LogRead & { recycle: (chunk: Buffer) => void }

function assertSeq (name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError(name, value)
}

export class WriteAheadLog implements Log {
  readonly transactions: TransactionManager
  private lastCheckpoint: number
  /** The highest checkpoint queued, so two concurrent checkpoints cannot land out of order. */
  private queuedCheckpoint: number

  private constructor (
    private readonly dir: string,
    private readonly io: FileIO,
    private readonly settings: typeof WAL_DEFAULTS,
    private readonly writer: SegmentWriter,
    private readonly queue: GroupCommitQueue,
    private readonly lock: DirLock,
    private readonly space: DiskSpaceGuard,
    private readonly observer: LogObserver,
    private readonly logger: WalLogger,
    checkpoint: number
  ) {
    this.lastCheckpoint = checkpoint
    this.queuedCheckpoint = checkpoint
    this.transactions = new TransactionManager(
      settings.transactions,
      async (entries, txId) => await this.appendBatch(entries, txId),
      () => {
        if (this.queue.failed !== undefined) throw new LogFailedError(this.queue.failed)
        if (this.queue.isClosed) throw new LogClosedError()
      }
    )
  }

  static async open (options: WalOptions): Promise<WriteAheadLog> {
    const io = options.io ?? nodeFileIO
    const logger = options.logger ?? silentLogger
    const settings = {
      durability: options.durability ?? WAL_DEFAULTS.durability,
      segmentBytes: options.segmentBytes ?? WAL_DEFAULTS.segmentBytes,
      retainSegments: options.retainSegments ?? WAL_DEFAULTS.retainSegments,
      queueLimitBytes: options.queueLimitBytes ?? WAL_DEFAULTS.queueLimitBytes,
      maxBatchBytes: options.maxBatchBytes ?? WAL_DEFAULTS.maxBatchBytes,
      maxBatchRecords: options.maxBatchRecords ?? WAL_DEFAULTS.maxBatchRecords,
      minFreeBytes: options.minFreeBytes ?? WAL_DEFAULTS.minFreeBytes,
      freeSpaceCheckMs: options.freeSpaceCheckMs ?? WAL_DEFAULTS.freeSpaceCheckMs,
      transactions: { ...WAL_DEFAULTS.transactions, ...options.transactions }
    }
    await io.mkdir(options.dir, 0o700)
    const lock = DirLock.acquire(options.dir)
    let writer: SegmentWriter | undefined
    try {
      const plan = await planOpen(io, options.dir)
      await applyOpenPlan(io, options.dir, plan, { repair: options.repair ?? false, logger })
      writer = await SegmentWriter.open({
        dir: options.dir,
        io,
        durability: settings.durability,
        segmentBytes: settings.segmentBytes,
        onSync: options.observer?.synced
      }, plan.segments, plan.nextSeq)
      const space = new DiskSpaceGuard(options.dir, settings.minFreeBytes, options.freeBytes ?? statfsFreeBytes, settings.freeSpaceCheckMs)
      await space.refresh()
      const committed = options.observer?.committed
      const queue = new GroupCommitQueue(writer, {
        queueLimitBytes: settings.queueLimitBytes,
        maxBatchBytes: settings.maxBatchBytes,
        maxBatchRecords: settings.maxBatchRecords,
        onCommit: (records, bytes) => {
          space.spent(bytes)
          committed?.(records, bytes)
        }
      })
      const log = new WriteAheadLog(options.dir, io, settings, writer, queue, lock, space, options.observer ?? {}, logger, plan.checkpoint)
      // A crash may have come between a checkpoint and the deletions it allowed.
      await log.applyRetention()
      if (settings.durability === 'none') {
        logger.warn({ durability: 'none' }, 'durability is none: writes are acknowledged before fsync and a crash can lose them')
      }
      logger.info({ dir: options.dir, lastSeq: writer.lastSeq, checkpoint: plan.checkpoint, segments: writer.segments.length }, 'log opened')
      return log
    } catch (err) {
      // A step after the active segment was opened failed: its descriptor goes with the lock.
      await writer?.close().catch(() => {})
      lock.release()
      throw err
    }
  }

  get lastSeq (): number {
    return this.writer.lastSeq
  }

  get checkpointSeq (): number {
    return this.lastCheckpoint
  }

  get state (): LogState {
    if (this.queue.failed !== undefined) return 'failed'
    return this.queue.isClosed ? 'closed' : 'ok'
  }

  /** Resolves with the entry's seq once it is durable. */
  async append (entry: EntryInput): Promise<number> {
    const waiting = this.space.admit()
    if (waiting !== undefined) await waiting
    const seq = await this.queue.append(encodeEntry(entry))
    this.observer.appended?.(entry.op, 1)
    return seq
  }

  /** Appends entries as one atomic record (one seq); with a txId, as a committed transaction. */
  async appendBatch (entries: readonly EntryInput[], txId?: string): Promise<number> {
    const waiting = this.space.admit()
    if (waiting !== undefined) await waiting
    const seq = await this.queue.append(encodeBatch(entries, txId))
    const { appended } = this.observer
    if (appended !== undefined) {
      const counts = { insert: 0, update: 0, delete: 0 }
      for (const entry of entries) counts[entry.op]++
      for (const op of ['insert', 'update', 'delete'] as const) if (counts[op] > 0) appended(op, counts[op])
    }
    return seq
  }

  /**
   * Records that the consumer has persisted everything up to `seq` (default: the last seq), then
   * deletes the segments that checkpoint covers. Never called by the log itself.
   */
  async checkpoint (seq: number = this.lastSeq): Promise<CheckpointResult> {
    assertSeq('checkpoint', seq)
    if (seq < this.queuedCheckpoint) throw new CheckpointBackwardsError(seq, this.queuedCheckpoint)
    if (seq > this.lastSeq) throw new CheckpointAheadError(seq, this.lastSeq)
    // Not lowered again if the append fails: a later checkpoint below one that was asked for could
    // otherwise land after a lower one still in flight.
    this.queuedCheckpoint = seq
    const recordSeq = await this.queue.append(encodeCheckpoint(seq))
    this.lastCheckpoint = Math.max(this.lastCheckpoint, seq)
    return { checkpoint: seq, seq: recordSeq, deletedSegments: await this.applyRetention() }
  }

  /**
   * Deletes what the checkpoint covers. The checkpoint is durable by now, so failing to delete is
   * reported but fails nothing: the segments stay, and go at the next checkpoint or open.
   */
  private async applyRetention (): Promise<number> {
    let deleted: number
    try {
      deleted = await this.writer.deleteCovered(this.lastCheckpoint, this.settings.retainSegments)
    } catch (err) {
      this.logger.error({ err, checkpoint: this.lastCheckpoint }, 'retention could not delete covered segments')
      return 0
    }
    // Appends refused for want of space may go ahead at once.
    if (deleted > 0) await this.space.refresh()
    return deleted
  }

  /**
   * Checks the range at once (throwing RangeAheadError or RangeGoneError) and returns a stream
   * of the records after `after`, up to the last seq durable now.
   */
  read (options: ReadOptions = {}): WalRead {
    const after = options.after ?? this.lastCheckpoint
    assertSeq('after', after)
    if (options.limit !== undefined && !(Number.isSafeInteger(options.limit) && options.limit >= 1)) throw new InvalidArgumentError('limit', options.limit)
    const lastSeq = this.lastSeq
    if (after > lastSeq) throw new RangeAheadError(after, lastSeq)
    const oldest = this.writer.segments[0].baseSeq
    if (after + 1 < oldest) throw new RangeGoneError(after, oldest)
    const range = {
      from: after + 1,
      to: lastSeq,
      limit: options.limit ?? Number.POSITIVE_INFINITY,
      includeCheckpoints: options.includeCheckpoints ?? false
    }
    const frames = (): AsyncGenerator<LocatedFrame> => readFrames(this.io, this.dir, this.writer.segments, range)
    const chunks = new ChunkPool()
    return {
      checkpoint: this.lastCheckpoint,
      lastSeq,
      records: readRecords(frames()),
      ndjson: readNdjson(frames(), chunks),
      msgpack: readMsgpack(frames(), chunks),
      recycle: chunk => { chunks.give(chunk) }
    }
  }

  status (): WalStatus {
    const segments = this.writer.segments.map(s => ({ name: s.name, firstSeq: s.baseSeq, lastSeq: s.lastSeq, bytes: s.bytes }))
    return {
      lastSeq: this.lastSeq,
      checkpoint: this.lastCheckpoint,
      state: this.state,
      durability: this.settings.durability,
      segments,
      bytes: segments.reduce((sum, s) => sum + s.bytes, 0),
      queuedBytes: this.queue.queuedBytes,
      openTransactions: this.transactions.count,
      diskFull: this.space.belowMinimum
    }
  }

  /** Refuses new appends, waits until everything queued is durable, and releases the directory. */
  async close (): Promise<void> {
    if (this.queue.isClosed) throw new LogClosedError()
    this.transactions.clear()
    await this.queue.close()
    try {
      await this.writer.close()
    } finally {
      this.lock.release()
    }
  }
}
