// Named consumers of a segment log, as its records state them (src/consumer-state.ts: how they
// fold): the opener folds what retention kept, the registry folds what it writes.
import type { CheckpointResult, Consumers, ConsumerStatus } from '../log.js'
import {
  assertSeq, CheckpointAheadError, CheckpointBackwardsError, ConsumerExistsError, ConsumerLimitError, ConsumerNotFoundError,
  RangeAheadError, RangeGoneError
} from '../errors.js'
import {
  applyConsumerChange, assertConsumerName, DEFAULT_CONSUMER, lowestCheckpoint, MAX_CONSUMERS, summarize, type ConsumerState, type ConsumerSummary
} from '../consumer-state.js'
import type { Placed } from './group-commit.js'
import type { SegmentInfo } from './open-plan.js'
import { encodeCheckpoint, encodeConsumer, type EncodedPayload } from '../payload/payload.js'
import { bytesAfter } from './seq-marks.js'

/** What the registry needs of the log: a place to write records, the log's extent, and retention. */
export interface ConsumerHost {
  place: (payload: EncodedPayload) => Promise<Placed>
  readonly lastSeq: number
  /** The seq of the last entry record: lag counts entry records only, not the log's own. */
  readonly lastEntrySeq: number
  /** Oldest first; the last one is being written. */
  readonly segments: readonly SegmentInfo[]
  /** The seq of the last entry record retention deleted (SegmentWriter.entriesGoneThrough). */
  readonly entriesGoneThrough: number
  /** Runs retention after a consumer moved or went. */
  retain: () => Promise<void>
  /** Segments retention deleted since the log opened. */
  deletedSegments: () => number
}

/**
 * The consumers of a segment log. Every change is written as a record before it is applied, one
 * change at a time (`serial`), so that the records' order is the order the changes were made in
 * and a checkpoint is never stated after a later one.
 */
export class ConsumerRegistry implements Consumers {
  private tail: Promise<unknown> = Promise.resolve()

  constructor (private readonly host: ConsumerHost, private readonly states: Map<string, ConsumerState>) {}

  /** Runs `step` after every consumer change before it: retention's carrying forward is one. */
  serial<T> (step: () => Promise<T>): Promise<T> {
    const run = this.tail.then(step)
    this.tail = run.catch(() => {})
    return run
  }

  /** The consumer's checkpoint, if it exists. */
  checkpointOf (name: string): number | undefined {
    return this.states.get(name)?.checkpoint
  }

  /** The lowest checkpoint of all consumers, undefined if there is none. */
  lowest (): number | undefined {
    return lowestCheckpoint(this.states)
  }

  /** The names of the consumers whose checkpoint lies below the last entry deleted: entries they have not read are gone. */
  passed (): string[] {
    return [...this.states].filter(([, state]) => state.checkpoint < this.host.entriesGoneThrough).map(([name]) => name)
  }

  async create (name: string, after?: number): Promise<{ consumer: ConsumerStatus, created: boolean }> {
    assertConsumerName(name)
    if (after !== undefined) assertSeq('after', after)
    return await this.serial(async () => {
      const known = this.states.get(name)
      if (known !== undefined) {
        if (after !== undefined && after !== known.start) throw new ConsumerExistsError(name, known.start, after)
        return { consumer: this.status(name, known), created: false }
      }
      if (this.states.size >= MAX_CONSUMERS) throw new ConsumerLimitError(MAX_CONSUMERS)
      const oldest = this.host.segments[0].baseSeq
      const start = after ?? oldest - 1
      if (start > this.host.lastSeq) throw new RangeAheadError(start, this.host.lastSeq)
      if (start < this.host.entriesGoneThrough) throw new RangeGoneError(start, oldest)
      const state = { start, checkpoint: start, checkpointedAt: 0 }
      const { seq } = await this.host.place(encodeConsumer({ name, event: 'create', ...state }))
      const created = { ...state, stateSeq: seq }
      this.states.set(name, created)
      return { consumer: this.status(name, created), created: true }
    })
  }

  list (): ConsumerStatus[] {
    return summarize(this.states, this.host.entriesGoneThrough).map(summary => this.withLag(summary))
  }

  get (name: string): ConsumerStatus {
    const state = this.states.get(name)
    if (state === undefined) throw new ConsumerNotFoundError(name)
    return this.status(name, state)
  }

  async delete (name: string): Promise<void> {
    await this.serial(async () => {
      const state = this.states.get(name)
      if (state === undefined) throw new ConsumerNotFoundError(name)
      await this.host.place(encodeConsumer({ name, event: 'delete', start: state.start, checkpoint: state.checkpoint, checkpointedAt: state.checkpointedAt }))
      this.states.delete(name)
    })
    // It may have been the one holding retention back.
    await this.host.retain()
  }

  /**
   * Records that the consumer holds everything up to `seq` (default: the last seq): never back,
   * never past the last seq. The consumer `default` comes into being at its first checkpoint.
   */
  async checkpoint (name: string, seq?: number): Promise<CheckpointResult> {
    assertConsumerName(name)
    if (seq !== undefined) assertSeq('checkpoint', seq)
    const moved = await this.serial(async () => {
      const known = this.states.get(name)
      if (known === undefined && name !== DEFAULT_CONSUMER) throw new ConsumerNotFoundError(name)
      // `default` comes into being here, and counts against the cap like any other.
      if (known === undefined && this.states.size >= MAX_CONSUMERS) throw new ConsumerLimitError(MAX_CONSUMERS)
      const to = seq ?? this.host.lastSeq
      const current = known?.checkpoint ?? 0
      if (to < current) throw new CheckpointBackwardsError(to, current)
      if (to > this.host.lastSeq) throw new CheckpointAheadError(to, this.host.lastSeq)
      const placed = await this.host.place(encodeCheckpoint(to, name === DEFAULT_CONSUMER ? undefined : name))
      applyConsumerChange(this.states, { seq: placed.seq, name, event: 'checkpoint', start: 0, checkpoint: to, checkpointedAt: placed.timestamp })
      return { checkpoint: to, seq: placed.seq, deletedBefore: this.host.deletedSegments() }
    })
    // Retention the log's growth set off may have run first, and deleted what this checkpoint let go.
    await this.host.retain()
    return { checkpoint: moved.checkpoint, seq: moved.seq, deletedSegments: this.host.deletedSegments() - moved.deletedBefore }
  }

  /**
   * Writes a carry record for every consumer whose state only records before `keptFrom` state,
   * so that deleting those records loses no consumer. Call inside `serial`.
   */
  async carryForward (keptFrom: number): Promise<void> {
    const carried = [...this.states].filter(([, state]) => state.stateSeq < keptFrom)
    await Promise.all(carried.map(async ([name, state]) => {
      const { seq } = await this.host.place(encodeConsumer({ name, event: 'carry', start: state.start, checkpoint: state.checkpoint, checkpointedAt: state.checkpointedAt }))
      state.stateSeq = seq
    }))
  }

  private status (name: string, state: ConsumerState): ConsumerStatus {
    const [summary] = summarize(new Map([[name, state]]), this.host.entriesGoneThrough)
    return this.withLag(summary)
  }

  private withLag (summary: ConsumerSummary): ConsumerStatus {
    const { lastEntrySeq, segments } = this.host
    return { ...summary, lagSeqs: Math.max(lastEntrySeq - summary.checkpoint, 0), lagBytes: bytesAfter(segments, summary.checkpoint) }
  }
}
