// Single entries and atomic batches. Each answer comes only once the record is durable.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Log } from '../../log.js'
import { MSGPACK } from '../msgpack.js'
import { AppendedResponse, BatchAppendedResponse, ErrorResponse, type ApiSchemas } from '../schemas.js'

export const writeErrors = { '4xx': ErrorResponse, '5xx': ErrorResponse }
export const writeBodyTypes = ['application/json', MSGPACK]

export const writeRoutes: FastifyPluginAsyncTypebox<{ log: Log, schemas: ApiSchemas }> = async (app, { log, schemas }) => {
  app.post('/v1/entries', {
    config: { access: 'write' },
    schema: {
      summary: 'Append one entry',
      description: 'Answers once the entry is fsynced. 503 with Retry-After when the write queue is full (WAL_QUEUE_FULL) or a new segment file could not be created (WAL_SEGMENT_UNAVAILABLE); 507 WAL_DISK_FULL with Retry-After while free disk space is below VECWAL_MIN_FREE_BYTES.',
      consumes: writeBodyTypes,
      body: schemas.Entry,
      response: { 201: AppendedResponse, ...writeErrors }
    }
  }, async (request, reply) => {
    const seq = await log.append(request.body)
    return reply.code(201).send({ seq })
  })

  app.post('/v1/batch', {
    config: { access: 'write' },
    schema: {
      summary: 'Append entries as one atomic record',
      description: 'All the entries or none, under one seq.',
      consumes: writeBodyTypes,
      body: schemas.BatchBody,
      response: { 201: BatchAppendedResponse, ...writeErrors }
    }
  }, async (request, reply) => {
    const { entries } = request.body
    const seq = await log.appendBatch(entries)
    return reply.code(201).send({ seq, count: entries.length })
  })
}
