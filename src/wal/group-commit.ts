// Group commit: every append waits in one queue; the writer takes all that is waiting (up to a byte
// cap), writes it at once (pwritev) and syncs it with one fdatasync, and only then resolves each
// append with its seq. While one batch is being synced the next one forms, so under load an fsync is shared by
// as many appends as arrive during it, and with no load an append waits for no timer.
import { LogClosedError, LogFailedError, QueueFullError, RecordTooLargeError, SegmentUnavailableError, SeqMismatchError } from '../errors.js'
import { isBookkeeping, MAX_PAYLOAD_BYTES, MAX_RECORDS_PER_WRITE, RECORD_HEADER_BYTES } from './format.js'
import type { EncodedPayload } from '../payload/payload.js'
import type { SegmentWriter } from './segment-writer.js'

export interface GroupCommitOptions {
  /** Bytes that may wait or be in flight at once; past it appends are refused at once. */
  queueLimitBytes: number
  /** Bytes one batch takes at most (a larger single record goes alone). */
  maxBatchBytes: number
  /** Records one batch takes at most; 1 turns group commit off (a benchmark's reference). */
  maxBatchRecords: number
  /** Told of each committed batch. */
  onCommit?: (records: number, bytes: number) => void
  /** Told after each batch, whatever became of it: followers of the log look again. */
  onSettled?: () => void
  /** The wall clock, in ms since the epoch; tests may replace it. */
  clock?: () => number
  /** The seq of the last durable entry record when the queue starts (the opener's scan found it). */
  lastEntrySeq?: number
}

/** Where a record went: its seq, and the timestamp its frame holds. */
export interface Placed {
  seq: number
  timestamp: number
}

interface Waiting {
  payload: EncodedPayload
  size: number
  /** The last seq the record must follow, or undefined. */
  expectedLastSeq: number | undefined
  resolve: (placed: Placed) => void
  reject: (err: Error) => void
}

export class GroupCommitQueue {
  private waiting: Waiting[] = []
  private bytes = 0
  private draining: Promise<void> | undefined
  private failure: Error | undefined
  private closed = false

  private readonly clock: () => number
  private entrySeq: number

  constructor (private readonly writer: SegmentWriter, private readonly options: GroupCommitOptions) {
    this.clock = options.clock ?? Date.now
    this.entrySeq = options.lastEntrySeq ?? 0
  }

  /** The seq of the last durable entry record (an entry or batch, not a checkpoint or consumer record), 0 if the log holds none. */
  get lastEntrySeq (): number {
    return this.entrySeq
  }

  /** Bytes queued or being written. */
  get queuedBytes (): number {
    return this.bytes
  }

  get failed (): Error | undefined {
    return this.failure
  }

  /** Closed: it takes no more appends (what it held is made durable first). The log's lifecycle is this. */
  get isClosed (): boolean {
    return this.closed
  }

  /** Resolves with the record's seq once it is durable (see place). */
  async append (payload: EncodedPayload, expectedLastSeq?: number): Promise<number> {
    return (await this.place(payload, expectedLastSeq)).seq
  }

  /**
   * Resolves with the record's seq and timestamp once it is durable. With `expectedLastSeq`,
   * refuses it with SeqMismatchError unless the seq it would get follows that one: checked as its
   * batch is taken, in queue order, so of conditional appends expecting the same seq only the
   * first can pass.
   */
  place (payload: EncodedPayload, expectedLastSeq?: number): Promise<Placed> {
    if (this.failure !== undefined) return Promise.reject(new LogFailedError(this.failure))
    if (this.closed) return Promise.reject(new LogClosedError())
    if (payload.bytes.length > MAX_PAYLOAD_BYTES) {
      return Promise.reject(new RecordTooLargeError(payload.bytes.length, MAX_PAYLOAD_BYTES))
    }
    const size = RECORD_HEADER_BYTES + payload.bytes.length
    // An empty queue takes any record, so one larger than the limit is not refused forever.
    if (this.bytes > 0 && this.bytes + size > this.options.queueLimitBytes) {
      return Promise.reject(new QueueFullError(this.options.queueLimitBytes))
    }
    this.bytes += size
    return new Promise((resolve, reject) => {
      this.waiting.push({ payload, size, expectedLastSeq, resolve, reject })
      this.draining ??= this.drain()
    })
  }

