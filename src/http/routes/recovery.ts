// GET /v1/recovery: the records after a seq as NDJSON, as msgpack for a client that asks for it
// (Accept: application/msgpack), or as Server-Sent Events (Accept: text/event-stream), streamed
// from disk. The stream pulls from the log only as fast as the socket drains, so a slow or vanished
// reader holds at most a few chunks; at most `maxStreams` are open at once, and together they make
// one chunk per turn of the event loop. With `follow=true` a stream goes on as the log grows, each
// record sent once it is durable, a heartbeat keeping an idle one open; with `wait=S` a bounded read
// waits up to S seconds for a first record (long poll).
import type { ServerResponse } from 'node:http'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { pack } from 'msgpackr'
import type { Log, LogRead } from '../../log.js'
import { InvalidRequestError, TooManyStreamsError } from '../errors.js'
import type { Metrics } from '../metrics.js'
import { MSGPACK } from '../msgpack.js'
import { ErrorResponse, sinceMs, type ApiSchemas } from '../schemas.js'
import { retryAfterHeader, writeErrors } from './writes.js'

const NDJSON = 'application/x-ndjson'
const SSE = 'text/event-stream'
type RecoveryMediaType = typeof NDJSON | typeof MSGPACK | typeof SSE

/** The highest q the Accept header gives `mediaType` itself (wildcards aside), 0 if it names it nowhere. */
function acceptQuality (accept: string, mediaType: string): number {
  let best = 0
  for (const range of accept.split(',')) {
    const [type, ...params] = range.split(';').map(part => part.trim().toLowerCase())
    if (type !== mediaType) continue
    const q = params.find(param => param.startsWith('q='))
    best = Math.max(best, q === undefined ? 1 : Number(q.slice(2)) || 0)
  }
  return best
}

/** The form the client names most highly (SSE, then msgpack, on a tie); NDJSON when it names none. */
function recoveryMediaType (accept: string | undefined): RecoveryMediaType {
  if (accept === undefined) return NDJSON
  const ndjson = acceptQuality(accept, NDJSON)
  const msgpack = acceptQuality(accept, MSGPACK)
  const sse = acceptQuality(accept, SSE)
  if (sse > 0 && sse >= msgpack && sse >= ndjson) return SSE
  return msgpack > 0 && msgpack >= ndjson ? MSGPACK : NDJSON
}

/**
 * Why a stream ended, in its last line, map or event: `complete` (an SSE read reached the last seq
 * of its start, or its limit), `limit` (a follow read sent `limit` records), `shutdown` (the server
 * is stopping: reconnect and resume after the last seq received), `failed` (the log failed and
 * takes no writes until it is reopened), `gone` (a follower fell so far behind that retention,
 * past VECWAL_RETAIN_MAX_BYTES, deleted the records it was to read next: the message names the
 * oldest seq still held).
 */
type EndReason = 'complete' | 'limit' | 'shutdown' | 'failed' | 'gone' | 'unavailable'

/** How often a silent follow stream sends a heartbeat, unless told otherwise: well inside the idle timeouts of proxies (often 60 s). */
export const DEFAULT_HEARTBEAT_MS = 15_000

/** SSE: the client waits this long before it reconnects, in milliseconds. */
const SSE_RETRY_MS = 1000

/** What a heartbeat is in each form: bytes no reader takes for a record. */
const HEARTBEATS: Readonly<Record<RecoveryMediaType, Buffer>> = {
  // An empty line, which NDJSON readers skip.
  [NDJSON]: Buffer.from('\n'),
  // msgpack nil: a value of its own between two maps, which a stream decoder yields as null.
  [MSGPACK]: Buffer.from([0xc0]),
  // A comment line, which EventSource ignores.
  [SSE]: Buffer.from(': heartbeat\n\n')
}

/**
 * The errors a follow stream ends with a last line for, and the line's reason: the log failed,
 * retention passed the follower, or the backend cannot be reached for now (the JetStream cluster).
 */
const FOLLOW_ENDS: Readonly<Record<string, EndReason>> = { WAL_FAILED: 'failed', WAL_RANGE_GONE: 'gone', WAL_UNAVAILABLE: 'unavailable' }

/** A stream's last words: `{"end": reason}`, and the error's code and message when the log failed. */
function endBytes (mediaType: RecoveryMediaType, reason: EndReason, err?: { code?: string, message: string }): Buffer {
  const end = err === undefined ? { end: reason } : { end: reason, code: err.code, message: err.message }
  if (mediaType === MSGPACK) return pack(end)
  const line = JSON.stringify(end)
  return Buffer.from(mediaType === SSE ? `event: end\ndata: ${line}\n\n` : `${line}\n`)
}

