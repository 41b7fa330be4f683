// Named consumers: each keeps its own checkpoint, and retention keeps every record above the lowest.
// The consumer `default` is the one POST /v1/checkpoints moves.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Log } from '../../log.js'
import { CheckpointResponse, ConsumerBody, ConsumerListResponse, ConsumerParams, ConsumerResponse, type ApiSchemas } from '../schemas.js'
import { writeBodyTypes, writeErrors } from './writes.js'

export const consumerRoutes: FastifyPluginAsyncTypebox<{ log: Log, schemas: ApiSchemas }> = async (app, { log, schemas }) => {
  app.put('/v1/consumers/:name', {
    config: { access: 'admin', optionalBody: true },
    schema: {
      summary: 'Create a consumer',
      description: 'It starts at checkpoint `after` (default: just before the oldest retained record) and holds retention there. ' +
        '201 when created; 200, changing nothing, when it exists and `after` is absent or its start; 409 WAL_CONSUMER_EXISTS for another start; ' +
        '409 WAL_CONSUMER_LIMIT past 64 consumers; 410 if retention deleted an entry after `after`, 416 if past the last seq.',
      consumes: writeBodyTypes,
      params: ConsumerParams,
      body: ConsumerBody,
      response: { 200: ConsumerResponse, 201: ConsumerResponse, ...writeErrors }
    }
  }, async (request, reply) => {
    const { consumer, created } = await log.consumers.create(request.params.name, request.body.after)
    return reply.code(created ? 201 : 200).send(consumer)
  })

  app.get('/v1/consumers', {
    config: { access: 'read' },
    schema: {
      summary: 'List the consumers, by name',
      response: { 200: ConsumerListResponse, ...writeErrors }
    }
  }, async () => ({ consumers: log.consumers.list() }))

  app.get('/v1/consumers/:name', {
    config: { access: 'read' },
    schema: {
      summary: 'One consumer: its checkpoint, lag, last checkpoint time, and whether retention passed it',
      description: '404 WAL_CONSUMER_NOT_FOUND if there is none of that name.',
      params: ConsumerParams,
      response: { 200: ConsumerResponse, ...writeErrors }
    }
  }, async request => log.consumers.get(request.params.name))

  app.delete('/v1/consumers/:name', {
    config: { access: 'admin' },
    schema: {
      summary: 'Delete a consumer',
      description: 'Retention no longer waits for it. 404 WAL_CONSUMER_NOT_FOUND if there is none of that name.',
      params: ConsumerParams,
      response: { 204: { description: 'deleted', type: 'null' }, ...writeErrors }
    }
  }, async (request, reply) => {
    await log.consumers.delete(request.params.name)
    return reply.code(204).send()
  })

  app.post('/v1/consumers/:name/checkpoint', {
    config: { access: 'admin', optionalBody: true },
    schema: {
      summary: 'Record that the consumer has persisted everything up to seq',
      description: 'As POST /v1/checkpoints, for this consumer: seq defaults to the last seq; 409 if it moves back or passes the last seq; ' +
        '404 WAL_CONSUMER_NOT_FOUND if there is none of that name.',
      consumes: writeBodyTypes,
      params: ConsumerParams,
      body: schemas.CheckpointBody,
      response: { 201: CheckpointResponse, ...writeErrors }
    }
  }, async (request, reply) => {
    const result = await log.consumers.checkpoint(request.params.name, request.body.seq)
    return reply.code(201).send(result)
  })
}
