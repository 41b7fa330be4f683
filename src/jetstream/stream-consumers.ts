// Named consumers on JetStream. Each consumer's state is the last message of a subject of its own,
// vecwal.<stream>.consumer.<name in hex> (hex: a name's `.` would otherwise split the subject's
// tokens): the engine's checkpoint record (type 5) or consumer record (type 6), the same payload
// bytes, so that the last message alone gives the state to any instance, in one request. A
// checkpoint record does not hold the consumer's start, so every message of the subject carries it
// in the Vecwal-Consumer-Start header. Every publish on a subject expects the subject's last seq
// this instance knows: two instances changing one consumer cannot both win, and the loser reads
// the subject again and checks its rules against what won.
import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager, type StoredMsg } from '@nats-io/jetstream'
import {
  applyConsumerChange, assertConsumerName, consumerChange, DEFAULT_CONSUMER, lowestCheckpoint, MAX_CONSUMERS, summarize,
  type ConsumerState, type ConsumerSummary
} from '../consumer-state.js'
import {
  assertSeq, CheckpointAheadError, CheckpointBackwardsError, ConsumerExistsError, ConsumerLimitError, ConsumerNotFoundError,
  CorruptRecordError, RangeAheadError, RangeGoneError
} from '../errors.js'
import type { CheckpointResult, Consumers, ConsumerStatus } from '../log.js'
import { encodeCheckpoint, encodeConsumer, type EncodedPayload } from '../payload/payload.js'
import { messageRecord, TYPE_HEADER } from './stream-reader.js'

/** The header restating a consumer's start on each message of its subject. */
const START_HEADER = 'Vecwal-Consumer-Start'

/** The prefix of the consumers' subjects. */
function consumerSubjectPrefix (stream: string): string {
  return `vecwal.${stream}.consumer.`
}

function subjectOf (stream: string, name: string): string {
  return consumerSubjectPrefix(stream) + Buffer.from(name, 'utf8').toString('hex')
}

function nameOf (stream: string, subject: string): string {
  return Buffer.from(subject.slice(consumerSubjectPrefix(stream).length), 'hex').toString('utf8')
}

export function isWrongLastSequence (err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence
}

/** What the consumers need of the log: its extent, a way to publish, and retention. */
export interface ConsumerHost {
  readonly jsm: JetStreamManager
  readonly stream: string
  readonly lastSeq: number
  /** The seq of the last entry record: lag counts entry records only, not the log's own. */
  readonly lastEntrySeq: number
  /** The first seq the stream holds: retention purges only whole prefixes, so everything from it on is there. */
  readonly firstSeq: number
  /** The stream's bytes and messages, as last asked: lag in bytes is estimated from them. */
  readonly extent: { bytes: number, messages: number }
  /** Asks the stream for its extent (another instance may have written). */
  refreshExtent: () => Promise<void>
  /** Publishes a record on `subject` if the subject's last message is `expectLastSubjectSeq` (0: none); its seq. */
  publish: (payload: EncodedPayload, subject: string, expectLastSubjectSeq: number, extraHeaders: Record<string, string>) => Promise<number>
  /** Runs `call`, refusing as WAL_UNAVAILABLE whatever it throws. */
  unavailableOnError: <T>(what: string, call: () => Promise<T>) => Promise<T>
  /** Purges the whole stream below `seq` (at least 2); how many messages went. */
  purgeBelow: (seq: number) => Promise<number>
  /** Retention failed: reported, failing nothing (the checkpoints are stored; the next one purges). */
  retentionFailed: (err: unknown) => void
}

/** A consumer as its subject's last message states it, or a deleted one's subject still there. */
interface Known {
  /** Undefined once the subject's last message deleted it. */
  state?: ConsumerState
  /** The seq of the subject's last message. */
  subjectSeq: number
}

export class StreamConsumers implements Consumers {
  private readonly known = new Map<string, Known>()
  /** Changes of this instance, one after another, retention's among them. */
  private tail: Promise<unknown> = Promise.resolve()

  constructor (private readonly host: ConsumerHost) {}

  private serial<T> (step: () => Promise<T>): Promise<T> {
    const run = this.tail.then(step)
    this.tail = run.catch(() => {})
    return run
  }

  /** The live consumers' states, by name. */
  private states (): Map<string, ConsumerState> {
    const states = new Map<string, ConsumerState>()
    for (const [name, { state }] of this.known) if (state !== undefined) states.set(name, state)
    return states
  }

  checkpointOf (name: string): number | undefined {
    return this.known.get(name)?.state?.checkpoint
  }

