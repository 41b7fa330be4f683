// The JetStream backend: the `Log` interface over one NATS JetStream stream. Each vecwal record is
// one message carrying the same payload bytes as a segment frame (src/payload), its record type
// in the Vecwal-Type header; the vecwal seq is the stream sequence. Entries and batches go to the
// subject vecwal.<stream>.records; each consumer's checkpoint and consumer records to a subject of
// its own (stream-consumers.ts), so that its state is the last message of its subject: one owner
// of that fact, the stream, read back in one request by any instance (a KV bucket beside it would
// be a second copy, written apart). Idempotency keys are the messages' Nats-Msg-Id, remembered by
// nats-server for the stream's duplicate window; conditional appends hold on the last entry record's seq (the records subject's last), checked on the stream's last seq.
//
// Seqs stay gap-free and in commit order because the stream holds only vecwal's messages
// (its subjects are vecwal's), it denies deleting single messages (deny_delete), and retention
// only ever purges a prefix. A 2xx means the publish ack: the message is stored by a quorum of
// the stream's replicas (README: what that means on disk). Nothing an instance holds is needed by
// another, except the transactions it stages.
import fs from 'node:fs'
import { performance } from 'node:perf_hooks'
import { connect, credsAuthenticator, headers, nanos, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node'
import {
  DiscardPolicy, JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, RetentionPolicy, StorageType,
  type ClusterInfo, type JetStreamClient, type JetStreamManager, type StreamConfig, type StreamInfo
} from '@nats-io/jetstream'
import { pino, type Logger } from 'pino'
import { DEFAULT_CONSUMER } from '../consumer-state.js'
import {
  assertSeq, BackendUnavailableError, IdempotencyKeyReusedError, LogClosedError, OpenStepError, QueueFullError, RangeGoneError, RecordTooLargeError,
  SeqMismatchError
} from '../errors.js'
import { readStart } from '../read-start.js'
import type {
  AppendConditions, AppendResult, BatchAppendResult, CheckpointResult, Log, LogObserver, LogRead, LogState, LogStatus, ReadOptions, WaitOptions
} from '../log.js'
import { contentDigestOf, type EncodedPayload } from '../payload/payload.js'
import { RecentEncodings } from '../records/recent-encodings.js'
import { decodeBody } from '../records/record-object.js'
import { readTrailingKeys } from '../records/record-shape.js'
import { TransactionManager, type TransactionLimits } from '../transactions.js'
import { isWrongLastSequence, StreamConsumers } from './stream-consumers.js'
import {
  CAUGHT_UP, messageRecord, readStream, startable, streamMsgpack, streamNdjson, streamRecords, TYPE_HEADER, unavailableOnError, type FollowTail, type StreamItem,
  type StreamRange
} from './stream-reader.js'
import { RecordWrites } from '../record-writes.js'

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
  idempotency?: Partial<IdempotencyLimits>
  /** A NATS credentials file (JWT and NKey seed). */
  credsFile?: string
  user?: string
  pass?: string
  token?: string
  /** A CA file to verify the servers' TLS certificates with (and to require TLS). */
  tlsCaFile?: string
  /** A client certificate file and its key file, both or neither: for servers that verify clients (and to require TLS). */
  tlsCertFile?: string
  tlsKeyFile?: string
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>
  observer?: LogObserver
}

export const JETSTREAM_DEFAULTS = {
  replicas: 3,
  timeoutMs: 5000,
  queueLimitBytes: 64 * 1024 * 1024,
  transactions: { maxBytes: 64 * 1024 * 1024, maxTotalBytes: 256 * 1024 * 1024, idleMs: 60_000 },
  /** The service passes its own (VECWAL_IDEMPOTENCY_WINDOW, VECWAL_IDEMPOTENCY_MAX_KEYS); these are for a log opened without. */
  idempotency: { windowMs: 2 * 60 * 1000, maxKeys: 500_000 }
}