const SEQ_PREFIX = Buffer.from('{"seq":')
const NEWLINE = 0x0a

/**
 * NDJSON chunks as SSE events, one a record: `id: <seq>`, `data: <the NDJSON line>`. A line never
 * holds a newline (JSON escapes them), and starts with its seq. A line cut by a chunk's end waits
 * for the rest; each chunk goes back to `recycle` once framed, its bytes copied out.
 */
async function * sseEvents (lines: AsyncIterable<Buffer>, recycle: (chunk: Buffer) => void): AsyncGenerator<Buffer> {
  let pending: Buffer[] = []
  for await (const chunk of lines) {
    const parts: Buffer[] = []
    let from = 0
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, from)) {
      const line = pending.length === 0 ? chunk.subarray(from, nl) : Buffer.concat([...pending, chunk.subarray(from, nl)])
      pending = []
      let end = SEQ_PREFIX.length
      while (line[end] >= 0x30 && line[end] <= 0x39) end++
      parts.push(Buffer.from(`id: ${line.toString('latin1', SEQ_PREFIX.length, end)}\ndata: `), line, Buffer.from('\n\n'))
      from = nl + 1
    }
    if (from < chunk.length) pending.push(Buffer.from(chunk.subarray(from)))
    const events = Buffer.concat(parts)
    recycle(chunk)
    if (events.length > 0) yield events
  }
}

/** Resolves once `res` can take more, or is gone. */
async function drained (res: ServerResponse): Promise<void> {
  await new Promise<void>(resolve => {
    const done = (): void => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

/**
 * Turns of the event loop, handed to the streams one at a time: each turn, one waiting stream may
 * make and write one chunk, after the loop has taken in what I/O is ready (requests, fsyncs done).
 * A socket with room in its kernel buffer takes a write at once, so without this a stream would
 * transcode a whole read buffer in one go, and a few streams would keep the writes' requests and
 * fsyncs waiting for seconds. (A chunk whose making needs a read from disk is finished when the read
 * completes, outside the turns: one chunk in sixteen.)
 */
class StreamTurns {
  private readonly waiting: Array<() => void> = []
  private scheduled = false

  /** Resolves when it is the caller's turn. */
  async take (): Promise<void> {
    await new Promise<void>(resolve => {
      this.waiting.push(resolve)
      this.schedule()
    })
  }

  private schedule (): void {
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      this.waiting.shift()?.()
      if (this.waiting.length > 0) this.schedule()
    })
  }
}

/** For a backend whose chunks are not filled again: a written chunk is simply let go. */
function keepNothing (): void {}

/**
 * Writes the chunks to `res` as fast as it drains, handing each back to `recycle` once its write is
 * done. Stops reading (which closes the log's files) when `res` is gone: the client left, or
 * shutdown destroyed it. When reading fails, what was read before it is written first, then the
 * error is thrown: the caller ends or cuts the response. Each chunk after the first waits for a turn.
 */
async function writeChunks (chunks: AsyncIterable<Buffer>, res: ServerResponse, recycle: (chunk: Buffer) => void, turns: StreamTurns): Promise<void> {
  let written = Promise.resolve()
  try {
    for await (const chunk of chunks) {
      if (res.destroyed) return
      let more = true
      written = new Promise(resolve => {
        more = res.write(chunk, err => {
          if (err == null) recycle(chunk)
          resolve()
        })
      })
      if (!more) await drained(res)
      await turns.take()
    }
  } catch (err) {
    await written
    throw err
  }
}

/**
 * Writes the form's heartbeat every `heartbeatMs` in which the stream sent nothing, while the read
 * waits for records (so the heartbeat falls between two records) and the socket is not backed up.
 * Returns the stop.
 */
function startHeartbeats (res: ServerResponse, read: LogRead, heartbeat: Buffer, heartbeatMs: number): () => void {
  let written = res.socket?.bytesWritten ?? 0
  const timer = setInterval(() => {
    const now = res.socket?.bytesWritten ?? 0
    if (now === written && read.caughtUp() && !res.writableNeedDrain && !res.destroyed) res.write(heartbeat)
    written = res.socket?.bytesWritten ?? 0
  }, heartbeatMs)
  return () => { clearInterval(timer) }
}

/** A follow stream: its end, and when it is over. */
interface Follower {
  abort: AbortController
  done: Promise<void>
}

/** How long shutdown lets a follower finish its last record and end line, before it is cut. */
const FOLLOW_SHUTDOWN_GRACE_MS = 1000

/** The seq a Last-Event-ID header names, or undefined without one. */
function lastEventId (header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined
  const value = Array.isArray(header) ? header[0] : header
  const seq = /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(seq)) throw new InvalidRequestError('header Last-Event-ID must be a seq (a non-negative integer)')
  return seq
}