  /** Reads every consumer's subject again: what other instances changed shows here. */
  async refresh (): Promise<void> {
    const info = await this.host.jsm.streams.info(this.host.stream, { subjects_filter: `${consumerSubjectPrefix(this.host.stream)}>` })
    const subjects = Object.keys(info.state.subjects ?? {})
    const loaded = await Promise.all(subjects.map(async subject => await this.load(nameOf(this.host.stream, subject))))
    const listed = new Set(subjects.map(subject => nameOf(this.host.stream, subject)))
    // A subject written after the listing is not in it, and stays.
    for (const [name, known] of this.known) if (!listed.has(name) && known.subjectSeq <= info.state.last_seq) this.known.delete(name)
    for (const entry of loaded) if (entry !== undefined) this.learn(entry.name, entry.known)
  }

  /** Takes what a subject says unless this instance knows a later message of it. */
  private learn (name: string, known: Known): void {
    const before = this.known.get(name)
    if (before === undefined || before.subjectSeq <= known.subjectSeq) this.known.set(name, known)
  }

  /** The consumer's subject as its last message (asked of the stream's leader) states it; undefined if it has none. */
  private async load (name: string): Promise<{ name: string, known: Known } | undefined> {
    const subject = subjectOf(this.host.stream, name)
    let message: StoredMsg | null
    try {
      message = await this.host.jsm.streams.getMessage(this.host.stream, { last_by_subj: subject })
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return undefined
      throw err
    }
    if (message === null) return undefined
    return { name, known: this.stateOf(name, message) }
  }

  private stateOf (name: string, message: StoredMsg): Known {
    const record = messageRecord(this.host.stream, message.seq, message.time.getTime(), message.header.get(TYPE_HEADER), message.data)
    const change = consumerChange(record)
    if (change === undefined || change.name !== name) {
      throw new CorruptRecordError(`stream ${this.host.stream}, seq ${message.seq}`, `the last message of consumer ${name}'s subject is not a record of that consumer`)
    }
    const states = new Map<string, ConsumerState>()
    const start = Number(message.header.get(START_HEADER))
    if (change.event === 'checkpoint') states.set(name, { start: Number.isSafeInteger(start) ? start : 0, checkpoint: 0, checkpointedAt: 0, stateSeq: 0 })
    applyConsumerChange(states, change)
    return { state: states.get(name), subjectSeq: message.seq }
  }

  /**
   * Publishes the record `decide` makes of the consumer's state (or answers without one), expecting
   * the subject's last message to be the one known here; if another instance wrote meanwhile, the
   * subject is read again and `decide` asked again. Then the subject is read back: the state is
   * what the stream holds, its checkpoint time the stream's.
   */
  private async change<T> (name: string, decide: (state: ConsumerState | undefined) => { answer: T } | { payload: EncodedPayload, start: number, then: (state: ConsumerState | undefined, seq: number) => T }): Promise<T> {
    const subject = subjectOf(this.host.stream, name)
    // Another instance may have made it since the last poll.
    if (!this.known.has(name)) await this.reload(name)
    for (;;) {
      const known = this.known.get(name)
      const decided = decide(known?.state)
      if ('answer' in decided) return decided.answer
      let seq: number
      try {
        seq = await this.host.publish(decided.payload, subject, known?.subjectSeq ?? 0, { [START_HEADER]: String(decided.start) })
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err
        await this.reload(name)
        continue
      }
      await this.reload(name)
      return decided.then(this.known.get(name)?.state, seq)
    }
  }

  private async reload (name: string): Promise<void> {
    const loaded = await this.host.unavailableOnError(`reading consumer ${name}`, async () => await this.load(name))
    if (loaded === undefined) this.known.delete(name)
    else this.learn(name, loaded.known)
  }

  async create (name: string, after?: number): Promise<{ consumer: ConsumerStatus, created: boolean }> {
    assertConsumerName(name)
    if (after !== undefined) assertSeq('after', after)
    if (after !== undefined && after > this.host.lastSeq) await this.host.unavailableOnError('reading the stream\'s state', async () => { await this.host.refreshExtent() })
    return await this.serial(async () => await this.change<{ consumer: ConsumerStatus, created: boolean }>(name, known => {
      if (known !== undefined) {
        if (after !== undefined && after !== known.start) throw new ConsumerExistsError(name, known.start, after)
        return { answer: { consumer: this.status(name, known), created: false } }
      }
      if (this.states().size >= MAX_CONSUMERS) throw new ConsumerLimitError(MAX_CONSUMERS)
      const oldest = this.host.firstSeq
      const start = after ?? oldest - 1
      if (start > this.host.lastSeq) throw new RangeAheadError(start, this.host.lastSeq)
      if (start + 1 < oldest) throw new RangeGoneError(start, oldest)
      return {
        payload: encodeConsumer({ name, event: 'create', start, checkpoint: start, checkpointedAt: 0 }),
        start,
        then: state => ({ consumer: this.status(name, state ?? { start, checkpoint: start, checkpointedAt: 0, stateSeq: 0 }), created: true })
      }
    }))
  }