/** How long keys are remembered, and how many this instance counts at most. */
export interface IdempotencyLimits {
  /** The stream's duplicate window: nats-server answers a repeated Nats-Msg-Id this long after its first write. */
  windowMs: number
  /** Keys this instance remembers at most (for status and for commits retried after their transaction is gone). */
  maxKeys: number
}

/** How often the stream's state is asked for, so that other instances' writes and checkpoints show here. */
const STATE_POLL_MS = 1000
/** A fetch may bring this many bytes past the largest message: its subject and headers. */
const MESSAGE_OVERHEAD_BYTES = 64 * 1024
/** Bytes one fetch of a read may bring at least. */
const MIN_FETCH_BYTES = 4 * 1024 * 1024

/** The subjects of a stream's messages. */
export function streamSubjects (stream: string): { records: string, all: string } {
  return { records: `vecwal.${stream}.records`, all: `vecwal.${stream}.>` }
}

function connectionOptions (options: JetStreamOptions): NodeConnectionOptions {
  const tls = {
    ...(options.tlsCaFile === undefined ? {} : { caFile: options.tlsCaFile }),
    ...(options.tlsCertFile === undefined ? {} : { certFile: options.tlsCertFile, keyFile: options.tlsKeyFile })
  }
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
    ...(Object.keys(tls).length === 0 ? {} : { tls })
  }
}

/** How often a conditional append looks again when only the log's own records came in between. */
const CONDITION_ATTEMPTS = 8

/**
 * The seq of the last message on the records subject: the last entry record (checkpoint and
 * consumer records have subjects of their own), 0 if there is none.
 */
async function lastEntrySeqOf (jsm: JetStreamManager, stream: string, records: string): Promise<number> {
  try {
    return (await jsm.streams.getMessage(stream, { last_by_subj: records }))?.seq ?? 0
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return 0
    throw err
  }
}

/** What this instance remembers of a key it wrote: answers a commit retried after its transaction is gone, and counts the keys. */
interface KeyWrite { seq: number, writtenAt: number }

export class JetStreamLog extends RecordWrites implements Log {
  readonly transactions: TransactionManager
  readonly consumers: StreamConsumers
  private closed = false
  /**
   * False from the moment the NATS connection drops, or a poll of the stream's state fails or finds
   * it without a leader, until a poll finds it led again: the log's state is then `unavailable`.
   */
  private reachable = true
  /** A poll of the stream's state is under way: the next waits for it rather than pile up behind a cluster that does not answer. */
  private polling = false
  private known: { lastSeq: number, lastEntrySeq: number, firstSeq: number, bytes: number, messages: number }
  private queued = 0
  private readonly inFlight = new Set<Promise<unknown>>()
  /** Keyed writes in flight here: a repeat waits for its first (other instances' repeats nats-server answers). */
  private readonly pendingKeys = new Map<string, { contentDigest: string, settled: Promise<unknown> }>()
  /** Keys this instance wrote within the window, oldest first, at most maxKeys. */
  private readonly keys = new Map<string, KeyWrite>()
  /** Called when the last seq grows or the log closes: long polls and followers listen. */
  private readonly listeners = new Set<() => void>()
  /** Follow reads under way: close lets them give out the last records first. */
  private readonly followers = new Set<Promise<unknown>>()
  /** The newest records' read forms, encoded once for all followers. */
  private readonly followed = { ndjson: new RecentEncodings(), msgpack: new RecentEncodings() }
  private readonly poll: NodeJS.Timeout
  private readonly subjects: ReturnType<typeof streamSubjects>

