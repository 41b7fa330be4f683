// Reads a range of the stream in seq order through an ordered consumer, or follows it as it grows,
// one bounded fetch at a time: the next fetch is asked for only once the reader has pulled every record of the last, so
// memory stays one fetch (FETCH_BYTES) per read and a reader that stops pulling stops the reading.
// Every message is checked on the way out (seq continuity, its type header, its body's shape), so
// damage or a gap is reported, never skipped.
import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream'
import { DeliverPolicy, JetStreamError } from '@nats-io/jetstream'
import { BackendUnavailableError, CorruptRecordError, RangeGoneError } from '../errors.js'
import type { LogRecord } from '../log.js'
import { isBookkeeping, recordTypeName, type RecordBytes, type RecordTypeCode } from '../records/record-bytes.js'
import type { RecentEncodings } from '../records/recent-encodings.js'
import { recordLineBytes } from '../records/record-json.js'
import { recordMsgpackBytes } from '../records/record-msgpack.js'
import { decodeBody } from '../records/record-object.js'
import { checkRecordBody } from '../records/record-shape.js'

/** The header carrying a message's record type code: the byte a segment frame stores. */
export const TYPE_HEADER = 'Vecwal-Type'

export interface StreamRange {
  /** The first seq wanted. */
  from: number
  /** The last seq to read: the last seq known when the read began, or infinity when following. */
  to: number
  limit: number
  includeCheckpoints: boolean
  /** Only records stamped at or after this moment (ms since the epoch): the read starts at the first the stream finds. */
  since?: number
  follow?: FollowTail
}

/** What a follow read asks of the log as it waits for more. */
export interface FollowTail {
  /** The last seq the instance knows of: a follower past it is caught up. */
  lastSeq: () => number
  /** A record came from the stream past what the instance knew (another instance wrote it). */
  seen: (seq: number) => void
  /** True once the log closed: the follower ends after the last seq. */
  closed: () => boolean
  /** Ends the wait of a fetch at once, when the log closes; returns the unsubscribe. */
  onClose: (listener: () => void) => () => void
  signal?: AbortSignal
}

export interface StreamSource {
  js: JetStreamClient
  stream: string
  /** Bytes one fetch may bring: at least the largest message, else that message could never come. */
  fetchBytes: number
  /** How long a fetch waits for its messages. */
  timeoutMs: number
}

/** A fetch may not expire sooner than this (the server refuses shorter pulls). */
const MIN_FETCH_EXPIRES_MS = 1000

/**
 * The messages one fetch brings at most. @nats-io/jetstream asks a fetch bounded by bytes for 100
 * messages (consumer.js, parseOptions) and ends it only once both its messages and its bytes are
 * spent: a fetch that got its 100 messages first would wait out its expiry for nothing (a plain
 * read took 5 s a hundred records). The read ends such a fetch itself.
 */
const FETCH_MESSAGES = 100

/** Yielded by a follow read when it has given out every record the instance knows of: byte streams send what they hold. */
export const CAUGHT_UP = Symbol('caught up')
export type StreamItem = RecordBytes | typeof CAUGHT_UP

/** The message as a record of the transcoders (src/records), its payload in place; its timestamp is the stream's (ms). */
export function messageRecord (stream: string, seq: number, timestamp: number, type: string | undefined, data: Uint8Array): RecordBytes {
  const code = Number(type)
  if (recordTypeName(code) === undefined) throw new CorruptRecordError(`stream ${stream}, seq ${seq}`, `the ${TYPE_HEADER} header is ${String(type)}, not a record type`)
  return {
    seq,
    timestamp,
    type: code as RecordTypeCode,
    source: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    payloadStart: 0,
    payloadEnd: data.byteLength
  }
}

function recordOf (stream: string, message: JsMsg): RecordBytes {
  return messageRecord(stream, message.seq, message.time.getTime(), message.headers?.get(TYPE_HEADER), message.data)
}

/**
 * The server's answer to a fetch whose byte budget is too small for the next message: it ends that
 * fetch, part-way through the range. The client then fails its iterator, dropping any message it
 * had received but not yet handed out, although its ordered consumer's cursor is already past them.
 */
function isFetchBudgetSpent (err: unknown): boolean {
  // A JetStreamStatusError, which the package does not export: a JetStreamError with the status code.
  return err instanceof JetStreamError && (err as JetStreamError & { code?: unknown }).code === 409 && err.message === 'message size exceeds maxbytes'
}

