// The JetStream backend: the `Log` interface over one NATS JetStream stream. Each vecwal record is
// one message carrying the same payload bytes as a segment frame (src/payload), its record type
// in the Vecwal-Type header; the vecwal seq is the stream sequence. Entries and batches go to the
// subject vecwal.<stream>.records, checkpoints to vecwal.<stream>.checkpoint, so that the current
// checkpoint is the last message of its subject: one owner of that fact, the stream, read back in
// one request by any instance (a KV bucket beside it would be a second copy, written apart).
//
// Seqs stay gap-free and in commit order because the stream holds only vecwal's messages
// (its subjects are vecwal's), it denies deleting single messages (deny_delete), and retention
// only ever purges a prefix. A 2xx means the publish ack: the message is stored by a quorum of
// the stream's replicas (README: what that means on disk). Nothing an instance holds is needed by
// another, except the transactions it stages.
import fs from 'node:fs'
import { performance } from 'node:perf_hooks'
import { connect, credsAuthenticator, headers, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node'
import {
  DiscardPolicy, JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, RetentionPolicy, StorageType,
  type JetStreamClient, type JetStreamManager, type StreamConfig, type StreamInfo
} from '@nats-io/jetstream'
import { pino, type Logger } from 'pino'
import { opCounts, type EntryInput } from '../entry.js'
import {
  BackendUnavailableError, CheckpointAheadError, CheckpointBackwardsError, InvalidArgumentError, LogClosedError, OpenStepError,
  QueueFullError, RangeAheadError, RangeGoneError, RecordTooLargeError
} from '../errors.js'
import type { CheckpointResult, Log, LogObserver, LogRead, LogState, LogStatus, ReadOptions } from '../log.js'
import { encodeBatch, encodeCheckpoint, encodeEntry, type EncodedPayload } from '../payload/payload.js'
import type { RecordBytes } from '../records/record-bytes.js'
import { checkRecordBody } from '../records/record-shape.js'
import { TransactionManager, type TransactionLimits } from '../transactions.js'
import { messageRecord, readStream, streamMsgpack, streamNdjson, streamRecords, TYPE_HEADER, unavailableOnError, type StreamRange } from './stream-reader.js'

export interface JetStreamOptions {
  /** NATS URLs, e.g. nats://nats-1:4222. */
  servers: string[]
  /** The stream's name: created with the settings below if it does not exist. */
  stream: string
  /** Replicas of the stream when this creates it; an existing stream must have as many. */
  replicas?: number
  /** How long a publish waits for its ack, and a request of the JetStream API for its answer. */
  timeoutMs?: number
  /** Bytes of publishes awaiting their acks, at most; past it, appends are refused (503). */
  queueLimitBytes?: number
  transactions?: Partial<TransactionLimits>
  /** A NATS credentials file (JWT and NKey seed). */
  credsFile?: string
  user?: string
  pass?: string
  token?: string
  /** A CA file to verify the servers' TLS certificates with (and to require TLS). */
  tlsCaFile?: string
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>
  observer?: LogObserver
}

export const JETSTREAM_DEFAULTS = {
  replicas: 3,
  timeoutMs: 5000,
  queueLimitBytes: 64 * 1024 * 1024,
  transactions: { maxBytes: 64 * 1024 * 1024, maxTotalBytes: 256 * 1024 * 1024, idleMs: 60_000 }
}

/** How often the stream's state is asked for, so that other instances' writes and checkpoints show here. */
const STATE_POLL_MS = 1000
/** A fetch may bring this many bytes past the largest message: its subject and headers. */
const MESSAGE_OVERHEAD_BYTES = 64 * 1024
/** Bytes one fetch of a read may bring at least. */
const MIN_FETCH_BYTES = 4 * 1024 * 1024

/** The subjects of a stream's messages. */
export function streamSubjects (stream: string): { records: string, checkpoint: string, all: string } {
  return { records: `vecwal.${stream}.records`, checkpoint: `vecwal.${stream}.checkpoint`, all: `vecwal.${stream}.>` }
}

function assertSeq (name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError(name, value)
}

function connectionOptions (options: JetStreamOptions): NodeConnectionOptions {
  return {
    servers: options.servers,
    name: 'vecwal',
    // A cluster that is away comes back: publishes meanwhile time out (503) and the log stays open.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    timeout: options.timeoutMs ?? JETSTREAM_DEFAULTS.timeoutMs,
    ...(options.credsFile === undefined ? {} : { authenticator: credsAuthenticator(fs.readFileSync(options.credsFile)) }),
    ...(options.user === undefined ? {} : { user: options.user, pass: options.pass }),
    ...(options.token === undefined ? {} : { token: options.token }),
    ...(options.tlsCaFile === undefined ? {} : { tls: { caFile: options.tlsCaFile } })
  }
}

function isWrongLastSequence (err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence
}

export class JetStreamLog implements Log {
  readonly transactions: TransactionManager
  private closed = false
  private known: { lastSeq: number, firstSeq: number, bytes: number }
  private checkpointState: { checkpoint: number, recordSeq: number }
  /** The highest checkpoint asked of this instance, so that two concurrent ones cannot land out of order. */
  private queuedCheckpoint: number
  /** Checkpoints of this instance, one after another (each expects the last one's record). */
  private checkpoints: Promise<unknown> = Promise.resolve()
  private queued = 0
  private readonly inFlight = new Set<Promise<unknown>>()
  private readonly poll: NodeJS.Timeout
  private readonly subjects: ReturnType<typeof streamSubjects>

  private constructor (
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly settings: { timeoutMs: number, queueLimitBytes: number },
    private readonly logger: Pick<Logger, 'info' | 'warn' | 'error'>,
    private readonly observer: LogObserver,
    transactionLimits: TransactionLimits,
    state: { lastSeq: number, firstSeq: number, bytes: number },
    checkpoint: { checkpoint: number, recordSeq: number }
  ) {
    this.subjects = streamSubjects(stream)
    this.known = state
    this.checkpointState = checkpoint
    this.queuedCheckpoint = checkpoint.checkpoint
    this.transactions = new TransactionManager(transactionLimits, async (entries, txId) => await this.appendBatch(entries, txId), () => { this.assertOpen() })
    this.poll = setInterval(() => { this.refresh().catch(() => {}) }, STATE_POLL_MS)
    this.poll.unref()
  }

  /** Connects, creates the stream if it does not exist (or checks it if it does), reads its state. */
  static async open (options: JetStreamOptions): Promise<JetStreamLog> {
    const logger = options.logger ?? pino({ enabled: false })
    const timeoutMs = options.timeoutMs ?? JETSTREAM_DEFAULTS.timeoutMs
    let nc: NatsConnection
    try {
      nc = await connect(connectionOptions(options))
    } catch (err) {
      throw new OpenStepError(`reach the NATS servers ${options.servers.join(', ')}`, err)
    }
    try {
      const jsm = await jetstreamManager(nc, { timeout: timeoutMs })
      await settled(timeoutMs, async () => { await ensureStream(jsm, options.stream, options.replicas ?? JETSTREAM_DEFAULTS.replicas) })
      const info = await settled(timeoutMs, async () => await streamWithLeader(jsm, options.stream, timeoutMs))
      const log = new JetStreamLog(
        nc, jetstream(nc, { timeout: timeoutMs }), jsm, options.stream,
        { timeoutMs, queueLimitBytes: options.queueLimitBytes ?? JETSTREAM_DEFAULTS.queueLimitBytes },
        logger, options.observer ?? {},
        { ...JETSTREAM_DEFAULTS.transactions, ...options.transactions },
        { lastSeq: info.state.last_seq, firstSeq: Math.max(1, info.state.first_seq), bytes: info.state.bytes },
        await lastCheckpoint(jsm, options.stream)
      )
      logger.info({ stream: options.stream, servers: options.servers, lastSeq: log.lastSeq, checkpoint: log.checkpointState.checkpoint }, 'log opened on JetStream')
      return log
    } catch (err) {
      await nc.close().catch(() => {})
      if (err instanceof OpenStepError) throw err
      throw new OpenStepError(`open the JetStream stream ${options.stream}`, err)
    }
  }

  get lastSeq (): number {
    return this.known.lastSeq
  }

  get state (): LogState {
    // Never failed: the instance holds nothing whose loss could break the log (seqs are the
    // stream's), so an unanswered publish is refused (WAL_UNAVAILABLE) and the log goes on.
    return this.closed ? 'closed' : 'ok'
  }

  private assertOpen (): void {
    if (this.closed) throw new LogClosedError()
  }

  async append (entry: EntryInput): Promise<number> {
    this.assertOpen()
    const seq = await this.publish(encodeEntry(entry), this.subjects.records)
    this.observer.appended?.(entry.op, 1)
    return seq
  }

  async appendBatch (entries: readonly EntryInput[], txId?: string): Promise<number> {
    this.assertOpen()
    const seq = await this.publish(encodeBatch(entries, txId), this.subjects.records)
    const { appended } = this.observer
    if (appended !== undefined) for (const [op, count] of opCounts(entries)) appended(op, count)
    return seq
  }

  /**
   * Publishes one record and resolves with its stream seq once a quorum stored it. Any number are
   * in flight at once (the pipelining that stands for group commit), up to queueLimitBytes.
   */
  private async publish (payload: EncodedPayload, subject: string, expectLastSubjectSeq?: number): Promise<number> {
    const bytes = payload.bytes.length
    const maxPayload = this.nc.info?.max_payload ?? Number.POSITIVE_INFINITY
    if (bytes > maxPayload) throw new RecordTooLargeError(bytes, maxPayload)
    if (this.queued + bytes > this.settings.queueLimitBytes) throw new QueueFullError(this.settings.queueLimitBytes)
    const h = headers()
    h.set(TYPE_HEADER, String(payload.type))
    const started = performance.now()
    this.queued += bytes
    const publishing = this.js.publish(subject, payload.bytes, {
      headers: h,
      timeout: this.settings.timeoutMs,
      ...(expectLastSubjectSeq === undefined ? {} : { expect: { lastSubjectSequence: expectLastSubjectSeq } })
    })
    this.inFlight.add(publishing)
    let seq: number
    try {
      seq = (await publishing).seq
    } catch (err) {
      if (isWrongLastSequence(err)) throw err
      throw new BackendUnavailableError('the NATS cluster did not store the record (no quorum, an election, or no answer in time)', err)
    } finally {
      this.queued -= bytes
      this.inFlight.delete(publishing)
    }
    if (seq > this.known.lastSeq) this.known.lastSeq = seq
    this.observer.synced?.((performance.now() - started) / 1000)
    this.observer.committed?.(1, bytes)
    return seq
  }

  /**
   * Publishes a checkpoint record, expecting the checkpoint subject's last message to be the one
   * this instance knows: if another instance checkpointed meanwhile, the state is read again and
   * the rules checked against it. Then purges the stream below the checkpoint.
   */
  async checkpoint (seq: number = this.lastSeq): Promise<CheckpointResult> {
    assertSeq('checkpoint', seq)
    this.assertOpen()
    if (seq < this.queuedCheckpoint) throw new CheckpointBackwardsError(seq, this.queuedCheckpoint)
    // Another instance may have stored it since this one last asked the stream.
    if (seq > this.lastSeq) await unavailableOnError('reading the stream\'s state', async () => { await this.refresh() })
    if (seq > this.lastSeq) throw new CheckpointAheadError(seq, this.lastSeq)
    if (seq < this.queuedCheckpoint) throw new CheckpointBackwardsError(seq, this.queuedCheckpoint)
    this.queuedCheckpoint = seq
    const landing = this.checkpoints.then(async () => await this.landCheckpoint(seq))
    this.checkpoints = landing.catch(() => {})
    return await landing
  }

  private async landCheckpoint (seq: number): Promise<CheckpointResult> {
    let recordSeq: number | undefined
    while (recordSeq === undefined) {
      if (seq < this.checkpointState.checkpoint) throw new CheckpointBackwardsError(seq, this.checkpointState.checkpoint)
      try {
        recordSeq = await this.publish(encodeCheckpoint(seq), this.subjects.checkpoint, this.checkpointState.recordSeq)
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err
        this.checkpointState = await unavailableOnError('reading the last checkpoint', async () => await lastCheckpoint(this.jsm, this.stream))
      }
    }
    this.checkpointState = { checkpoint: seq, recordSeq }
    return { checkpoint: seq, seq: recordSeq, deletedSegments: await this.purgeCovered(seq) }
  }

  /**
   * Purges the messages the checkpoint covers. The checkpoint is stored by now, so a failed purge
   * is reported but fails nothing: the next checkpoint purges them.
   */
  private async purgeCovered (checkpoint: number): Promise<number> {
    // Checkpoint 0 covers nothing, and a purge up to seq 1 is no no-op: nats-server (2.9.10 at
    // least) takes it as a purge of the whole stream.
    if (checkpoint === 0) return 0
    try {
      const { purged } = await this.jsm.streams.purge(this.stream, { seq: checkpoint + 1 })
      if (checkpoint + 1 > this.known.firstSeq) this.known.firstSeq = checkpoint + 1
      return purged
    } catch (err) {
      this.logger.error({ err, checkpoint }, 'retention could not purge the stream below the checkpoint')
      return 0
    }
  }

  read (options: ReadOptions = {}): LogRead {
    const after = options.after ?? this.checkpointState.checkpoint
    assertSeq('after', after)
    if (options.limit !== undefined && !(Number.isSafeInteger(options.limit) && options.limit >= 1)) throw new InvalidArgumentError('limit', options.limit)
    const lastSeq = this.lastSeq
    if (after > lastSeq) throw new RangeAheadError(after, lastSeq)
    if (after + 1 < this.known.firstSeq) throw new RangeGoneError(after, this.known.firstSeq)
    const range: StreamRange = {
      from: after + 1,
      to: lastSeq,
      limit: options.limit ?? Number.POSITIVE_INFINITY,
      includeCheckpoints: options.includeCheckpoints ?? false
    }
    const maxPayload = this.nc.info?.max_payload ?? 0
    const source = { js: this.js, stream: this.stream, fetchBytes: Math.max(MIN_FETCH_BYTES, maxPayload + MESSAGE_OVERHEAD_BYTES), timeoutMs: this.settings.timeoutMs }
    const messages = (): AsyncGenerator<RecordBytes> => readStream(source, range)
    return {
      checkpoint: this.checkpointState.checkpoint,
      lastSeq,
      records: streamRecords(this.stream, messages()),
      ndjson: streamNdjson(this.stream, messages()),
      msgpack: streamMsgpack(this.stream, messages())
    }
  }

  /** What other instances wrote and checkpointed, learnt from the stream. */
  private async refresh (): Promise<void> {
    const info = await this.jsm.streams.info(this.stream)
    const { state } = info
    if (state.last_seq > this.known.lastSeq) this.known.lastSeq = state.last_seq
    this.known.firstSeq = Math.max(this.known.firstSeq, state.first_seq)
    this.known.bytes = state.bytes
    const checkpoint = await lastCheckpoint(this.jsm, this.stream)
    if (checkpoint.recordSeq > this.checkpointState.recordSeq) this.checkpointState = checkpoint
  }

  status (): LogStatus {
    return {
      lastSeq: this.lastSeq,
      checkpoint: this.checkpointState.checkpoint,
      state: this.state,
      durability: 'quorum',
      bytes: this.known.bytes,
      queuedBytes: this.queued,
      openTransactions: this.transactions.count,
      diskFull: false
    }
  }

  /** Refuses new appends, waits for the acks of those in flight, and closes the connection. */
  async close (): Promise<void> {
    this.assertOpen()
    this.closed = true
    clearInterval(this.poll)
    this.transactions.clear()
    await Promise.allSettled([...this.inFlight, this.checkpoints])
    await this.nc.drain().catch(async () => { await this.nc.close() })
  }

}

/** The stream's settings: only vecwal's subjects, no single deletions, file storage. */
function streamConfig (stream: string, replicas: number): Partial<StreamConfig> & { name: string } {
  return {
    name: stream,
    subjects: [streamSubjects(stream).all],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: replicas,
    deny_delete: true,
    deny_purge: false,
    allow_direct: true
  }
}

async function ensureStream (jsm: JetStreamManager, stream: string, replicas: number): Promise<void> {
  let existing
  try {
    existing = await jsm.streams.info(stream)
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err
    await jsm.streams.add(streamConfig(stream, replicas))
    return
  }
  const { config } = existing
  if (config.num_replicas !== replicas) throw new Error(`stream ${stream} has ${config.num_replicas} replicas, not the ${replicas} configured`)
  if (!config.subjects.includes(streamSubjects(stream).all) || config.subjects.length !== 1) throw new Error(`stream ${stream} takes subjects ${config.subjects.join(', ')}, not only ${streamSubjects(stream).all}`)
  if (!config.deny_delete) throw new Error(`stream ${stream} allows deleting single messages, which would leave gaps in the seqs`)
}

/** How long opening waits between tries while the cluster answers that it is settling. */
const SETTLE_RETRY_MS = 250

/**
 * Runs `call`, again while the cluster answers that JetStream is temporarily unavailable (an
 * election under way after a node restarted), for at most `timeoutMs`.
 */
async function settled<T> (timeoutMs: number, call: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await call()
    } catch (err) {
      const unavailable = err instanceof JetStreamApiError && err.status === 503
      if (!unavailable || Date.now() > deadline) throw err
    }
    await new Promise(resolve => setTimeout(resolve, SETTLE_RETRY_MS))
  }
}