  list (): ConsumerStatus[] {
    return summarize(this.states(), this.host.firstSeq - 1).map(summary => this.withLag(summary))
  }

  get (name: string): ConsumerStatus {
    const state = this.known.get(name)?.state
    if (state === undefined) throw new ConsumerNotFoundError(name)
    return this.status(name, state)
  }

  async delete (name: string): Promise<void> {
    await this.serial(async () => {
      await this.change(name, state => {
        if (state === undefined) throw new ConsumerNotFoundError(name)
        return { payload: encodeConsumer({ name, event: 'delete', ...state }), start: state.start, then: () => undefined }
      })
      // It may have been the one holding retention back.
      await this.retain()
    })
  }

  /**
   * Records that the consumer holds everything up to `seq` (default: the last seq): never back,
   * never past the last seq. The consumer `default` comes into being at its first checkpoint.
   */
  async checkpoint (name: string, seq?: number): Promise<CheckpointResult> {
    assertConsumerName(name)
    if (seq !== undefined) assertSeq('checkpoint', seq)
    // Another instance may have stored it since this one last asked the stream.
    if (seq !== undefined && seq > this.host.lastSeq) await this.host.unavailableOnError('reading the stream\'s state', async () => { await this.host.refreshExtent() })
    return await this.serial(async () => {
      const to = seq ?? this.host.lastSeq
      const recordSeq = await this.change(name, state => {
        if (state === undefined && name !== DEFAULT_CONSUMER) throw new ConsumerNotFoundError(name)
        // `default` comes into being here, and counts against the cap like any other.
        if (state === undefined && this.states().size >= MAX_CONSUMERS) throw new ConsumerLimitError(MAX_CONSUMERS)
        const current = state?.checkpoint ?? 0
        if (to < current) throw new CheckpointBackwardsError(to, current)
        if (to > this.host.lastSeq) throw new CheckpointAheadError(to, this.host.lastSeq)
        return { payload: encodeCheckpoint(to, name === DEFAULT_CONSUMER ? undefined : name), start: state?.start ?? 0, then: (_, placed) => placed }
      })
      return { checkpoint: to, seq: recordSeq, deletedSegments: await this.retain() }
    })
  }

  /**
   * Purges the stream below the lowest checkpoint of all consumers, as the stream says they are
   * now. Every consumer whose last message lies below is first carried forward (a consumer
   * record restating it), so that the purge loses none. A consumer another instance creates
   * meanwhile writes past the purge point, which lies at or below the last seq known now.
   * Call inside `serial`.
   */
  private async retain (): Promise<number> {
    try {
      await this.refresh()
      const lowest = lowestCheckpoint(this.states())
      // Checkpoint 0 covers nothing, and a purge below seq 1 is no no-op: nats-server (2.9.10 at
      // least) takes a purge up to seq 1 as one of the whole stream.
      if (lowest === undefined || lowest === 0 || lowest + 1 <= this.host.firstSeq) return 0
      const keptFrom = lowest + 1
      for (const [name, known] of [...this.known]) {
        const { state } = known
        if (state === undefined || known.subjectSeq >= keptFrom) continue
        try {
          await this.host.publish(encodeConsumer({ name, event: 'carry', start: state.start, checkpoint: state.checkpoint, checkpointedAt: state.checkpointedAt }),
            subjectOf(this.host.stream, name), known.subjectSeq, { [START_HEADER]: String(state.start) })
        } catch (err) {
          // Another instance wrote a later state of it, past the purge point.
          if (!isWrongLastSequence(err)) throw err
        }
        await this.reload(name)
      }
      return await this.host.purgeBelow(keptFrom)
    } catch (err) {
      this.host.retentionFailed(err)
      return 0
    }
  }

  private status (name: string, state: ConsumerState): ConsumerStatus {
    const [summary] = summarize(new Map([[name, state]]), this.host.firstSeq - 1)
    return this.withLag(summary)
  }

  /** Lag in bytes is estimated: the stream's mean message size times the messages after the checkpoint. */
  private withLag (summary: ConsumerSummary): ConsumerStatus {
    const { lastEntrySeq } = this.host
    const { bytes, messages } = this.host.extent
    const lagSeqs = Math.max(lastEntrySeq - summary.checkpoint, 0)
    const held = Math.min(lagSeqs, messages)
    return { ...summary, lagSeqs, lagBytes: messages === 0 ? 0 : Math.round(bytes * held / messages) }
  }
}
