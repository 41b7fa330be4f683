// GET /v1/recovery: the records after a seq as NDJSON, streamed from disk. The stream pulls from
// the log only as fast as the socket drains, so a slow or vanished reader holds at most a few
// chunks and never holds up writers.
import { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { LogRecord } from '../../wal/payload.js'
import type { WriteAheadLog } from '../../wal/log.js'
import { recordLineBytes } from '../record-json.js'
import { ErrorResponse, type ApiSchemas } from '../schemas.js'

/** Lines are written into chunks of this many bytes: one socket write per chunk, not per line. */
const CHUNK_BYTES = 64 * 1024
/** Chunks buffered ahead of the socket at most. */
const CHUNKS_AHEAD = 4

/**
 * The records as NDJSON, in chunks of whole lines. Each chunk is a fresh buffer, since the socket
 * may still hold the last one; a line longer than a chunk gets a chunk of its own size.
 */
async function * ndjson (records: AsyncIterable<LogRecord>): AsyncGenerator<Buffer> {
  let chunk = Buffer.allocUnsafe(CHUNK_BYTES)
  let used = 0
  for await (const record of records) {
    const line = recordLineBytes(record)
    if (used + line.length > chunk.length) {
      if (used > 0) yield chunk.subarray(0, used)
      chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, line.length))
      used = 0
    }
    used += line.copy(chunk, used)
  }
  if (used > 0) yield chunk.subarray(0, used)
}

export const recoveryRoutes: FastifyPluginAsyncTypebox<{ log: WriteAheadLog, schemas: ApiSchemas }> = async (app, { log, schemas }) => {
  const streams = new Set<Readable>()
  // Shutdown waits for open responses: end the streams rather than wait for slow readers.
  app.addHook('preClose', async () => {
    for (const stream of streams) stream.destroy()
  })

  app.get('/v1/recovery', {
    config: { access: 'read' },
    schema: {
      summary: 'Stream the records after a seq as NDJSON',
      description: 'One JSON object a line, in seq order, checkpoint records left out. ' +
        'X-Vecwal-Last-Seq is the last durable seq when the stream starts; the stream ends there. ' +
        '410 if `after` lies before the oldest retained record, 416 if past the last seq.',
      querystring: schemas.RecoveryQuery,
      response: {
        200: {
          description: 'NDJSON, one record a line',
          headers: {
            'x-vecwal-checkpoint': Type.Integer({ description: 'the last checkpoint' }),
            'x-vecwal-last-seq': Type.Integer({ description: 'the last durable seq when the stream started; it ends there' })
          },
          content: { 'application/x-ndjson': { schema: Type.String() } }
        },
        '4xx': ErrorResponse,
        '5xx': ErrorResponse
      }
    }
  }, async (request, reply) => {
    const read = log.read({ after: request.query.after, limit: request.query.limit })
    const stream = Readable.from(ndjson(read.records), { objectMode: false, highWaterMark: CHUNK_BYTES * CHUNKS_AHEAD })
    streams.add(stream)
    stream.once('close', () => streams.delete(stream))
    stream.once('error', (err) => { request.log.error({ err }, 'recovery stream failed') })
    return reply
      .header('x-vecwal-checkpoint', String(read.checkpoint))
      .header('x-vecwal-last-seq', String(read.lastSeq))
      .type('application/x-ndjson')
      // The 200 schema documents the NDJSON text; what is sent is the stream that produces it.
      .send(stream as unknown as string)
  })
}