  private constructor (
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly stream: string,
    private readonly settings: { timeoutMs: number, queueLimitBytes: number, idempotency: IdempotencyLimits },
    private readonly logger: Pick<Logger, 'info' | 'warn' | 'error'>,
    protected readonly observer: LogObserver,
    transactionLimits: TransactionLimits,
    state: { lastSeq: number, lastEntrySeq: number, firstSeq: number, bytes: number, messages: number }
  ) {
    super()
    this.subjects = streamSubjects(stream)
    this.known = state
    const log = this
    this.consumers = new StreamConsumers({
      jsm,
      stream,
      get lastSeq () { return log.lastSeq },
      get lastEntrySeq () { return log.known.lastEntrySeq },
      get firstSeq () { return log.known.firstSeq },
      get extent () { return log.known },
      refreshExtent: async () => { await this.refreshExtent() },
      publish: async (payload, subject, expectLastSubjectSeq, extraHeaders) => (await this.publish(payload, subject, { expect: { lastSubjectSequence: expectLastSubjectSeq }, extraHeaders })).seq,
      unavailableOnError,
      purgeBelow: async seq => await this.purgeBelow(seq),
      retentionFailed: err => { this.logger.error({ err }, 'retention could not purge the stream below the lowest checkpoint') }
    })
    this.transactions = new TransactionManager(
      transactionLimits,
      async (entries, txId, conditions) => await this.appendBatchRecord(entries, conditions, txId),
      async (txId, key) => await this.replayCommit(txId, key),
      () => { this.assertOpen() }
    )
    this.poll = setInterval(() => { void this.pollState() }, STATE_POLL_MS)
    this.poll.unref()
    void this.watchConnection()
  }

