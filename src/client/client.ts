// The typed client of vecwal's HTTP API. Requests and answers are typed by openapi-types.ts,
// generated from openapi/openapi.json, and sent by openapi-fetch; what is written here is only what
// a generator cannot know: which calls may be sent again, with which idempotency key, how long to
// wait, and the msgpack body form. It runs on Node 20 and in browsers (fetch, Web Crypto, no Node API),
// on plain-http pages too (test/client/browser.test.ts).
import createFetchClient, { type Client } from 'openapi-fetch'
import { Packr } from 'msgpackr'
import type { paths } from './openapi-types.js'
import { DEFAULT_RETRY, isRetryableResponse, retryDelayMs, sleep, type RetryPolicy } from './retry.js'
import { VecwalError } from './errors.js'
import { follow, type FollowedRecord, type FollowOptions } from './follow.js'

export { VecwalError }

type Json<Path extends keyof paths, Method extends keyof paths[Path]> =
  paths[Path][Method] extends { requestBody?: { content: { 'application/json': infer Body } } } ? Body : never
type Answer<Path extends keyof paths, Method extends keyof paths[Path], Status extends number> =
  paths[Path][Method] extends { responses: { [S in Status]: { content: { 'application/json': infer Body } } } } ? Body : never

/** An entry as the API takes it. */
export type ApiEntry = Json<'/v1/entries', 'post'>
/** An entry as the client takes it: a vector may also be a Float32Array (sent as one in msgpack bodies). */
export type Entry = ApiEntry extends infer E ? E extends { vector: number[] } ? Omit<E, 'vector'> & { vector: number[] | Float32Array } : E : never
export type Status = Answer<'/v1/status', 'get', 200>
export type CheckpointAnswer = Answer<'/v1/checkpoints', 'post', 201>
export type ConsumerState = Answer<'/v1/consumers/{name}', 'get', 200>
export type ConsumerCheckpointAnswer = Answer<'/v1/consumers/{name}/checkpoint', 'post', 201>

export interface ClientOptions {
  /** Where the service listens, e.g. http://127.0.0.1:8080 */
  baseUrl: string
  /** A bearer token (VECWAL_TOKENS) sent with every request. */
  token?: string
  /** The body form of writes: msgpack sends vectors as Float32Array (msgpackr's typed-array extension). Default json. */
  encoding?: 'json' | 'msgpack'
  retry?: Partial<RetryPolicy>
  /** A fetch of one's own (a proxy, a test double); default globalThis.fetch. */
  fetch?: (request: Request) => Promise<Response>
}

export interface WriteOptions {
  /** Sent as Idempotency-Key on every try of this write; default a random UUID. */
  idempotencyKey?: string
  /** Sent as Vecwal-Expected-Last-Seq: the write is refused (412) unless the log's last seq is this. */
  expectedLastSeq?: number
  signal?: AbortSignal
}

export interface Appended {
  seq: number
  /** The service had done this write already (Idempotent-Replayed) and answered its first outcome. */
  replayed: boolean
  /** Tries it took, the first included. */
  attempts: number
}
export interface BatchAppended extends Appended { count: number }

/** A checkpoint made, or found overtaken: a retried checkpoint whose first try landed after all, and a later one since. */
export type Checkpointed = (CheckpointAnswer & { superseded: false }) | { checkpoint: number, superseded: true }
export type ConsumerCheckpointed = (ConsumerCheckpointAnswer & { superseded: false }) | { checkpoint: number, superseded: true }

interface Attempted<T> { data: T, response: Response, attempts: number }

/** msgpack bodies: Float32Array as msgpackr's typed-array extension (moreTypes), no records (the service refuses two-byte record ids). */
const packr = new Packr({ moreTypes: true, useRecords: false })

/**
 * A write's body as JSON, each vector written number by number: JSON.stringify writes -0 as 0, and
 * a vector's bits are the caller's (the service reads `-0` back as negative zero). Anything else
 * (a body or an entry of another shape, which the service refuses naming the field) goes out as
 * JSON.stringify writes it.
 */
function writeJson (body: unknown): string {
  if (isPlainObject(body) && Array.isArray(body.entries) && Object.keys(body).length === 1) {
    return `{"entries":[${Array.from(body.entries, entryJson).join(',')}]}`
  }
  return entryJson(body)
}