/** How often a stream just created is asked whether its replicas have elected a leader. */
const LEADER_POLL_MS = 50

/** The stream's info once it has a leader (a stream of one replica always has), waiting at most `timeoutMs`. */
async function streamWithLeader (jsm: JetStreamManager, stream: string, timeoutMs: number): Promise<StreamInfo> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const info = await jsm.streams.info(stream)
    if (info.cluster === undefined || (info.cluster.leader ?? '') !== '' || Date.now() > deadline) return info
    await new Promise(resolve => setTimeout(resolve, LEADER_POLL_MS))
  }
}

/** The current checkpoint: the last checkpoint record's, or 0 if there is none. */
async function lastCheckpoint (jsm: JetStreamManager, stream: string): Promise<{ checkpoint: number, recordSeq: number }> {
  const subject = streamSubjects(stream).checkpoint
  let message
  try {
    message = await jsm.streams.getMessage(stream, { last_by_subj: subject })
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return { checkpoint: 0, recordSeq: 0 }
    throw err
  }
  if (message === null) return { checkpoint: 0, recordSeq: 0 }
  const record = messageRecord(stream, message.seq, message.time.getTime(), message.header.get(TYPE_HEADER), message.data)
  const shape = checkRecordBody(record)
  if (shape?.op !== 'checkpoint') throw new Error(`stream ${stream}, seq ${message.seq}: the last message of ${subject} is not a checkpoint record`)
  return { checkpoint: shape.checkpoint, recordSeq: message.seq }
}
