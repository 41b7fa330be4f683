// The reader of a followed stream (GET /v1/recovery?follow=true): it decodes NDJSON, msgpack or SSE as it
// arrives, skips heartbeats, and reconnects after the last seq it yielded when the connection drops
// or the service says it is shutting down, so that a caller sees every record once and in order.
import { createParser } from 'eventsource-parser'
import { Unpackr } from 'msgpackr'
import { FollowEndedError, VecwalError } from './errors.js'
import type { components } from './openapi-types.js'
import { isRetryableResponse, retryDelayMs, sleep, type RetryPolicy } from './retry.js'

/** A record with its vectors as a stream form gives them. */
type WithStreamVectors<R> = R extends { vector: number[] }
  ? Omit<R, 'vector'> & { vector: number[] | Float32Array }
  : R extends { entries: Array<infer E> } ? Omit<R, 'entries'> & { entries: Array<WithStreamVectors<E>> } : R

/**
 * A record as the stream gives it, typed by the document's RecoveryRecord: msgpack vectors are
 * Float32Array, NDJSON and SSE vectors arrays of numbers.
 */
export type FollowedRecord = WithStreamVectors<components['schemas']['RecoveryRecord']>

export type FollowFormat = 'ndjson' | 'msgpack' | 'sse'

export interface FollowOptions {
  /** Start after this seq; default after `consumer`'s checkpoint, else the service's default. */
  after?: number
  /** Start after this named consumer's checkpoint (unless `after` is given). */
  consumer?: string
  /** At most this many records in all, across reconnects; the iterator then ends. */
  limit?: number
  /** The body form read; default ndjson. `sse` gives records as NDJSON does. */
  format?: FollowFormat
  signal?: AbortSignal
}

/** What one connection asks for: the query of GET /v1/recovery. */
export interface FollowQuery { follow: 'true', after?: number, consumer?: string, limit?: number }

/** Opens one connection; the answer's body is read as a stream. */
export type FollowConnect = (query: FollowQuery, accept: string, signal: AbortSignal | undefined) => Promise<{ data?: ReadableStream<Uint8Array> | null, error?: unknown, response: Response }>

const ACCEPT: Record<FollowFormat, string> = { ndjson: 'application/x-ndjson', msgpack: 'application/msgpack', sse: 'text/event-stream' }

const unpackr = new Unpackr({ moreTypes: true, useRecords: false })

/** A stream's last line: why it ended. */
interface End { end: 'limit' | 'shutdown' | 'failed' | 'gone' | 'unavailable', code?: string, message?: string }

type Item = { record: FollowedRecord } | { end: End }

/** What one decoded value is: nothing for a heartbeat, else a record or the last line. */
function toItems (value: unknown): Item[] {
  if (value === null || value === undefined) return []
  const object = value as Record<string, unknown>
  if (typeof object.end === 'string' && object.seq === undefined) return [{ end: object as unknown as End }]
  return [{ record: object as FollowedRecord }]
}

/** Turns a body's chunks, as they come, into the items they complete; a partial item waits for the next chunk. */
type Decoder = (chunk: Uint8Array) => Item[]

function ndjsonDecoder (): Decoder {
  const text = new TextDecoder()
  let lines = ''
  return chunk => {
    lines += text.decode(chunk, { stream: true })
    const complete = lines.split('\n')
    lines = complete.pop() ?? ''
    return complete.flatMap(line => line === '' ? [] : toItems(JSON.parse(line)))
  }
}

function msgpackDecoder (): Decoder {
  let bytes = new Uint8Array(0)
  return chunk => {
    const joined = new Uint8Array(bytes.length + chunk.length)
    joined.set(bytes)
    joined.set(chunk, bytes.length)
    const values: unknown[] = []
    let used = 0
    try {
      unpackr.unpackMultiple(joined, (decoded: unknown, _start?: number, end?: number) => {
        values.push(decoded)
        used = end ?? joined.length
      })
    } catch (err) {
      // A map split across two chunks: the rest of it comes with the next one.
      if ((err as { incomplete?: boolean }).incomplete !== true) throw err
    }
    bytes = joined.slice(used)
    return values.flatMap(toItems)
  }
}