function entryJson (entry: unknown): string {
  if (!isPlainObject(entry) || !Array.isArray(entry.vector)) return JSON.stringify(entry) ?? 'null'
  const { vector, ...rest } = entry
  // A hole, undefined or a function is null in JSON.stringify's arrays.
  const numbers = Array.from(vector as unknown[], v => Object.is(v, -0) ? '-0' : JSON.stringify(v) ?? 'null').join(',')
  const head = JSON.stringify(rest)
  return `${head.slice(0, -1)}${head === '{}' ? '' : ','}"vector":[${numbers}]}`
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as { toJSON?: unknown }).toJSON !== 'function'
}

/**
 * What every call shares: the generated client, the retry policy and the body encoding. The client
 * and its transactions send through it.
 */
class Caller {
  readonly api: Client<paths>
  readonly retry: RetryPolicy
  private readonly encoding: 'json' | 'msgpack'

  constructor (options: ClientOptions) {
    this.api = createFetchClient<paths>({
      baseUrl: options.baseUrl,
      fetch: options.fetch,
      headers: options.token === undefined ? undefined : { authorization: `Bearer ${options.token}` }
    })
    this.retry = { ...DEFAULT_RETRY, ...options.retry }
    this.encoding = options.encoding ?? 'json'
  }

  /**
   * Tries `call` until it is answered 2xx, or refused for good, or the policy's tries or time run
   * out. A call whose answer never came is tried again only when `repeatUnanswered`.
   */
  async send<T> (what: string, repeatUnanswered: boolean, signal: AbortSignal | undefined, call: () => Promise<{ data?: T, error?: unknown, response: Response }>): Promise<Attempted<T>> {
    const started = Date.now()
    for (let tries = 1; ; tries++) {
      const canWait = (ms: number): boolean => tries < this.retry.attempts && Date.now() - started + ms <= this.retry.maxElapsedMs
      let result: { data?: T, error?: unknown, response: Response }
      try {
        result = await call()
      } catch (err) {
        signal?.throwIfAborted()
        const wait = retryDelayMs(this.retry, tries, null)
        if (!repeatUnanswered || !canWait(wait)) throw new VecwalError(`${what}: no answer after ${tries} tries`, undefined, undefined, tries, { cause: err })
        await sleep(wait, signal)
        continue
      }
      const { response } = result
      if (response.ok) return { data: result.data as T, response, attempts: tries }
      const wait = retryDelayMs(this.retry, tries, response.headers.get('retry-after'))
      if (isRetryableResponse(response) && canWait(wait)) {
        await sleep(wait, signal)
        continue
      }
      const body = (typeof result.error === 'object' && result.error !== null ? result.error : {}) as { code?: string, message?: string }
      throw new VecwalError(`${what}: ${response.status} ${body.code ?? ''} ${body.message ?? ''}`.trim(), response.status, body.code, tries)
    }
  }

  /**
   * Sends a checkpoint, tried again when no answer came; should that retry find a later checkpoint
   * already made (409 WAL_CHECKPOINT_BACKWARDS), the first try landed and another after it: it
   * resolves with the checkpoint `current` then reads.
   */
  async checkpoint<T> (signal: AbortSignal | undefined, call: () => Promise<{ data?: T, error?: unknown, response: Response }>, current: () => Promise<number>): Promise<(T & { superseded: false }) | { checkpoint: number, superseded: true }> {
    let unanswered = false
    try {
      const { data } = await this.send('checkpoint', true, signal, async () => {
        try {
          return await call()
        } catch (err) {
          unanswered = true
          throw err
        }
      })
      return { ...data, superseded: false }
    } catch (err) {
      if (!unanswered || !(err instanceof VecwalError) || err.code !== 'WAL_CHECKPOINT_BACKWARDS') throw err
      return { checkpoint: await current(), superseded: true }
    }
  }

  /** Request options of a write: its body's form, and the idempotency key every try of it carries. */
  writeInit (options: WriteOptions): { signal?: AbortSignal, headers: Record<string, string>, bodySerializer: (body: unknown) => Uint8Array | string } {
    const headers: Record<string, string> = { 'idempotency-key': options.idempotencyKey ?? idempotencyKey() }
    if (options.expectedLastSeq !== undefined) headers['vecwal-expected-last-seq'] = String(options.expectedLastSeq)
    const body = this.bodyInit()
    return { signal: options.signal, bodySerializer: body.bodySerializer, headers: { ...body.headers, ...headers } }
  }