  /** Refuses new appends and resolves once everything already queued is durable (or failed). */
  async close (): Promise<void> {
    this.closed = true
    await this.draining
  }

  private async drain (): Promise<void> {
    // Let appends made in the same tick join the first batch.
    await Promise.resolve()
    while (this.waiting.length > 0) {
      const batch = this.takeBatch()
      const payloads = batch.map(w => w.payload)
      const bytes = batch.reduce((sum, w) => sum + w.size, 0)
      try {
        const { firstSeq, timestamp } = await this.writer.append(payloads, this.clock())
        this.bytes -= bytes
        this.options.onCommit?.(batch.length, bytes)
        this.noteEntries(batch, firstSeq, batch.length)
        for (let i = 0; i < batch.length; i++) batch[i].resolve({ seq: firstSeq + i, timestamp })
      } catch (err) {
        this.bytes -= bytes
        if (err instanceof SegmentUnavailableError) {
          // Nothing was written for the records past the rotation: refuse them and go on. Those
          // before it are durable and get their seqs.
          const durable = err.durableRecords
          if (durable > 0) this.options.onCommit?.(durable, batch.slice(0, durable).reduce((sum, w) => sum + w.size, 0))
          this.noteEntries(batch, err.firstSeq, durable)
          for (let i = 0; i < batch.length; i++) {
            if (i < durable) batch[i].resolve({ seq: err.firstSeq + i, timestamp: this.writer.lastTimestamp })
            else batch[i].reject(err)
          }
          continue
        }
        // The kernel may have dropped the dirty pages of a failed fsync: retrying could report
        // success for bytes that are gone. Fail this batch, everything queued behind it, and
        // every append from now on, until the log is reopened from what is on disk.
        this.failure = err as Error
        const failed = new LogFailedError(err)
        for (const w of batch) w.reject(failed)
        for (const w of this.waiting) w.reject(failed)
        this.waiting = []
        this.bytes = 0
      } finally {
        this.options.onSettled?.()
      }
    }
    this.draining = undefined
  }

  /** The first `durable` records of `batch`, from `firstSeq` on, are durable: the last entry among them is the last entry record. */
  private noteEntries (batch: readonly Waiting[], firstSeq: number, durable: number): void {
    for (let i = durable - 1; i >= 0; i--) {
      if (!isBookkeeping(batch[i].payload.type)) {
        this.entrySeq = firstSeq + i
        return
      }
    }
  }

  private takeBatch (): Waiting[] {
    // The seq of the last entry record before the one being placed: the condition of a
    // conditional append. Checkpoint and consumer records, the log's own, do not count.
    let lastEntrySeq = this.entrySeq
    let count = 0
    let bytes = 0
    const { maxBatchBytes } = this.options
    // A batch is written with one write per segment, and a frame's write index is a u24.
    const maxBatchRecords = Math.min(this.options.maxBatchRecords, MAX_RECORDS_PER_WRITE)
    while (count < this.waiting.length && count < maxBatchRecords) {
      const waiting = this.waiting[count]
      const { size, expectedLastSeq } = waiting
      if (count > 0 && bytes + size > maxBatchBytes) break
      if (expectedLastSeq !== undefined && expectedLastSeq !== lastEntrySeq) {
        this.waiting.splice(count, 1)
        this.bytes -= size
        waiting.reject(new SeqMismatchError(expectedLastSeq, lastEntrySeq))
        continue
      }
      // Its seq is assigned here: the one after everything written and taken before it.
      if (!isBookkeeping(waiting.payload.type)) lastEntrySeq = this.writer.lastSeq + count + 1
      bytes += size
      count++
    }
    return this.waiting.splice(0, count)
  }
}
