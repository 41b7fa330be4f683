// What operators call: status, liveness, readiness, metrics.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Log } from '../../log.js'
import type { Metrics } from '../metrics.js'
import { Type } from '@sinclair/typebox'
import { ErrorResponse, HealthResponse, StatusResponse } from '../schemas.js'

export const operationsRoutes: FastifyPluginAsyncTypebox<{ log: Log, metrics: Metrics }> = async (app, { log, metrics }) => {
  app.get('/v1/status', {
    config: { access: 'read' },
    schema: { summary: 'The log: last seq, checkpoint, state, segments', response: { 200: StatusResponse } }
  }, async () => log.status())

  app.get('/health/live', {
    config: { access: 'open' },
    schema: { summary: 'The process is up', response: { 200: HealthResponse } }
  }, async () => ({ status: 'ok' }))

  app.get('/health/ready', {
    config: { access: 'open' },
    schema: {
      summary: 'Ready only while the log is open, not failed, and its storage can be reached',
      description: '503 with the log\'s state when it is unavailable (JetStream backend: the NATS connection is down, or the stream has no leader that hears from a quorum of its replicas; ' +
        'ready again once the log finds its stream led), failed or closed; while the service shuts down, 503 HTTP_SHUTTING_DOWN in the error shape.',
      response: { 200: HealthResponse, 503: Type.Union([HealthResponse, ErrorResponse]) }
    }
  }, async (_request, reply) => {
    const state = log.state
    return reply.code(state === 'ok' ? 200 : 503).send({ status: state })
  })

  app.get('/metrics', {
    config: { access: 'metrics' },
    schema: { summary: 'Prometheus metrics', produces: ['text/plain'] }
  }, async (_request, reply) => {
    const text = await metrics.registry.metrics()
    return reply.type(metrics.registry.contentType).send(text)
  })
}