  bodyInit (): { bodySerializer: (body: unknown) => Uint8Array | string, headers?: Record<string, string> } {
    if (this.encoding === 'json') return { bodySerializer: writeJson }
    return { bodySerializer: body => packr.pack(body), headers: { 'content-type': 'application/msgpack' } }
  }

  /**
   * Entries as this encoding sends them: vectors as Float32Array in msgpack, as arrays of numbers in
   * JSON. Typed as the API's entries, which the generated types know: msgpack's bodySerializer packs
   * a Float32Array as the typed-array extension the service reads.
   */
  wire (entries: readonly Entry[]): ApiEntry[] {
    return entries.map(entry => {
      if (!('vector' in entry)) return entry
      const { vector } = entry
      if (this.encoding === 'msgpack') return vector instanceof Float32Array ? entry : { ...entry, vector: Float32Array.from(vector) }
      return vector instanceof Float32Array ? { ...entry, vector: Array.from(vector) } : entry
    }) as ApiEntry[]
  }
}

export class VecwalClient {
  private readonly caller: Caller

  constructor (options: ClientOptions) {
    this.caller = new Caller(options)
  }

  /** The generated client, for every route (status, recovery, health and what later versions add). */
  get api (): Client<paths> {
    return this.caller.api
  }

  /** Appends one entry; resolves once it is durable. Tried again with the same idempotency key when no answer came, or on 429/503/Retry-After. */
  async append (entry: Entry, options: WriteOptions = {}): Promise<Appended> {
    // One key for every try, so that the service can tell a retry from a new write.
    const init = { ...this.caller.writeInit(options), body: this.caller.wire([entry])[0] }
    const { data, response, attempts } = await this.caller.send('append', true, options.signal, async () => await this.api.POST('/v1/entries', init))
    return { seq: data.seq, replayed: replayed(response), attempts }
  }

  /** Appends entries as one atomic record under one seq, tried again as append is. */
  async appendBatch (entries: readonly Entry[], options: WriteOptions = {}): Promise<BatchAppended> {
    const init = { ...this.caller.writeInit(options), body: { entries: this.caller.wire(entries) } }
    const { data, response, attempts } = await this.caller.send('batch', true, options.signal, async () => await this.api.POST('/v1/batch', init))
    return { seq: data.seq, count: data.count, replayed: replayed(response), attempts }
  }

  /** Opens a transaction: entries staged in the service's memory, written as one record by commit. */
  async transaction (signal?: AbortSignal): Promise<Transaction> {
    // An open whose answer was lost leaves an empty transaction that expires by itself: safe to repeat.
    const { data } = await this.caller.send('open a transaction', true, signal, async () => await this.api.POST('/v1/transactions', { signal }))
    return new Transaction(this.caller, data.txId)
  }

  /** Marks everything up to `seq` (default: the last seq) as held by the consumer `default`, tried again as Caller.checkpoint says. */
  async checkpoint (seq?: number, signal?: AbortSignal): Promise<Checkpointed> {
    return await this.caller.checkpoint(signal, async () => await this.api.POST('/v1/checkpoints', { signal, body: seq === undefined ? undefined : { seq } }),
      async () => (await this.status(signal)).checkpoint)
  }

  /**
   * The records after `after` (or `consumer`'s checkpoint), then each new one once it is durable, as
   * an async iterator: reconnects after the last seq it yielded when the connection drops or the
   * service restarts; ends after `limit` records; throws FollowEndedError if the log failed or
   * retention passed the reader. Break out of the loop, or abort `signal`, to stop following.
   */
  follow (options: FollowOptions = {}): AsyncGenerator<FollowedRecord, void, undefined> {
    return follow(async (query, accept, signal) => await this.api.GET('/v1/recovery', { params: { query }, headers: { accept }, parseAs: 'stream', signal }), this.caller.retry, options)
  }

  /** A named consumer: its own checkpoint, which holds retention, and where `follow({ consumer })` starts. */
  consumer (name: string): Consumer {
    return new Consumer(this.caller, name)
  }

