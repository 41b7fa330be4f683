// The engine's one entry point: open a directory, append, checkpoint, read, stage transactions.
import type {
  AppendConditions, AppendResult, BatchAppendResult, CheckpointResult, Durability, Log, LogObserver, LogRead, LogState, LogStatus, ReadOptions,
  SegmentStatus, WaitOptions
} from '../log.js'
import { DirLock } from './dir-lock.js'
import { DiskSpaceGuard, statfsFreeBytes, type FreeBytes } from './disk-space.js'
import { ConsumerRegistry } from './consumers.js'
import { DEFAULT_CONSUMER } from '../consumer-state.js'
import { assertSeq, IdempotencyKeyReusedError, LogClosedError, LogFailedError } from '../errors.js'
import { readStart } from '../read-start.js'
import { nodeFileIO, type FileIO } from './file-io.js'
import { GroupCommitQueue } from './group-commit.js'
import { KeyIndex, type IdempotencyLimits } from './idempotency.js'
import { silentLogger, type WalLogger } from './logger.js'
import { CommitSignal } from './commit-signal.js'
import { ChunkPool, readFrames, readMsgpack, readNdjson, readRecords, type FollowTail, type FrameItem } from './log-reader.js'
import { RecentEncodings } from '../records/recent-encodings.js'
import { contentDigestOf, type EncodedPayload } from '../payload/payload.js'
import { applyOpenPlan } from './open-apply.js'
import { planOpen, type OpenPlan } from './open-plan.js'
import { SegmentWriter } from './segment-writer.js'
import { seekTime } from './seq-marks.js'
import { TransactionManager, type TransactionLimits } from '../transactions.js'
import { RecordWrites } from '../record-writes.js'

export interface WalOptions {
  dir: string
  /** 'fsync' (the default) acknowledges after fdatasync; 'none' after the write call, for tests and benchmarks only. */
  durability?: Durability
  /** Rotate to a new segment before one would pass this size. */
  segmentBytes?: number
  /** Sealed segments kept after every consumer's checkpoint covers them. */
  retainSegments?: number
  /** Past this many bytes, retention deletes the oldest sealed segments even past consumers' checkpoints; 0: never. */
  retainMaxBytes?: number
  /** The wall clock records are stamped with, in ms since the epoch; tests may replace it. */
  clock?: () => number
  queueLimitBytes?: number
  maxBatchBytes?: number
  maxBatchRecords?: number
  transactions?: Partial<TransactionLimits>
  /** How long, and how many, idempotency keys are remembered. */
  idempotency?: Partial<IdempotencyLimits>
  /** The clock keys expire by (ms since the epoch); tests may replace it. */
  now?: () => number
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
  retainMaxBytes: 0,
  queueLimitBytes: 64 * 1024 * 1024,
  maxBatchBytes: 8 * 1024 * 1024,
  maxBatchRecords: Number.POSITIVE_INFINITY,
  minFreeBytes: 0,
  freeSpaceCheckMs: 1000,
  transactions: { maxBytes: 64 * 1024 * 1024, maxTotalBytes: 256 * 1024 * 1024, idleMs: 60_000 },
  idempotency: { windowMs: 24 * 60 * 60 * 1000, maxKeys: 500_000 }
}

/** The segment engine's status: it always has segment files to list. */
export type WalStatus = LogStatus & { segments: SegmentStatus[] }

/** The segment engine's reads: their chunks can always be handed back. */
export type WalRead = LogRead & { recycle: (chunk: Buffer) => void }

export class WriteAheadLog extends RecordWrites implements Log {
  readonly transactions: TransactionManager
  readonly consumers: ConsumerRegistry
  /** Set once close has made everything queued durable: followers end after the last record. */
  private drained = false
  /** Segments the writer had when retention last looked: a new one may let it delete more. */
  private segmentsSeen: number
  /** Segments retention deleted since the log opened. */
  private deletedSegments = 0
  /** Retention is writing carry records. */
  private carrying = false
  /** The newest records' read forms, encoded once for all followers. */
  private readonly followed = { ndjson: new RecentEncodings(), msgpack: new RecentEncodings() }