/**
 * The records in the range, in seq order, each checked before it is yielded; a follow read also
 * yields CAUGHT_UP each time it has given out every record the instance knows of.
 */
export async function * readStream (source: StreamSource, range: StreamRange): AsyncGenerator<StreamItem> {
  const { follow, since } = range
  if (range.from > range.to) return
  // With `since`, the first message the stream finds at or after the moment sets where the read starts.
  let next: number | undefined = since === undefined ? range.from : undefined
  // With `since` before `range.from`: the seq after the last message passed over on the way there.
  let passedTo: number | undefined
  const openConsumer = async (): Promise<Awaited<ReturnType<typeof source.js.consumers.get>>> => {
    const from = next ?? passedTo
    return await unavailableOnError('opening a consumer on the stream', async () => await source.js.consumers.get(source.stream, from === undefined && since !== undefined
      ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(since).toISOString() }
      : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from ?? range.from }))
  }
  let consumer = await openConsumer()
  let yielded = 0
  const stopped = (): boolean => follow !== undefined && (follow.signal?.aborted === true || (follow.closed() && (next ?? range.from) > follow.lastSeq()))
  try {
    if (since !== undefined && follow === undefined) {
      const { num_pending: pending } = await unavailableOnError('asking the stream where the moment lies', async () => await consumer.info())
      if (pending === 0) return
    }
    while ((next ?? range.from) <= range.to && yielded < range.limit && !stopped()) {
      if (follow !== undefined && (next ?? range.from) > follow.lastSeq()) yield CAUGHT_UP
      const batch: ConsumerMessages = await unavailableOnError('fetching records from the stream', async () => await consumer.fetch({
        max_bytes: source.fetchBytes,
        expires: follow === undefined ? Math.max(MIN_FETCH_EXPIRES_MS, source.timeoutMs) : MIN_FETCH_EXPIRES_MS
      }))
      const stop = (): void => { void batch.close() }
      follow?.signal?.addEventListener('abort', stop, { once: true })
      const unsubscribe = follow?.onClose(stop)
      // A fetch from a cluster that is gone may never end: a follower's ends by this time at the
      // latest, and the check below finds out why it came back empty.
      const overdue = follow === undefined ? undefined : setTimeout(stop, MIN_FETCH_EXPIRES_MS + source.timeoutMs)
      let received = 0
      let budgetSpent = false
      try {
        for await (const message of batch) {
          received++
          if (next === undefined) {
            if (message.seq < range.from) {
              passedTo = message.seq + 1
              if (received === FETCH_MESSAGES) break
              continue
            }
            next = message.seq
          }
          if (message.seq < next) {
            // Before the seq asked for: the server may start a consumer early. An R1 consumer put on
            // a replica that has not yet applied the stream's messages starts at that replica's
            // first (nats-server 2.9, under load). What lies before `next` was handed out already
            // or is outside the range.
            if (received === FETCH_MESSAGES) break
            continue
          }
          if (message.seq !== next) {
            // Retention purged the start of the range after the read began.
            if (next === range.from && message.seq > next) throw new RangeGoneError(next - 1, message.seq)
            throw new CorruptRecordError(`stream ${source.stream}, seq ${message.seq}`, `seq ${next} was expected (a message was deleted from the stream)`)
          }
          if (message.seq > range.to) return
          next++
          follow?.seen(message.seq)
          const record = recordOf(source.stream, message)
          if ((!isBookkeeping(record.type) || range.includeCheckpoints) && (since === undefined || record.timestamp >= since)) {
            yielded++
            yield record
          }
          // Before the fetch waits for messages past the range, which would come only as written.
          if (yielded >= range.limit || next > range.to || stopped() || received === FETCH_MESSAGES) break
          if (follow !== undefined && next > follow.lastSeq()) yield CAUGHT_UP
        }
      } catch (err) {
        // Never for the first message (a fetch may bring the largest there can be): the read goes on
        // from the next seq it wants, on a consumer of its own, past nothing it has not handed out.
        if (!isFetchBudgetSpent(err) || received === 0) throw err
        budgetSpent = true
      } finally {
        clearTimeout(overdue)
        follow?.signal?.removeEventListener('abort', stop)
        unsubscribe?.()
        await batch.close()
      }
      if (budgetSpent) {
        await consumer.delete().catch(() => {})
        consumer = await openConsumer()
        continue
      }
      if (follow === undefined && received === 0) throw new BackendUnavailableError(`the stream gave no record where seq ${next ?? range.from} was expected`)
      // An idle follower asks whether the stream still answers: a fetch from a cluster that is
      // gone comes back as empty as one from a quiet log (or not at all, until `overdue`).
      if (follow !== undefined && received === 0 && !stopped()) await unavailableOnError('asking the stream for the follower\'s consumer', async () => await consumer.info())
    }
  } finally {
    await consumer.delete().catch(() => {})
  }
}