/**
 * Server-Sent Events, parsed by eventsource-parser (line endings, multi-line data, BOM as the
 * standard has them): a record is an event with no type, its data the record's NDJSON line; the
 * last line is `event: end`. Heartbeats are comments, and `retry` is the service's advice to a
 * browser: this reader waits as its retry policy says.
 */
function sseDecoder (): Decoder {
  const text = new TextDecoder()
  let parsed: Item[] = []
  const parser = createParser({
    onEvent: event => {
      if (event.event === undefined || event.event === 'message' || event.event === 'end') parsed.push(...toItems(JSON.parse(event.data)))
    }
  })
  return chunk => {
    parser.feed(text.decode(chunk, { stream: true }))
    const complete = parsed
    parsed = []
    return complete
  }
}

const DECODERS: Readonly<Record<FollowFormat, () => Decoder>> = { ndjson: ndjsonDecoder, msgpack: msgpackDecoder, sse: sseDecoder }

/** The items of one body, in order; a body that stops without a last line was cut. */
async function * items (body: ReadableStream<Uint8Array>, format: FollowFormat): AsyncGenerator<Item> {
  const reader = body.getReader()
  const decode = DECODERS[format]()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      yield * decode(value)
    }
  } finally {
    await reader.cancel().catch(() => {})
  }
}

/**
 * Yields the followed records. A connection that fails, is refused with 429/503, drops, or ends with
 * `shutdown` is made again after the last seq yielded, waiting as the retry policy says; the tries
 * count from the last record yielded, so a long stream may reconnect any number of times. It ends on
 * `limit`, throws FollowEndedError on `failed` or `gone`, and VecwalError on any other refusal.
 */
export async function * follow (connect: FollowConnect, policy: RetryPolicy, options: FollowOptions): AsyncGenerator<FollowedRecord, void, undefined> {
  const format = options.format ?? 'ndjson'
  const { signal } = options
  let last = options.after
  let yielded = 0
  let tries = 0
  let since = Date.now()
  for (;;) {
    tries++
    const query: FollowQuery = { follow: 'true' }
    if (last !== undefined) query.after = last
    else if (options.consumer !== undefined) query.consumer = options.consumer
    if (options.limit !== undefined) query.limit = options.limit - yielded
    let retryAfter: string | null = null
    let cause: unknown
    try {
      const { data, error, response } = await connect(query, ACCEPT[format], signal)
      if (!response.ok) {
        if (!isRetryableResponse(response)) {
          const body = (typeof error === 'object' && error !== null ? error : {}) as { code?: string, message?: string }
          throw new VecwalError(`follow: ${response.status} ${body.code ?? ''} ${body.message ?? ''}`.trim(), response.status, body.code, tries)
        }
        retryAfter = response.headers.get('retry-after')
        cause = new Error(`follow: ${response.status}`)
      } else if (data !== null && data !== undefined) {
        for await (const next of items(data, format)) {
          if ('record' in next) {
            last = next.record.seq
            yielded++
            tries = 0
            since = Date.now()
            yield next.record
            continue
          }
          if (next.end.end === 'limit') return
          if (next.end.end === 'failed' || next.end.end === 'gone') throw new FollowEndedError(next.end.end, next.end.code, next.end.message)
          // shutdown (the service is stopping) or unavailable (its backend cannot be reached for
          // now): connect again, after a wait.
          break
        }
      }
    } catch (err) {
      if (err instanceof VecwalError) throw err
      signal?.throwIfAborted()
      cause = err
    }
    if (options.limit !== undefined && yielded >= options.limit) return
    const wait = retryDelayMs(policy, Math.max(tries, 1), retryAfter)
    if (tries + 1 > policy.attempts || Date.now() - since + wait > policy.maxElapsedMs) {
      throw new VecwalError(`follow: no stream after ${tries} tries`, undefined, undefined, tries, { cause })
    }
    await sleep(wait, signal)
  }
}