  private constructor (
    private readonly dir: string,
    private readonly io: FileIO,
    private readonly settings: typeof WAL_DEFAULTS,
    private readonly writer: SegmentWriter,
    private readonly queue: GroupCommitQueue,
    private readonly lock: DirLock,
    private readonly space: DiskSpaceGuard,
    protected readonly observer: LogObserver,
    private readonly logger: WalLogger,
    private readonly commits: CommitSignal,
    private readonly keys: KeyIndex,
    private readonly now: () => number,
    consumers: OpenPlan['consumers']
  ) {
    super()
    this.segmentsSeen = writer.segments.length
    this.consumers = new ConsumerRegistry({
      place: async payload => await queue.place(payload),
      get lastSeq () { return writer.lastSeq },
      get lastEntrySeq () { return queue.lastEntrySeq },
      segments: writer.segments,
      get entriesGoneThrough () { return writer.entriesGoneThrough },
      retain: async () => { await this.applyRetention() },
      deletedSegments: () => this.deletedSegments
    }, consumers)
    this.transactions = new TransactionManager(
      settings.transactions,
      async (entries, txId, conditions) => await this.appendBatchRecord(entries, conditions, txId),
      async (txId, key) => await this.replayCommit(txId, key),
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
      retainMaxBytes: options.retainMaxBytes ?? WAL_DEFAULTS.retainMaxBytes,
      queueLimitBytes: options.queueLimitBytes ?? WAL_DEFAULTS.queueLimitBytes,
      maxBatchBytes: options.maxBatchBytes ?? WAL_DEFAULTS.maxBatchBytes,
      maxBatchRecords: options.maxBatchRecords ?? WAL_DEFAULTS.maxBatchRecords,
      minFreeBytes: options.minFreeBytes ?? WAL_DEFAULTS.minFreeBytes,
      freeSpaceCheckMs: options.freeSpaceCheckMs ?? WAL_DEFAULTS.freeSpaceCheckMs,
      transactions: { ...WAL_DEFAULTS.transactions, ...options.transactions },
      idempotency: { ...WAL_DEFAULTS.idempotency, ...options.idempotency }
    }
    const now = options.now ?? Date.now
    const keys = new KeyIndex(settings.idempotency, now, logger, evicted => options.observer?.keysEvicted?.(evicted))
    await io.mkdir(options.dir, 0o700)
    const lock = DirLock.acquire(options.dir)
    let writer: SegmentWriter | undefined
    try {
      // The keys are rebuilt from the records as the open scan reads them, oldest first.
      const plan = await planOpen(io, options.dir, ({ idempotencyKey, contentDigest }, seq, timestamp) => {
        keys.remember(idempotencyKey, { seq, contentDigest, writtenAt: timestamp })
      })
      await applyOpenPlan(io, options.dir, plan, { repair: options.repair ?? false, logger })
      writer = await SegmentWriter.open({
        dir: options.dir,
        io,
        durability: settings.durability,
        segmentBytes: settings.segmentBytes,
        onSync: options.observer?.synced
      }, plan.segments, plan.nextSeq, plan.lastTimestamp)
      const space = new DiskSpaceGuard(options.dir, settings.minFreeBytes, options.freeBytes ?? statfsFreeBytes, settings.freeSpaceCheckMs)
      await space.refresh()
      const committed = options.observer?.committed
      const commits = new CommitSignal()
      let opened: WriteAheadLog | undefined
      const queue = new GroupCommitQueue(writer, {
        queueLimitBytes: settings.queueLimitBytes,
        maxBatchBytes: settings.maxBatchBytes,
        maxBatchRecords: settings.maxBatchRecords,
        clock: options.clock,
        lastEntrySeq: plan.lastEntrySeq,
        onCommit: (records, bytes) => {
          space.spent(bytes)
          committed?.(records, bytes)
          opened?.grew()
        },
        onSettled: () => { commits.notify() }
      })
      const log = new WriteAheadLog(options.dir, io, settings, writer, queue, lock, space, options.observer ?? {}, logger, commits, keys, now, plan.consumers)
      opened = log
      // A crash may have come between a checkpoint and the deletions it allowed.
      await log.applyRetention()
      if (settings.durability === 'none') {
        logger.warn({ durability: 'none' }, 'durability is none: writes are acknowledged before fsync and a crash can lose them')
      }
      logger.info({ dir: options.dir, lastSeq: writer.lastSeq, checkpoint: plan.checkpoint, consumers: plan.consumers.size, segments: writer.segments.length }, 'log opened')
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

  /** The consumer `default`'s checkpoint, 0 if it has none. */
  get checkpointSeq (): number {
    return this.consumers.checkpointOf(DEFAULT_CONSUMER) ?? 0
  }

  get state (): LogState {
    if (this.queue.failed !== undefined) return 'failed'
    return this.queue.isClosed ? 'closed' : 'ok'
  }

  /**
   * Appends one encoded record under its conditions. A keyed record whose key the log remembers
   * is answered from the key's write (the same content) or refused (other content); one whose key
   * is in flight waits for that write, then is answered as if it came after it.
   */
  protected async appendRecord (payload: EncodedPayload, { idempotencyKey, expectedLastSeq }: AppendConditions): Promise<AppendResult> {
    if (idempotencyKey === undefined) return { seq: await this.enqueue(payload, expectedLastSeq), replayed: false }
    const contentDigest = contentDigestOf(payload)
    for (let pending = this.inFlight(idempotencyKey, contentDigest); pending !== undefined; pending = this.inFlight(idempotencyKey, contentDigest)) await pending
    // From the check above to begin() below nothing awaits: no other write with the key can start in between.
    const known = this.keys.find(idempotencyKey, this.oldestSeq)
    if (known !== undefined) {
      if (known.contentDigest !== contentDigest) throw new IdempotencyKeyReusedError(idempotencyKey)
      this.observer.replayed?.()
      return { seq: known.seq, replayed: true }
    }
    const settle = this.keys.begin(idempotencyKey, contentDigest)
    try {
      const seq = await this.enqueue(payload, expectedLastSeq)
      this.keys.remember(idempotencyKey, { seq, contentDigest, writtenAt: this.now() })
      return { seq, replayed: false }
    } finally {
      settle()
    }
  }

  /**
   * What settles when the write with `key` in flight is answered, or undefined if none is. One
   * with other content than `contentDigest` is refused at once: whatever its outcome, this content
   * cannot be its retry.
   */
  private inFlight (key: string, contentDigest?: string): Promise<void> | undefined {
    const pending = this.keys.pending(key)
    if (pending !== undefined && contentDigest !== undefined && pending.contentDigest !== contentDigest) throw new IdempotencyKeyReusedError(key)
    return pending?.settled
  }

  /** The first seq the log still holds: keys of records below it are gone with them. */
  private get oldestSeq (): number {
    return this.writer.segments[0].baseSeq
  }

  private async enqueue (payload: EncodedPayload, expectedLastSeq: number | undefined): Promise<number> {
    const waiting = this.space.admit()
    if (waiting !== undefined) await waiting
    return await this.queue.append(payload, expectedLastSeq)
  }

  /**
   * A commit retried with its key after its transaction is gone: answered from the record the
   * key's write made if that was this transaction's commit (read back for its txId and count).
   */
  private async replayCommit (txId: string, key: string): Promise<BatchAppendResult | undefined> {
    for (let pending = this.inFlight(key); pending !== undefined; pending = this.inFlight(key)) await pending
    const known = this.keys.find(key, this.oldestSeq)
    if (known === undefined) return undefined
    for await (const record of this.read({ after: known.seq - 1, limit: 1 }).records) {
      if (record.seq !== known.seq || record.op !== 'batch' || record.txId !== txId) break
      this.observer.replayed?.()
      return { seq: known.seq, count: record.entries.length, replayed: true }
    }
    throw new IdempotencyKeyReusedError(key)
  }

  /**
   * Records that the consumer `default` has persisted everything up to `seq` (default: the last
   * seq), then deletes the segments retention lets go. Never called by the log itself.
   */
  async checkpoint (seq?: number): Promise<CheckpointResult> {
    return await this.consumers.checkpoint(DEFAULT_CONSUMER, seq)
  }

  /** A batch was committed: if it started a segment, retention may delete more (the one before is sealed, and the log larger). */
  private grew (): void {
    if (this.writer.segments.length === this.segmentsSeen) return
    this.segmentsSeen = this.writer.segments.length
    // A segment that retention's own carry records started waits for the next: where the states of
    // many consumers fill more than a segment, each retention would otherwise carry them again.
    if (!this.carrying) void this.applyRetention()
  }

  /**
   * How many of the oldest segments retention lets go: the sealed ones whose records all lie at or
   * below every consumer's checkpoint, keeping `retainSegments` sealed ones, and never the segment
   * holding the last entry record (its seq is what conditional appends are checked against, and
   * opening derives it from the records held; JetStream keeps that message alike); then, while the
   * log is larger than `retainMaxBytes`, more of the oldest sealed ones, whatever they hold.
   */
  private deletable (): number {
    const { segments } = this.writer
    const sealed = segments.length - 1
    const { lastEntrySeq } = this.queue
    let belowLastEntry = sealed
    while (belowLastEntry > 0 && lastEntrySeq > 0 && segments[belowLastEntry - 1].lastSeq >= lastEntrySeq) belowLastEntry--
    const lowest = this.consumers.lowest()
    let count = 0
    if (lowest !== undefined) {
      while (count < Math.min(belowLastEntry, sealed - this.settings.retainSegments) && segments[count].lastSeq <= lowest) count++
    }
    const { retainMaxBytes } = this.settings
    if (retainMaxBytes > 0) {
      let bytes = segments.reduce((sum, s) => sum + s.bytes, 0) - segments.slice(0, count).reduce((sum, s) => sum + s.bytes, 0)
      for (; count < sealed && bytes > retainMaxBytes; count++) bytes -= segments[count].bytes
    }
    return count
  }

  /**
   * Deletes what retention lets go, first writing forward the state of every consumer whose state
   * only the deleted records hold. The checkpoints are durable by now, so failing to delete is
   * reported but fails nothing: the segments stay, and go at the next retention or open.
   */
  private async applyRetention (): Promise<number> {
    let deleted: number
    try {
      deleted = await this.consumers.serial(async () => {
        const passedBefore = new Set(this.consumers.passed())
        let gone = 0
        // The carry records go at the log's end and may start a segment, sealing one more: retention
        // looks again once they are written, so that past the byte cap it ends within the cap. Once
        // carry records have started a segment twice, the consumers' states alone fill segments as
        // fast as it deletes them: it stops, as another round would only carry them again.
        let started = 0
        // A closed log deletes nothing more: its directory may be another's by now.
        for (let count = this.deletable(); count > 0 && started < 2 && !this.queue.isClosed; count = this.deletable()) {
          const segmentsBefore = this.writer.segments.length
          this.carrying = true
          try {
            await this.consumers.carryForward(this.writer.segments[count].baseSeq)
          } finally {
            this.carrying = false
          }
          if (this.writer.segments.length > segmentsBefore) started++
          if (this.queue.isClosed) break
          gone += await this.writer.deleteOldest(count)
        }
        const oldest = this.writer.segments[0].baseSeq
        for (const name of this.consumers.passed()) {
          if (passedBefore.has(name)) continue
          this.logger.warn({ consumer: name, checkpoint: this.consumers.checkpointOf(name), oldest, retainMaxBytes: this.settings.retainMaxBytes },
            'retention passed a consumer: the log grew past VECWAL_RETAIN_MAX_BYTES, and entries it has not checkpointed are deleted; it reads 410 until it checkpoints past them')
        }
        return gone
      })
    } catch (err) {
      if (!(err instanceof LogClosedError)) this.logger.error({ err, checkpoint: this.consumers.lowest() }, 'retention could not delete covered segments')
      return 0
    }
    this.deletedSegments += deleted
    if (deleted > 0) {
      this.keys.forgetBefore(this.oldestSeq)
      // Appends refused for want of space may go ahead at once.
      await this.space.refresh()
    }
    return deleted
  }

  /** Why no more records will come: undefined while the log takes writes. */
  private stopped (): 'closed' | Error | undefined {
    return this.queue.failed ?? (this.drained ? 'closed' : undefined)
  }

  /**
   * Checks the range at once (throwing RangeAheadError or RangeGoneError) and returns a stream
   * of the records after `after`, up to the last seq durable now, or on as the log grows when
   * following.
   */
  read (options: ReadOptions = {}): WalRead {
    const { since } = options
    const lastSeq = this.lastSeq
    const { after, checkpoint } = readStart(options, {
      oldest: this.writer.segments[0].baseSeq,
      entriesGoneThrough: this.writer.entriesGoneThrough,
      lastSeq,
      checkpoint: this.checkpointSeq,
      checkpointOf: name => this.consumers.checkpointOf(name)
    })
    const follow: FollowTail | undefined = options.follow === true
      ? { changed: () => this.commits.next(), stopped: () => this.stopped(), signal: options.signal, waiting: false }
      : undefined
    const range = {
      // Timestamps never decrease: the records at or after `since` begin past the last mark before it.
      from: Math.max(after + 1, since === undefined ? 0 : seekTime(this.writer.segments, since)),
      to: follow === undefined ? lastSeq : Number.POSITIVE_INFINITY,
      limit: options.limit ?? Number.POSITIVE_INFINITY,
      includeCheckpoints: options.includeCheckpoints ?? false,
      entriesGoneThrough: () => this.writer.entriesGoneThrough,
      since,
      follow
    }
    const frames = (): AsyncGenerator<FrameItem> => readFrames(this.io, this.dir, this.writer.segments, range)
    const chunks = new ChunkPool()
    // Followers share the encoding of the newest records; a bounded read encodes its own.
    const shared = follow === undefined ? undefined : this.followed
    return {
      caughtUp: () => follow?.waiting ?? false,
      checkpoint,
      lastSeq,
      records: readRecords(frames()),
      ndjson: readNdjson(frames(), chunks, shared?.ndjson),
      msgpack: readMsgpack(frames(), chunks, shared?.msgpack),
      recycle: chunk => { chunks.give(chunk) }
    }
  }

  async waitForRecords (options: WaitOptions): Promise<void> {
    const after = options.after ?? this.checkpointSeq
    assertSeq('after', after)
    const { signal } = options
    let done = false
    let timer: NodeJS.Timeout | undefined
    let end: (() => void) | undefined
    const over = new Promise<void>(resolve => {
      end = () => {
        done = true
        resolve()
      }
      timer = setTimeout(end, options.timeoutMs)
      signal?.addEventListener('abort', end, { once: true })
    })
    try {
      for (;;) {
        // Taken before the log is looked at, so that a commit in between is not missed.
        const changed = this.commits.next()
        // An entry record after `after`; checkpoint and consumer records, which reads leave out, do not
        // answer a long poll. Past the last seq, the read that follows says why.
        if (done || after > this.lastSeq || this.queue.lastEntrySeq > after || signal?.aborted === true || this.stopped() !== undefined) return
        await Promise.race([changed, over])
      }
    } finally {
      clearTimeout(timer)
      if (end !== undefined) signal?.removeEventListener('abort', end)
    }
  }

  status (): WalStatus {
    const segments = this.writer.segments.map(s => ({ name: s.name, firstSeq: s.baseSeq, lastSeq: s.lastSeq, bytes: s.bytes }))
    return {
      lastSeq: this.lastSeq,
      checkpoint: this.checkpointSeq,
      state: this.state,
      durability: this.settings.durability,
      segments,
      bytes: segments.reduce((sum, s) => sum + s.bytes, 0),
      queuedBytes: this.queue.queuedBytes,
      queueLimitBytes: this.settings.queueLimitBytes,
      openTransactions: this.transactions.count,
      diskFull: this.space.belowMinimum,
      freeBytes: this.space.knownFreeBytes,
      idempotencyKeys: this.keys.size
    }
  }

  /** Refuses new appends, waits until everything queued is durable, and releases the directory. */
  async close (): Promise<void> {
    if (this.queue.isClosed) throw new LogClosedError()
    this.transactions.clear()
    await this.queue.close()
    this.drained = true
    this.commits.notify()
    try {
      await this.writer.close()
    } finally {
      this.lock.release()
    }
  }
}
