// GET /v1/recovery: the records after a seq as NDJSON, or as msgpack for a client that asks for it
// (Accept: application/msgpack), streamed from disk. The stream pulls from the log only as fast as
// the socket drains, so a slow or vanished reader holds at most a few chunks; at most `maxStreams`
// are open at once, and together they make one chunk per turn of the event loop.
import type { ServerResponse } from 'node:http'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { Log } from '../../log.js'
import { InvalidRequestError, TooManyStreamsError } from '../errors.js'
import { MSGPACK } from '../msgpack.js'
import { sinceMs, type ApiSchemas } from '../schemas.js'
import { writeErrors } from './writes.js'

const NDJSON = 'application/x-ndjson'

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

/** msgpack when the client names it, at least as highly as NDJSON; NDJSON otherwise. */
function recoveryMediaType (accept: string | undefined): typeof NDJSON | typeof MSGPACK {
  if (accept === undefined) return NDJSON
  const msgpack = acceptQuality(accept, MSGPACK)
  return msgpack > 0 && msgpack >= acceptQuality(accept, NDJSON) ? MSGPACK : NDJSON
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
 * shutdown destroyed it. When reading fails (damage), what was read before it reaches the client,
 * then the response is cut off rather than ended, so that no client takes it for the whole stream.
 * Each chunk after the first waits for a turn.
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
    res.destroy()
    throw err
  }
  res.end()
}

export interface RecoveryRouteOptions {
  log: Log
  schemas: ApiSchemas
  /** Streams open at once; past it 503 HTTP_TOO_MANY_STREAMS. */
  maxStreams: number
}

export const recoveryRoutes: FastifyPluginAsyncTypebox<RecoveryRouteOptions> = async (app, { log, schemas, maxStreams }) => {
  const responses = new Set<ServerResponse>()
  const turns = new StreamTurns()
  // Shutdown waits for open responses: end the streams rather than wait for slow readers.
  app.addHook('preClose', async () => {
    for (const res of responses) res.destroy()
  })

  app.get('/v1/recovery', {
    config: { access: 'read' },
    schema: {
      summary: 'Stream the records after a seq, as NDJSON or msgpack',
      description: 'In seq order, checkpoint records left out. NDJSON unless the Accept header names ' +
        '`application/msgpack` (at least as highly as NDJSON): then concatenated msgpack maps with the same ' +
        'keys, vectors as msgpackr\'s Float32Array extension. ' +
        'X-Vecwal-Last-Seq is the last durable seq when the stream starts; the stream ends there. ' +
        'It starts after `after`, else after the checkpoint of `consumer`, else (with `since`) at the oldest retained record, else after the consumer `default`\'s checkpoint; ' +
        'with `since`, only the records stamped at or after that moment. ' +
        '410 if the start lies before the oldest retained record (a consumer retention passed), 416 if past the last seq, 404 for an unknown consumer. ' +
        '503 HTTP_TOO_MANY_STREAMS with Retry-After when VECWAL_MAX_STREAMS streams are open already.',
      querystring: schemas.RecoveryQuery,
      response: {
        200: {
          description: 'One record a line (NDJSON), or one msgpack map a record',
          headers: {
            'x-vecwal-checkpoint': Type.Integer({ description: 'the checkpoint of `consumer`, or of the consumer `default`' }),
            'x-vecwal-last-seq': Type.Integer({ description: 'the last durable seq when the stream started; it ends there' })
          },
          content: {
            [NDJSON]: { schema: Type.String() },
            [MSGPACK]: { schema: Type.String({ format: 'binary' }) }
          }
        },
        ...writeErrors
      }
    }
  }, async (request, reply) => {
    if (responses.size >= maxStreams) throw new TooManyStreamsError(maxStreams)
    const mediaType = recoveryMediaType(request.headers.accept)
    const { after, limit, consumer, since } = request.query
    const sinceTime = since === undefined ? undefined : sinceMs(since)
    if (since !== undefined && sinceTime === undefined) throw new InvalidRequestError(`querystring/since ${since} names no moment`)
    const read = log.read({ after, limit, consumer, since: sinceTime })
    // Written by hand rather than sent as a stream: a chunk handed back once its write is done is
    // filled again, where a piped stream's chunks are each garbage. onResponse still runs.
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, {
      'content-type': mediaType,
      'x-vecwal-checkpoint': String(read.checkpoint),
      'x-vecwal-last-seq': String(read.lastSeq),
      vary: 'accept'
    })
    responses.add(res)
    res.once('close', () => responses.delete(res))
    try {
      await writeChunks(mediaType === MSGPACK ? read.msgpack : read.ndjson, res, read.recycle ?? keepNothing, turns)
    } catch (err) {
      request.log.error({ err }, 'recovery stream failed')
    }
  })
}