  async status (signal?: AbortSignal): Promise<Status> {
    return (await this.caller.send('status', true, signal, async () => await this.api.GET('/v1/status', { signal }))).data
  }

  /** Where a consumer resumes after a restart: the service's checkpoint, which may be past the last one it saw answered. */
  async resumeAfter (signal?: AbortSignal): Promise<number> {
    return (await this.status(signal)).checkpoint
  }
}

/**
 * A fresh idempotency key, a random UUID v4. crypto.randomUUID exists only in a secure context
 * (HTTPS, localhost): a page served over plain http from another host has getRandomValues alone.
 */
function idempotencyKey (): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID()
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  bytes[6] = (bytes[6] & 0x0f) | 0x40 // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80 // variant 10
  const hex = Array.from(bytes, byte => byte.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

function replayed (response: Response): boolean {
  return response.headers.get('idempotent-replayed') === 'true'
}

/** An open transaction: stage entries, then commit them as one record, or abort. */
export class Transaction {
  constructor (private readonly caller: Caller, readonly txId: string) {}

  /**
   * Stages entries; resolves with how many the transaction holds. Tried again on 429/503 (the service
   * staged nothing) but not when no answer came: staging twice would commit the entries twice, so
   * that throws, and the caller aborts and starts again.
   */
  async stage (entries: Entry | readonly Entry[], signal?: AbortSignal): Promise<number> {
    const list = Array.isArray(entries) ? entries as readonly Entry[] : [entries as Entry]
    const { data } = await this.caller.send('stage', false, signal, async () =>
      await this.caller.api.POST('/v1/transactions/{txId}/entries', { ...this.caller.bodyInit(), signal, params: { path: { txId: this.txId } }, body: { entries: this.caller.wire(list) } }))
    return data.staged
  }

  /** Commits the staged entries as one record, tried again with one idempotency key as appends are. */
  async commit (options: Omit<WriteOptions, 'expectedLastSeq'> = {}): Promise<BatchAppended> {
    const headers = { 'idempotency-key': options.idempotencyKey ?? idempotencyKey() }
    const { data, response, attempts } = await this.caller.send('commit', true, options.signal, async () =>
      await this.caller.api.POST('/v1/transactions/{txId}/commit', { signal: options.signal, headers, params: { path: { txId: this.txId } } }))
    return { seq: data.seq, count: data.count, replayed: replayed(response), attempts }
  }

  /** Drops the staged entries. Not repeated when no answer came: the service forgets an idle transaction by itself. */
  async abort (signal?: AbortSignal): Promise<void> {
    await this.caller.send('abort', false, signal, async () =>
      await this.caller.api.POST('/v1/transactions/{txId}/abort', { signal, params: { path: { txId: this.txId } } }))
  }
}

/** A named consumer (PUT /v1/consumers/{name}): create it, read its state, move its checkpoint. */
export class Consumer {
  constructor (private readonly caller: Caller, readonly name: string) {}

  /**
   * Creates it at checkpoint `after` (default: before the oldest record held). Creating it again at
   * the same start changes nothing, so a create whose answer was lost is tried again.
   */
  async create (after?: number, signal?: AbortSignal): Promise<ConsumerState> {
    const init = { signal, params: { path: { name: this.name } }, body: after === undefined ? {} : { after } }
    return (await this.caller.send('create consumer', true, signal, async () => await this.caller.api.PUT('/v1/consumers/{name}', init))).data
  }

  async get (signal?: AbortSignal): Promise<ConsumerState> {
    const init = { signal, params: { path: { name: this.name } } }
    return (await this.caller.send('consumer', true, signal, async () => await this.caller.api.GET('/v1/consumers/{name}', init))).data
  }

  /** Marks everything up to `seq` (default: the last seq) as persisted by this consumer, tried again as Caller.checkpoint says. */
  async checkpoint (seq?: number, signal?: AbortSignal): Promise<ConsumerCheckpointed> {
    const init = { signal, params: { path: { name: this.name } }, body: seq === undefined ? {} : { seq } }
    return await this.caller.checkpoint(signal, async () => await this.caller.api.POST('/v1/consumers/{name}/checkpoint', init),
      async () => (await this.get(signal)).checkpoint)
  }
}