/**
 * `source` with a first step that may be taken ahead of the first pull: `start` takes it (once,
 * however often it is called), and `items` gives out what it brought before pulling on. A read's
 * first step reaches the cluster (a consumer made, a first fetch done), so a read that cannot
 * begin is known before anything of it is answered. Ending `items` early ends `source` too.
 */
export function startable<T> (source: AsyncGenerator<T>): { items: AsyncGenerator<T>, start: () => Promise<void> } {
  let first: Promise<IteratorResult<T>> | undefined
  const start = async (): Promise<void> => {
    first ??= source.next()
    await first
  }
  const items = async function * (): AsyncGenerator<T> {
    try {
      if (first !== undefined) {
        const step = await first
        if (step.done === true) return
        yield step.value
      }
      yield * source
    } finally {
      await source.return(undefined)
    }
  }
  return { items: items(), start }
}

/** Runs `call`, refusing as WAL_UNAVAILABLE (503, retry) whatever it throws: the cluster did not answer. */
export async function unavailableOnError<T> (what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (err) {
    throw new BackendUnavailableError(`${what} failed`, err)
  }
}

const BODY_MISMATCH = 'record body does not match its type'

function where (stream: string, record: RecordBytes): string {
  return `stream ${stream}, seq ${record.seq}`
}

/** The records, decoded. */
export async function * streamRecords (stream: string, items: AsyncIterable<StreamItem>): AsyncGenerator<LogRecord> {
  for await (const record of items) {
    if (record === CAUGHT_UP) continue
    // Checked as the byte forms check it, so that every form refuses the same records.
    const body = checkRecordBody(record) === undefined ? undefined : decodeBody(record)
    if (body === undefined) throw new CorruptRecordError(where(stream, record), BODY_MISMATCH)
    yield Object.assign(body, { seq: record.seq, timestamp: record.timestamp })
  }
}

/** Byte forms go out in chunks of about this many bytes: one socket write per chunk, not per record. */
const CHUNK_BYTES = 64 * 1024

/**
 * The records, each encoded by `encode` (undefined for a body that is not a record body, and a view
 * of a shared buffer otherwise, so copied at once), as one byte stream in chunks. At damage every
 * record before it goes out first.
 */
async function * streamEncoded (stream: string, items: AsyncIterable<StreamItem>, encode: (record: RecordBytes) => Buffer | undefined): AsyncGenerator<Buffer> {
  let parts: Buffer[] = []
  let bytes = 0
  try {
    for await (const record of items) {
      if (record === CAUGHT_UP) {
        // A follower waits for the next record: what it has been given goes out now.
        if (bytes > 0) yield Buffer.concat(parts, bytes)
        parts = []
        bytes = 0
        continue
      }
      const encoded = encode(record)
      if (encoded === undefined) throw new CorruptRecordError(where(stream, record), BODY_MISMATCH)
      parts.push(Buffer.from(encoded))
      bytes += encoded.length
      if (bytes >= CHUNK_BYTES) {
        yield Buffer.concat(parts, bytes)
        parts = []
        bytes = 0
      }
    }
  } catch (err) {
    if (bytes > 0) yield Buffer.concat(parts, bytes)
    throw err
  }
  if (bytes > 0) yield Buffer.concat(parts, bytes)
}

/** The records as NDJSON lines, those of the newest records from `shared` when given. */
export function streamNdjson (stream: string, items: AsyncIterable<StreamItem>, shared?: RecentEncodings): AsyncGenerator<Buffer> {
  return streamEncoded(stream, items, shared?.encoder(recordLineBytes) ?? recordLineBytes)
}

/** The records as concatenated msgpack maps, those of the newest records from `shared` when given. */
export function streamMsgpack (stream: string, items: AsyncIterable<StreamItem>, shared?: RecentEncodings): AsyncGenerator<Buffer> {
  return streamEncoded(stream, items, shared?.encoder(recordMsgpackBytes) ?? recordMsgpackBytes)
}