  /** A dropped connection makes the log unavailable at once; the next poll that finds the stream led makes it available again. */
  private async watchConnection (): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === 'disconnect') this.setReachable(false, `the connection to ${status.server} dropped`)
    }
  }

  private setReachable (reachable: boolean, why?: unknown): void {
    if (reachable === this.reachable || this.closed) return
    this.reachable = reachable
    if (reachable) this.logger.info({ stream: this.stream }, 'the stream answers again: the log is available')
    else this.logger.warn({ stream: this.stream, err: why }, 'the stream cannot be reached: the log is unavailable')
  }

  /** Connects, creates the stream if it does not exist (or checks it if it does), reads its state and its consumers. */
  static async open (options: JetStreamOptions): Promise<JetStreamLog> {
    const logger = options.logger ?? pino({ enabled: false })
    const timeoutMs = options.timeoutMs ?? JETSTREAM_DEFAULTS.timeoutMs
    const idempotency = { ...JETSTREAM_DEFAULTS.idempotency, ...options.idempotency }
    let nc: NatsConnection
    try {
      nc = await connect(connectionOptions(options))
    } catch (err) {
      // A server that verifies clients refuses one without a certificate only after the TLS 1.3
      // handshake, and nats.js then reports just its connect timeout: say what it may mean.
      const tls = options.tlsCaFile !== undefined || options.servers.some(server => server.startsWith('tls://'))
      const hint = tls && options.tlsCertFile === undefined && /timeout/i.test(err instanceof Error ? err.message : String(err))
        ? ' (over TLS, a server that requires client certificates answers a client without one so: see VECWAL_NATS_TLS_CERT and VECWAL_NATS_TLS_KEY)'
        : ''
      throw new OpenStepError(`reach the NATS servers ${options.servers.join(', ')}${hint}`, err)
    }
    try {
      const jsm = await jetstreamManager(nc, { timeout: timeoutMs })
      await settled(timeoutMs, async () => { await ensureStream(jsm, options.stream, options.replicas ?? JETSTREAM_DEFAULTS.replicas, idempotency.windowMs) })
      const info = await settled(timeoutMs, async () => await streamWithLeader(jsm, options.stream, timeoutMs))
      const log = new JetStreamLog(
        nc, jetstream(nc, { timeout: timeoutMs }), jsm, options.stream,
        { timeoutMs, queueLimitBytes: options.queueLimitBytes ?? JETSTREAM_DEFAULTS.queueLimitBytes, idempotency },
        logger, options.observer ?? {},
        { ...JETSTREAM_DEFAULTS.transactions, ...options.transactions },
        {
          lastSeq: info.state.last_seq,
          lastEntrySeq: await settled(timeoutMs, async () => await lastEntrySeqOf(jsm, options.stream, streamSubjects(options.stream).records)),
          firstSeq: Math.max(1, info.state.first_seq),
          bytes: info.state.bytes,
          messages: info.state.messages
        }
      )
      await settled(timeoutMs, async () => { await log.consumers.refresh() })
      logger.info({ stream: options.stream, servers: options.servers, lastSeq: log.lastSeq, checkpoint: log.checkpointSeq }, 'log opened on JetStream')
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

  /** The consumer `default`'s checkpoint, 0 if it has none. */
  get checkpointSeq (): number {
    return this.consumers.checkpointOf(DEFAULT_CONSUMER) ?? 0
  }

  get state (): LogState {
    // Never failed: the instance holds nothing whose loss could break the log (seqs are the
    // stream's), so an unanswered publish is refused (WAL_UNAVAILABLE) and the log goes on.
    if (this.closed) return 'closed'
    return this.reachable ? 'ok' : 'unavailable'
  }

  private assertOpen (): void {
    if (this.closed) throw new LogClosedError()
  }

  /**
   * Publishes one record under its conditions. A keyed one carries its key as Nats-Msg-Id: within
   * the stream's duplicate window nats-server stores it once, and answers a repeat with the first
   * message's seq, which is then read back to compare its content digest with this one's.
   */
  protected async appendRecord (payload: EncodedPayload, { idempotencyKey, expectedLastSeq }: AppendConditions): Promise<AppendResult> {
    if (idempotencyKey === undefined) return { seq: (await this.conditionalPublish(payload, expectedLastSeq)).seq, replayed: false }
    const contentDigest = contentDigestOf(payload)
    for (let pending = this.pendingKeys.get(idempotencyKey); pending !== undefined; pending = this.pendingKeys.get(idempotencyKey)) {
      // Whatever the outcome of a write of other content, this content cannot be its retry.
      if (pending.contentDigest !== contentDigest) throw new IdempotencyKeyReusedError(idempotencyKey)
      await pending.settled.catch(() => {})
    }
    let settle = (): void => {}
    this.pendingKeys.set(idempotencyKey, { contentDigest, settled: new Promise<void>(resolve => { settle = resolve }) })
    try {
      const ack = await this.conditionalPublish(payload, expectedLastSeq, idempotencyKey)
      if (ack.duplicate) await this.assertSameContent(idempotencyKey, ack.seq, contentDigest)
      this.rememberKey(idempotencyKey, ack.seq)
      if (ack.duplicate) this.observer.replayed?.()
      return { seq: ack.seq, replayed: ack.duplicate }
    } finally {
      this.pendingKeys.delete(idempotencyKey)
      settle()
    }
  }

  /**
   * Publishes on the records subject, under the condition that the last entry record's seq is
   * `expectedLastSeq`; else WAL_SEQ_MISMATCH with that seq. The records subject holds the entry
   * records alone, but nats-server 2.9's check of a subject's last seq does not see publishes still
   * being replicated (four writers expecting the same one all won, tested): the condition is
   * checked here on the stream's last seq instead, which it does see, once the last entry record
   * is known to be the one expected. Checkpoint and consumer records stored in between move the
   * stream's last seq: then it looks again.
   */
  private async conditionalPublish (payload: EncodedPayload, expectedLastSeq: number | undefined, msgID?: string): Promise<{ seq: number, duplicate: boolean }> {
    if (expectedLastSeq === undefined) return await this.publish(payload, this.subjects.records, { msgID })
    for (let attempt = 1; ; attempt++) {
      // The stream's last seq first: an entry record stored after it shows in the one read next.
      const streamLastSeq = (await unavailableOnError('reading the stream\'s state', async () => await this.jsm.streams.info(this.stream))).state.last_seq
      const lastEntrySeq = await unavailableOnError('reading the stream\'s last entry record', async () => await lastEntrySeqOf(this.jsm, this.stream, this.subjects.records))
      if (lastEntrySeq > this.known.lastEntrySeq) this.known.lastEntrySeq = lastEntrySeq
      const holds = lastEntrySeq === expectedLastSeq
      // A keyed write whose condition no longer holds is still sent, expecting what cannot be: a
      // repeat of its key is answered from the first write (nats-server checks the key first).
      if (!holds && msgID === undefined) throw new SeqMismatchError(expectedLastSeq, lastEntrySeq)
      try {
        return await this.publish(payload, this.subjects.records, { expect: holds ? { lastSequence: streamLastSeq } : { lastSubjectSequence: expectedLastSeq }, msgID })
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err
        if (!holds) throw new SeqMismatchError(expectedLastSeq, lastEntrySeq)
        if (attempt === CONDITION_ATTEMPTS) throw new BackendUnavailableError(`records kept coming while a conditional append waited (${attempt} tries)`, err)
      }
    }
  }

  /** The message a duplicate ack names must hold this content, else the key was used for other content. */
  private async assertSameContent (key: string, seq: number, contentDigest: string): Promise<void> {
    if (seq < this.known.firstSeq) throw new RangeGoneError(seq - 1, this.known.firstSeq)
    const message = await unavailableOnError(`reading the record of idempotency key ${JSON.stringify(key)}`, async () => await this.jsm.streams.getMessage(this.stream, { seq }))
    // Purged by retention while the duplicate window still holds its key: its content is unknown.
    if (message === null) throw new RangeGoneError(seq - 1, this.known.firstSeq)
    const stored = readTrailingKeys(messageRecord(this.stream, message.seq, message.time.getTime(), message.header.get(TYPE_HEADER), message.data))
    if (stored?.idempotencyKey !== key || stored.contentDigest !== contentDigest) throw new IdempotencyKeyReusedError(key)
  }

  private rememberKey (key: string, seq: number): void {
    this.keys.delete(key)
    this.keys.set(key, { seq, writtenAt: Date.now() })
    this.forgetKeys()
  }

  /** Forgets keys past the window or past the cap, oldest first. */
  private forgetKeys (): void {
    const { windowMs, maxKeys } = this.settings.idempotency
    const expired = Date.now() - windowMs
    let evicted = 0
    for (const [key, write] of this.keys) {
      if (write.writtenAt > expired && this.keys.size <= maxKeys) break
      if (write.writtenAt > expired) evicted++
      this.keys.delete(key)
    }
    if (evicted > 0) this.observer.keysEvicted?.(evicted)
  }

  /**
   * A commit retried with its key after its transaction is gone: answered from the record the key
   * wrote, if this instance wrote it and it was this transaction's commit.
   */
  private async replayCommit (txId: string, key: string): Promise<BatchAppendResult | undefined> {
    for (let pending = this.pendingKeys.get(key); pending !== undefined; pending = this.pendingKeys.get(key)) await pending.settled.catch(() => {})
    this.forgetKeys()
    const write = this.keys.get(key)
    if (write === undefined || write.seq < this.known.firstSeq) return undefined
    const message = await unavailableOnError(`reading the record of idempotency key ${JSON.stringify(key)}`, async () => await this.jsm.streams.getMessage(this.stream, { seq: write.seq }))
    const body = message === null ? undefined : decodeBody(messageRecord(this.stream, message.seq, message.time.getTime(), message.header.get(TYPE_HEADER), message.data))
    if (body?.op !== 'batch' || body.txId !== txId) throw new IdempotencyKeyReusedError(key)
    this.observer.replayed?.()
    return { seq: write.seq, count: body.entries.length, replayed: true }
  }

  /**
   * Publishes one record and resolves with its stream seq once a quorum stored it (or, for a
   * duplicate, with the first message's). Any number are in flight at once (the pipelining that
   * stands for group commit), up to queueLimitBytes.
   */
  private async publish (payload: EncodedPayload, subject: string, options: { expect?: Partial<{ lastSequence: number, lastSubjectSequence: number }>, msgID?: string, extraHeaders?: Record<string, string> }): Promise<{ seq: number, duplicate: boolean }> {
    this.assertOpen()
    const bytes = payload.bytes.length
    const maxPayload = this.nc.info?.max_payload ?? Number.POSITIVE_INFINITY
    if (bytes > maxPayload) throw new RecordTooLargeError(bytes, maxPayload)
    if (this.queued + bytes > this.settings.queueLimitBytes) throw new QueueFullError(this.settings.queueLimitBytes)
    const h = headers()
    h.set(TYPE_HEADER, String(payload.type))
    for (const [name, value] of Object.entries(options.extraHeaders ?? {})) h.set(name, value)
    const started = performance.now()
    this.queued += bytes
    const publishing = this.js.publish(subject, payload.bytes, {
      headers: h,
      timeout: this.settings.timeoutMs,
      // NATS trims header values: a key with spaces at its ends (printable ASCII allows them) would
      // become another key, or none. Its base64url form keeps every key distinct.
      ...(options.msgID === undefined ? {} : { msgID: Buffer.from(options.msgID, 'latin1').toString('base64url') }),
      ...(options.expect === undefined ? {} : { expect: options.expect })
    })
    this.inFlight.add(publishing)
    let ack: { seq: number, duplicate: boolean }
    try {
      ack = await publishing
    } catch (err) {
      if (isWrongLastSequence(err)) throw err
      throw new BackendUnavailableError('the NATS cluster did not store the record (no quorum, an election, or no answer in time)', err)
    } finally {
      this.queued -= bytes
      this.inFlight.delete(publishing)
    }
    if (subject === this.subjects.records && ack.seq > this.known.lastEntrySeq) this.known.lastEntrySeq = ack.seq
    if (ack.seq > this.known.lastSeq) this.grew(ack.seq)
    if (!ack.duplicate) {
      // Counted at once for lag in bytes (the payload only: the next poll brings the stream's own count).
      this.known.messages++
      this.known.bytes += bytes
      this.observer.synced?.((performance.now() - started) / 1000)
      this.observer.committed?.(1, bytes)
    }
    return { seq: ack.seq, duplicate: ack.duplicate }
  }

  /** A later seq is known to be stored: long polls and followers hear of it. */
  private grew (seq: number): void {
    this.known.lastSeq = seq
    this.notify()
  }

  private notify (): void {
    for (const listener of [...this.listeners]) listener()
  }

  /** Registers a listener for growth and close; returns its removal. */
  private listen (listener: () => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** Records that the consumer `default` holds everything up to `seq` (default: the last seq), then purges what every consumer holds. */
  async checkpoint (seq?: number): Promise<CheckpointResult> {
    this.assertOpen()
    return await this.consumers.checkpoint(DEFAULT_CONSUMER, seq)
  }

  /** Purges the whole stream below `seq`: a prefix, so seqs from the first held on stay gap-free. */
  private async purgeBelow (below: number): Promise<number> {
    this.assertOpen()
    // The last entry record stays: a conditional append expects the records subject's last seq,
    // which a purge of that message would turn to 0. (A purge up to seq 1 empties the whole stream.)
    const seq = this.known.lastEntrySeq > 0 ? Math.min(below, this.known.lastEntrySeq) : below
    if (seq <= Math.max(this.known.firstSeq, 1)) return 0
    const { purged } = await this.jsm.streams.purge(this.stream, { seq })
    if (seq > this.known.firstSeq) this.known.firstSeq = seq
    // The bytes the purge freed: the stream's count, for status and lag, now rather than at the next poll.
    await this.refreshExtent().catch(() => {})
    return purged
  }

  read (options: ReadOptions = {}): LogRead {
    const { since } = options
    const lastSeq = this.lastSeq
    const { after, checkpoint } = readStart(options, {
      oldest: this.known.firstSeq,
      // A purge takes messages of every kind up to a checkpoint: all are counted as entries.
      entriesGoneThrough: this.known.firstSeq - 1,
      lastSeq,
      checkpoint: this.checkpointSeq,
      checkpointOf: name => this.consumers.checkpointOf(name)
    })
    const follow: FollowTail | undefined = options.follow === true
      ? {
          lastSeq: () => this.lastSeq,
          seen: seq => { if (seq > this.known.lastSeq) this.grew(seq) },
          closed: () => this.closed,
          onClose: listener => this.listen(() => { if (this.closed) listener() }),
          signal: options.signal
        }
      : undefined
    const range: StreamRange = {
      from: after + 1,
      to: follow === undefined ? lastSeq : Number.POSITIVE_INFINITY,
      limit: options.limit ?? Number.POSITIVE_INFINITY,
      includeCheckpoints: options.includeCheckpoints ?? false,
      since,
      follow
    }
    const maxPayload = this.nc.info?.max_payload ?? 0
    const source = { js: this.js, stream: this.stream, fetchBytes: Math.max(MIN_FETCH_BYTES, maxPayload + MESSAGE_OVERHEAD_BYTES), timeoutMs: this.settings.timeoutMs }
    let caughtUp = false
    const read = async function * (log: JetStreamLog): AsyncGenerator<StreamItem> {
      let ended = (): void => {}
      const done = new Promise<void>(resolve => { ended = resolve })
      if (follow !== undefined) log.followers.add(done)
      try {
        for await (const item of readStream(source, range)) {
          caughtUp = item === CAUGHT_UP
          yield item
        }
      } finally {
        log.followers.delete(done)
        ended()
      }
    }
    // One reading for the three forms, of which one is read: `start` can take its first step.
    const { items, start } = startable(read(this))
    // Followers share the encoding of the newest records; a bounded read encodes its own.
    const shared = follow === undefined ? undefined : this.followed
    return {
      caughtUp: () => follow !== undefined && caughtUp,
      checkpoint,
      lastSeq,
      start,
      records: streamRecords(this.stream, items),
      ndjson: streamNdjson(this.stream, items, shared?.ndjson),
      msgpack: streamMsgpack(this.stream, items, shared?.msgpack)
    }
  }

  /**
   * Long poll: this instance's own appends wake it at once; another instance's show at the next
   * poll of the stream's state (STATE_POLL_MS).
   */
  async waitForRecords (options: WaitOptions): Promise<void> {
    const after = options.after ?? this.checkpointSeq
    assertSeq('after', after)
    const { signal } = options
    // An entry record after `after`: checkpoint and consumer records, which reads leave out, do not
    // answer a long poll. Past the last seq, the read that follows says why.
    const answered = (): boolean => after > this.lastSeq || this.known.lastEntrySeq > after || this.closed
    if (answered() || signal?.aborted === true) return
    await new Promise<void>(resolve => {
      const end = (): void => {
        clearTimeout(timer)
        unlisten()
        signal?.removeEventListener('abort', end)
        resolve()
      }
      const timer = setTimeout(end, options.timeoutMs)
      const unlisten = this.listen(() => { if (answered()) end() })
      signal?.addEventListener('abort', end, { once: true })
    })
  }

  /** What other instances wrote and checkpointed, learnt from the stream, and whether it answers: one poll at a time. */
  private async pollState (): Promise<void> {
    if (this.polling) return
    this.polling = true
    try {
      const led = await this.refreshExtent()
      await this.consumers.refresh()
      // Available again only once the whole poll went through: a stream led whose consumers could
      // not be read would otherwise turn available and unavailable at every poll.
      if (led) this.setReachable(true)
    } catch (err) {
      this.setReachable(false, err)
    } finally {
      this.polling = false
    }
  }

  /** Learns the stream's extent; false (and the log unavailable) when the stream cannot store a record now. */
  private async refreshExtent (): Promise<boolean> {
    const { state, cluster } = await this.jsm.streams.info(this.stream)
    const unable = whyUnableToStore(cluster)
    if (unable !== undefined) this.setReachable(false, unable)
    this.known.firstSeq = Math.max(this.known.firstSeq, state.first_seq)
    this.known.bytes = state.bytes
    this.known.messages = state.messages
    if (state.last_seq > this.known.lastSeq) {
      const lastEntrySeq = await lastEntrySeqOf(this.jsm, this.stream, this.subjects.records)
      if (lastEntrySeq > this.known.lastEntrySeq) this.known.lastEntrySeq = lastEntrySeq
      this.grew(state.last_seq)
    }
    return unable === undefined
  }

  status (): LogStatus {
    this.forgetKeys()
    return {
      lastSeq: this.lastSeq,
      checkpoint: this.checkpointSeq,
      state: this.state,
      durability: 'quorum',
      bytes: this.known.bytes,
      queuedBytes: this.queued,
      queueLimitBytes: this.settings.queueLimitBytes,
      openTransactions: this.transactions.count,
      diskFull: false,
      idempotencyKeys: this.keys.size
    }
  }

  /**
   * Refuses new appends, waits for the acks of those in flight, lets followers give out the
   * records up to the last seq (at most timeoutMs), and closes the connection.
   */
  async close (): Promise<void> {
    this.assertOpen()
    this.closed = true
    clearInterval(this.poll)
    this.transactions.clear()
    await Promise.allSettled([...this.inFlight])
    this.notify()
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.allSettled([...this.followers]), new Promise(resolve => { timer = setTimeout(resolve, this.settings.timeoutMs) })])
    clearTimeout(timer)
    await this.nc.drain().catch(async () => { await this.nc.close() })
  }
}

