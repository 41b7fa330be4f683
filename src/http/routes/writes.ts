// Single entries and atomic batches. Each answer comes only once the record is durable. Writes
// take an idempotency key and an expected last seq as headers (README, "Safe retries").
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import type { FastifyReply } from 'fastify'
import type { AppendConditions, AppendResult, Log } from '../../log.js'
import { retryAfterRefusals } from '../errors.js'
import { MSGPACK } from '../msgpack.js'
import { AppendedResponse, BatchAppendedResponse, ErrorResponse, WriteHeaders, type ApiSchemas } from '../schemas.js'

/** Retry-After as an answer declares it, naming the refusals of that answer that send it. */
export function retryAfterHeader (sentWith: string): { 'retry-after': TSchema } {
  return { 'retry-after': Type.Integer({ minimum: 1, description: `seconds to wait before retrying; sent with ${sentWith}` }) }
}

export const writeErrors = {
  '4xx': { ...ErrorResponse, headers: retryAfterHeader('429 HTTP_TOO_MANY_AUTH_FAILURES (the seconds left in the address\'s window)') },
  '5xx': { ...ErrorResponse, headers: retryAfterHeader(retryAfterRefusals().join(', ')) }
}
export const writeBodyTypes = ['application/json', MSGPACK]
/** The answers of a write that takes conditions: the two refusals they add, then every error. */
export const conditionalWriteErrors = {
  412: {
    ...ErrorResponse,
    description: 'WAL_SEQ_MISMATCH: the seq of the last entry record (checkpoint and consumer records aside) was not Vecwal-Expected-Last-Seq; nothing was written. The body\'s lastSeq and the Vecwal-Last-Seq header give it',
    headers: { 'vecwal-last-seq': Type.Integer({ minimum: 0, description: 'the seq of the log\'s last entry record when the condition was checked' }) }
  },
  422: { ...ErrorResponse, description: 'WAL_IDEMPOTENCY_KEY_REUSED: the Idempotency-Key was used for a write of other content; nothing was written' },
  ...writeErrors
}

/** What a write's answer says of its headers, for the routes' descriptions. */
export const CONDITIONS_DESCRIPTION = ' With `Idempotency-Key`, a retry of the same content is answered as the first write was, with `Idempotent-Replayed: true`, writing nothing (422 WAL_IDEMPOTENCY_KEY_REUSED for other content; a retry while the first is in flight waits for it). With `Vecwal-Expected-Last-Seq: N`, written only if the last seq is N when its seq is assigned, else 412 WAL_SEQ_MISMATCH with the last seq in the body and in `Vecwal-Last-Seq`.'

/** A write's success answer, declaring the header that marks a replay. */
export function replayable<T extends TSchema> (schema: T): T & { headers: Record<string, TSchema> } {
  return { ...schema, headers: { 'idempotent-replayed': Type.Literal('true', { description: 'only on an answer given from an earlier write of the same Idempotency-Key and content; nothing was written' }) } }
}

/** The write's conditions, from its validated headers. */
export function conditionsOf (headers: Static<typeof WriteHeaders>): AppendConditions {
  return { idempotencyKey: headers['idempotency-key'], expectedLastSeq: headers['vecwal-expected-last-seq'] }
}

/** Marks an answer given from an earlier write of the same key. */
export function markReplay (reply: FastifyReply, result: AppendResult): FastifyReply {
  if (result.replayed) reply.header('idempotent-replayed', 'true')
  return reply.code(201)
}

export const writeRoutes: FastifyPluginAsyncTypebox<{ log: Log, schemas: ApiSchemas }> = async (app, { log, schemas }) => {
  app.post('/v1/entries', {
    config: { access: 'write' },
    schema: {
      summary: 'Append one entry',
      description: 'Answers once the entry is durable (fsynced; on JetStream, stored by a quorum of replicas). 503 with Retry-After when the write queue is full (WAL_QUEUE_FULL) or a new segment file could not be created (WAL_SEGMENT_UNAVAILABLE); 507 WAL_DISK_FULL with Retry-After while free disk space is below VECWAL_MIN_FREE_BYTES.' + CONDITIONS_DESCRIPTION,
      consumes: writeBodyTypes,
      headers: WriteHeaders,
      body: schemas.Entry,
      response: { 201: replayable(AppendedResponse), ...conditionalWriteErrors }
    }
  }, async (request, reply) => {
    const result = await log.appendWith(request.body, conditionsOf(request.headers))
    return markReplay(reply, result).send({ seq: result.seq })
  })

  app.post('/v1/batch', {
    // Its body's type says entries; a msgpack body may also bring them packed (src/http/msgpack.ts),
    // which appendBatchWith takes alike.
    config: { access: 'write', packedBatchBody: true },
    schema: {
      summary: 'Append entries as one atomic record',
      description: 'All the entries or none, under one seq.' + CONDITIONS_DESCRIPTION,
      consumes: writeBodyTypes,
      headers: WriteHeaders,
      body: schemas.BatchBody,
      response: { 201: replayable(BatchAppendedResponse), ...conditionalWriteErrors }
    }
  }, async (request, reply) => {
    const result = await log.appendBatchWith(request.body.entries, conditionsOf(request.headers))
    return markReplay(reply, result).send({ seq: result.seq, count: result.count })
  })
}