export interface RecoveryRouteOptions {
  log: Log
  schemas: ApiSchemas
  /** Streams open at once, follow streams included; past it 503 HTTP_TOO_MANY_STREAMS. */
  maxStreams: number
  /** A follow stream that sent nothing this long sends a heartbeat. */
  heartbeatMs: number
  metrics: Pick<Metrics, 'followStreams'>
}

export const recoveryRoutes: FastifyPluginAsyncTypebox<RecoveryRouteOptions> = async (app, { log, schemas, maxStreams, heartbeatMs, metrics }) => {
  /** Open streams; a follower with its abort. */
  const responses = new Map<ServerResponse, Follower | undefined>()
  /** Long polls waiting, ended at shutdown. */
  const waits = new Set<AbortController>()
  const turns = new StreamTurns()
  let closing = false
  // Shutdown waits for open responses: bounded streams are cut rather than wait for slow readers;
  // followers end cleanly with a last line saying so, and are cut if they cannot take it soon.
  app.addHook('preClose', async () => {
    closing = true
    for (const wait of waits) wait.abort()
    const followers: Array<Promise<void>> = []
    for (const [res, follower] of responses) {
      if (follower === undefined) {
        res.destroy()
      } else {
        follower.abort.abort()
        followers.push(follower.done)
      }
    }
    let grace: NodeJS.Timeout | undefined
    await Promise.race([Promise.all(followers), new Promise(resolve => { grace = setTimeout(resolve, FOLLOW_SHUTDOWN_GRACE_MS) })])
    clearTimeout(grace)
    for (const res of responses.keys()) res.destroy()
  })

  app.get('/v1/recovery', {
    config: { access: 'read' },
    schema: {
      summary: 'Stream the records after a seq, as NDJSON, msgpack or Server-Sent Events; follow the log, or long-poll',
      description: 'In seq order, checkpoint records left out. NDJSON unless the Accept header names ' +
        '`application/msgpack` or `text/event-stream` at least as highly: msgpack is concatenated maps with the same ' +
        'keys, vectors as msgpackr\'s Float32Array extension; SSE is one event a record, `id: <seq>` and `data: <the NDJSON line>`, ' +
        'after a first `retry: 1000`, and ends with `event: end` (`data: {"end":"complete"}` for a read that does not follow). ' +
        'SSE takes the `Last-Event-ID` header, which wins over `after`. ' +
        'It starts after `after`, else after the checkpoint of `consumer`, else (with `since`) at the oldest retained record, else after the consumer `default`\'s checkpoint; ' +
        'with `since`, only the records stamped at or after that moment. ' +
        'X-Vecwal-Last-Seq is the last durable seq when the stream starts; a stream that does not follow ends there. ' +
        '`follow=true` keeps the stream open past it, sending each new record once it is durable, a heartbeat every ' +
        'VECWAL_HEARTBEAT_MS of silence (NDJSON: an empty line; msgpack: a nil byte 0xc0; SSE: the comment `: heartbeat`), and ' +
        'a last line, map or `end` event `{"end":"limit"|"shutdown"|"failed"|"gone"|"unavailable"}` (failed, gone and unavailable with the code and message). ' +
        '`wait=S` (a read that does not follow) waits up to S seconds for a first record after the start, then answers. ' +
        '410 if retention deleted an entry after the start (a consumer retention passed), 416 if past the last seq, 404 for an unknown consumer. ' +
        '503 WAL_UNAVAILABLE with Retry-After when a read that does not follow cannot begin because the log\'s storage cannot be reached (JetStream backend: no quorum, or no connection). ' +
        '503 HTTP_TOO_MANY_STREAMS with Retry-After when VECWAL_MAX_STREAMS streams, followers included, are open already.',
      querystring: schemas.RecoveryQuery,
      headers: Type.Object({
        'last-event-id': Type.Optional(Type.String({ description: 'SSE: resume after this seq (wins over `after`); EventSource sends it when it reconnects' }))
      }),
      response: {
        200: {
          description: 'One record a line (NDJSON), one msgpack map a record (vectors as float32 typed arrays), or one SSE event a record (its data the NDJSON line): each a RecoveryRecord (components.schemas)',
          headers: {
            'x-vecwal-checkpoint': Type.Integer({ description: 'the checkpoint of `consumer`, or of the consumer `default`' }),
            'x-vecwal-last-seq': Type.Integer({ description: 'the last durable seq when the stream started; a stream that does not follow ends there' })
          },
          content: {
            [NDJSON]: { schema: Type.String() },
            [MSGPACK]: { schema: Type.String({ format: 'binary' }) },
            [SSE]: { schema: Type.String() }
          }
        },
        503: {
          ...ErrorResponse,
          description: 'HTTP_TOO_MANY_STREAMS: VECWAL_MAX_STREAMS streams, followers included, are open already; WAL_UNAVAILABLE: the JetStream cluster did not answer; HTTP_SHUTTING_DOWN, WAL_CLOSED, WAL_FAILED',
          headers: retryAfterHeader('503 HTTP_TOO_MANY_STREAMS and 503 WAL_UNAVAILABLE')
        },
        ...writeErrors
      }
    }
  }, async (request, reply) => {
    const { query } = request
    const follow = query.follow === 'true'
    if (follow && query.wait !== undefined) throw new InvalidRequestError('querystring/wait is for a read that does not follow; leave it out with follow=true')
    const mediaType = recoveryMediaType(request.headers.accept)
    const { consumer, since } = query
    const sinceTime = since === undefined ? undefined : sinceMs(since)
    if (since !== undefined && sinceTime === undefined) throw new InvalidRequestError(`querystring/since ${since} names no moment`)
    const after = (mediaType === SSE ? lastEventId(request.headers['last-event-id']) : undefined) ?? query.after
    if (query.wait !== undefined && query.wait > 0) {
      const wait = new AbortController()
      waits.add(wait)
      reply.raw.once('close', () => { wait.abort() })
      try {
        await log.waitForRecords({ after: after ?? (consumer === undefined ? undefined : log.consumers.get(consumer).checkpoint), timeoutMs: query.wait * 1000, signal: wait.signal })
      } finally {
        waits.delete(wait)
      }
    }
    if (responses.size >= maxStreams) throw new TooManyStreamsError(maxStreams)
    const res = reply.raw
    // A client that left during the wait is owed nothing, and takes no slot.
    if (res.destroyed) return await reply.hijack()
    const abort = follow ? new AbortController() : undefined
    let finished = (): void => {}
    // The slot is the stream's from here, while its read begins too (which may wait on the log's
    // storage), and goes when the connection closes, whenever that is.
    responses.set(res, abort === undefined ? undefined : { abort, done: new Promise(resolve => { finished = resolve }) })
    const release = (): void => {
      responses.delete(res)
      abort?.abort()
    }
    res.once('close', release)
    const read = log.read({ after, limit: query.limit, consumer, since: sinceTime, follow, signal: abort?.signal })
    try {
      // A read that does not follow has no last line to say its log cannot be reached: it learns
      // that before its head, and is refused (503 WAL_UNAVAILABLE). A follower's ends saying so.
      if (!follow) await read.start?.()
    } catch (err) {
      release()
      throw err
    }
    // Written by hand rather than sent as a stream: a chunk handed back once its write is done is
    // filled again, where a piped stream's chunks are each garbage. onResponse still runs.
    reply.hijack()
    res.writeHead(200, {
      'content-type': mediaType,
      'x-vecwal-checkpoint': String(read.checkpoint),
      'x-vecwal-last-seq': String(read.lastSeq),
      'cache-control': 'no-store',
      vary: 'accept'
    })
    if (mediaType === SSE) res.write(`retry: ${SSE_RETRY_MS}\n\n`)
    else if (follow) res.flushHeaders()
    let stopHeartbeats = (): void => {}
    if (follow) {
      metrics.followStreams.inc()
      stopHeartbeats = startHeartbeats(res, read, HEARTBEATS[mediaType], heartbeatMs)
    }
    const recycle = read.recycle ?? keepNothing
    const chunks = mediaType === MSGPACK ? read.msgpack : mediaType === SSE ? sseEvents(read.ndjson, recycle) : read.ndjson
    try {
      await writeChunks(chunks, res, mediaType === SSE ? keepNothing : recycle, turns)
      // A client that left gets nothing more; one still there learns why its stream ends.
      const reason: EndReason = !follow ? 'complete' : closing || log.state === 'closed' ? 'shutdown' : 'limit'
      if (!res.destroyed) res.end(follow || mediaType === SSE ? endBytes(mediaType, reason) : undefined)
    } catch (err) {
      const { code } = err as { code?: string }
      const reason = follow ? FOLLOW_ENDS[code ?? ''] : undefined
      if (reason !== undefined) {
        if (reason !== 'failed') request.log.warn({ err }, reason === 'gone' ? 'retention passed a follower' : 'a follower\'s log could not be read')
        if (!res.destroyed) res.end(endBytes(mediaType, reason, err as Error))
      } else {
        // Damage: what was read before it went out; the response is cut off rather than ended, so
        // that no client takes it for the whole stream.
        res.destroy()
        request.log.error({ err }, 'recovery stream failed')
      }
    } finally {
      stopHeartbeats()
      if (follow) metrics.followStreams.dec()
      finished()
    }
  })
}
