// Checkpoints: the consumer says what it has persisted; covered segments may then be deleted.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Log } from '../../log.js'
import { CheckpointResponse, type ApiSchemas } from '../schemas.js'
import { writeBodyTypes, writeErrors } from './writes.js'

export const checkpointRoutes: FastifyPluginAsyncTypebox<{ log: Log, schemas: ApiSchemas }> = async (app, { log, schemas }) => {
  app.post('/v1/checkpoints', {
    // `curl -X POST …/v1/checkpoints` with no body at all checkpoints the last seq.
    config: { access: 'admin', optionalBody: true },
    schema: {
      summary: 'Record that the consumer has persisted everything up to seq',
      description: 'seq defaults to the last seq. 409 if it moves back or passes the last seq.',
      consumes: writeBodyTypes,
      body: schemas.CheckpointBody,
      response: { 201: CheckpointResponse, ...writeErrors }
    }
  }, async (request, reply) => {
    const result = await log.checkpoint(request.body.seq)
    return reply.code(201).send(result)
  })
}