/** The stream's settings: only vecwal's subjects, no single deletions, file storage, the idempotency window as its duplicate window. */
function streamConfig (stream: string, replicas: number, windowMs: number): Partial<StreamConfig> & { name: string } {
  return {
    name: stream,
    duplicate_window: nanos(windowMs),
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

async function ensureStream (jsm: JetStreamManager, stream: string, replicas: number, windowMs: number): Promise<void> {
  let existing
  try {
    existing = await jsm.streams.info(stream)
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err
    await jsm.streams.add(streamConfig(stream, replicas, windowMs))
    return
  }
  const { config } = existing
  if (config.num_replicas !== replicas) throw new Error(`stream ${stream} has ${config.num_replicas} replicas, not the ${replicas} configured`)
  if (!config.subjects.includes(streamSubjects(stream).all) || config.subjects.length !== 1) throw new Error(`stream ${stream} takes subjects ${config.subjects.join(', ')}, not only ${streamSubjects(stream).all}`)
  if (!config.deny_delete) throw new Error(`stream ${stream} allows deleting single messages, which would leave gaps in the seqs`)
  // The window is the service's setting: a stream made with another one takes this one.
  if (config.duplicate_window !== nanos(windowMs)) await jsm.streams.update(stream, { duplicate_window: nanos(windowMs) })
}

/**
 * A replica its leader has not heard from for this long counts as gone: nats-server's shortest
 * Raft election timeout, after which a follower that heard nothing would have stood for election
 * itself (an idle leader is heard every second or two). A 2.9 leader whose followers died goes on
 * naming itself leader, and them current, long after it can store anything: only their silence tells.
 */
const REPLICA_SILENCE_MS = 4000

/**
 * Why the stream cannot store a record now, from its cluster info (none for a stream outside a
 * cluster, which always leads itself); undefined if it can: it has a leader, which hears from a quorum.
 */
function whyUnableToStore (cluster: ClusterInfo | undefined): string | undefined {
  if (cluster === undefined) return undefined
  if ((cluster.leader ?? '') === '') return 'the stream has no leader'
  const others = cluster.replicas ?? []
  const heard = others.filter(r => !r.offline && r.active < nanos(REPLICA_SILENCE_MS)).length
  const quorum = Math.floor((others.length + 1) / 2) + 1
  if (1 + heard >= quorum) return undefined
  return `the stream's leader ${cluster.leader} has heard from ${heard} of its ${others.length} other replicas within ${REPLICA_SILENCE_MS} ms: no quorum`
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
