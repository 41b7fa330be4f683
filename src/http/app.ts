// Builds the Fastify application: strict validation, one error shape, access control, metrics,
// and the route plugins. It is handed a log; it never touches a file.
import { Ajv, type ErrorObject } from 'ajv'
import Fastify, {
  LogController, type FastifyError, type FastifyHttpOptions, type FastifyHttpsOptions, type FastifyInstance, type FastifyReply, type FastifyServerOptions
} from 'fastify'
import type { Server as HttpServer } from 'node:http'
import type { Server } from 'node:https'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Logger } from 'pino'
import type { Log, SeqMismatch } from '../log.js'
import { TokenChecker, type RouteAccess, type TokenGrant } from './auth.js'
import type { AuthFailureLimits } from './auth-failures.js'
import {
  BodyTooLargeError, engineError, errorBody, type ErrorBody, HTTP_RETRY_AFTER, InternalError, InvalidRequestError, MalformedBodyError,
  rawErrorResponse, RouteNotFoundError, ShuttingDownError, UnsupportedMediaTypeError
} from './errors.js'
import { registerJsonParser } from './json.js'
import { PackedBatchBody, registerMsgpackParser } from './msgpack.js'
import type { Metrics } from './metrics.js'
import { OPENAPI_UI_PREFIX, openapiPlugin } from './openapi.js'
import { apiSchemas } from './schemas.js'
import { checkpointRoutes } from './routes/checkpoints.js'
import { consumerRoutes } from './routes/consumers.js'
import { operationsRoutes } from './routes/operations.js'
import { DEFAULT_HEARTBEAT_MS, recoveryRoutes } from './routes/recovery.js'
import { transactionRoutes } from './routes/transactions.js'
import { writeRoutes } from './routes/writes.js'
import { registerBodyBudget } from './body-budget.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route when tokens are configured: every route says, or the app does not start. */
    access: RouteAccess
    /** A request with no body at all is taken as `{}` (every field of the body is optional). */
    optionalBody?: boolean
    /** A msgpack batch body in the common form reaches the handler as a PackedBatchBody (src/http/msgpack.ts). */
    packedBatchBody?: boolean
  }
}

export interface AppOptions {
  log: Log
  logger: Logger
  metrics: Metrics
  bodyLimitBytes: number
  /** A connection idle this long is closed, between requests too (0: never). */
  idleTimeoutMs?: number
  /** A request must have arrived whole, headers and body, within this long (0: no deadline). */
  requestTimeoutMs?: number
  /** Connections open at once; past it Node closes a new one as soon as it is accepted (unset: no cap). */
  maxConnections?: number
  /** Recovery streams open at once, follow streams included (unset: no cap). */
  maxStreams?: number
  /** A follow stream that sent nothing this long sends a heartbeat (unset: DEFAULT_HEARTBEAT_MS). */
  heartbeatMs?: number
  /** Bytes of request bodies received at once, all requests together (unset: no cap). */
  bodyBudgetBytes?: number
  dimensions?: number
  tokens?: readonly TokenGrant[]
  protectMetrics?: boolean
  /** Failed authentications allowed per client address (unset: no limit). */
  authFailures?: AuthFailureLimits
  https?: { cert: Buffer, key: Buffer }
}

export type App = FastifyInstance

// Requests are checked exactly as sent: no coercion, no defaults, no stripping of unknown fields
// (Fastify's defaults do all three).
const ajv = new Ajv({ coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false, discriminator: true, strictNumbers: true })

/** How long after its keepAliveTimeout Node's HTTP server closes an idle kept-alive connection. */
const NODE_KEEP_ALIVE_GRACE_MS = 1000

const DECIMAL_INTEGER = /^-?\d{1,20}$/

/**
 * Query strings arrive as text. The fields their schema types as integers are converted when they
 * are written as plain decimal integers, and otherwise left as text for the schema to refuse: Ajv's
 * own coercion would also turn "Infinity" and "1e400" into numbers, and let them through.
 */
function compileTextValidator (schema: TextSchema): FastifyValidator {
  const validate = ajv.compile(schema)
  const integers = Object.entries(schema.properties ?? {}).filter(([, s]) => s.type === 'integer').map(([name]) => name)
  const validateText: FastifyValidator = (data: unknown) => {
    const fields = data as Record<string, unknown>
    for (const name of integers) {
      const value = fields[name]
      if (typeof value === 'string' && DECIMAL_INTEGER.test(value)) fields[name] = Number(value)
    }
    const valid = validate(data)
    validateText.errors = validate.errors
    return valid
  }
  return validateText
}

/** A body's validator: a PackedBatchBody was checked against the same rules as it was parsed. */
function compileBodyValidator (schema: object): FastifyValidator {
  const validate = ajv.compile(schema)
  const validateBody: FastifyValidator = (data: unknown) => {
    if (data instanceof PackedBatchBody) return true
    const valid = validate(data)
    validateBody.errors = validate.errors
    return valid
  }
  return validateBody
}

type FastifyValidator = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null }
interface TextSchema { properties?: Record<string, { type?: string }> }

function describeValidationError (error: ErrorObject, dataVar: string): string {
  const where = `${dataVar}${error.instancePath}`
  switch (error.keyword) {
    case 'additionalProperties': return `${where}/${String(error.params.additionalProperty)} is not an accepted field`
    case 'required': return `${where}/${String(error.params.missingProperty)} is required`
    case 'discriminator': return `${where}/op must be one of insert, update, delete`
    default: return `${where} ${error.message ?? 'is invalid'}`
  }
}

/** The status, code, message and retry hint a client sees for any error. */
function toClientError (err: FastifyError, bodyLimitBytes: number, contentType: string | undefined): { statusCode: number, code: string, message: string, retryAfter?: number } {
  const engine = engineError(err.code)
  if (engine !== undefined) return { statusCode: engine.statusCode, code: err.code, message: err.message, retryAfter: engine.retryAfter }
  let known: FastifyError
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      known = new BodyTooLargeError(bodyLimitBytes)
      break
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      known = new UnsupportedMediaTypeError(contentType ?? 'none', 'application/json or application/msgpack')
      break
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      known = new MalformedBodyError('HTTP', err.message)
      break
    default:
      if (err.code?.startsWith('HTTP_') === true) known = err
      else if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) known = new InvalidRequestError(err.message)
      else known = new InternalError()
  }
  return { statusCode: known.statusCode ?? 500, code: known.code, message: known.message, retryAfter: HTTP_RETRY_AFTER[known.code] }
}

export async function buildApp (options: AppOptions): Promise<App> {
  const { log, metrics, bodyLimitBytes } = options
  const idleTimeoutMs = options.idleTimeoutMs ?? 0
  const requestTimeoutMs = options.requestTimeoutMs ?? 0
  // Node checks the request deadline every connectionsCheckingInterval (30 s by default), too
  // coarse for a deadline of seconds, and would end the headers' part at 60 s whatever the deadline.
  const nodeServerOptions = {
    requestTimeout: requestTimeoutMs,
    headersTimeout: requestTimeoutMs,
    connectionsCheckingInterval: requestTimeoutMs > 0 ? Math.min(1000, requestTimeoutMs) : 30_000
  }
  const serverOptions: FastifyServerOptions = {
    loggerInstance: options.logger,
    // No log line per request: at the default level that would cost a measurable share of
    // throughput. Errors are logged by the error handler; durations go to metrics.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: bodyLimitBytes,
    // A client that stops sending a body, or stops reading a recovery stream, would otherwise hold
    // its buffers, its open segment file and shutdown up for ever.
    connectionTimeout: idleTimeoutMs,
    // Between requests Node puts keepAliveTimeout in its place (Fastify's default: 72 s) and closes
    // the connection a second after it (a grace for clients told the timeout in the Keep-Alive
    // header), so the idle rule holds for a kept-alive connection only with a second taken off.
    keepAliveTimeout: idleTimeoutMs > 0 ? Math.max(1, idleTimeoutMs - NODE_KEEP_ALIVE_GRACE_MS) : 0,
    // A client that sends a byte now and then is never idle: the request as a whole has a deadline
    // (408). It covers receiving the request only, never the response, so a long recovery stream
    // is not cut.
    requestTimeout: requestTimeoutMs,
    // Closing is answered by the hook below, in the same error shape as everything else.
    return503OnClosing: false,
    // A path Fastify cannot decode (`/v1/%zz`) and what Node's parser rejects get the same shape.
    frameworkErrors: (err, _request, reply) => {
      (reply as FastifyReply).code(400).send(errorBody(400, 'HTTP_INVALID_REQUEST', err.message))
    },
    clientErrorHandler: (err, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return
      if (socket.writable) socket.write(rawErrorResponse(err))
      socket.destroy(err)
    },
    schemaErrorFormatter: (errors, dataVar) => new InvalidRequestError(errors.map(e => describeValidationError(e as ErrorObject, dataVar)).join('; '))
  }
  const app = (options.https === undefined
    ? Fastify({ ...serverOptions, http: nodeServerOptions } as FastifyHttpOptions<HttpServer>)
    : Fastify({ ...serverOptions, https: { ...nodeServerOptions, ...options.https } } as FastifyHttpsOptions<Server>)
  ).withTypeProvider<TypeBoxTypeProvider>() as unknown as App

  // A connection past the cap is closed at once, rather than take a descriptor the log needs for
  // its next segment.
  if (options.maxConnections !== undefined) app.server.maxConnections = options.maxConnections

  // Query strings and headers arrive as text alike.
  app.setValidatorCompiler(({ schema, httpPart }) => {
    if (httpPart === 'querystring' || httpPart === 'headers') return compileTextValidator(schema as TextSchema)
    return httpPart === 'body' ? compileBodyValidator(schema) : ajv.compile(schema)
  })
  app.removeContentTypeParser('text/plain')
  registerJsonParser(app)
  registerMsgpackParser(app, options.dimensions)

  let closing = false
  app.addHook('preClose', async () => { closing = true })
  const tokens = new TokenChecker(options.tokens ?? [], options.protectMetrics ?? false, options.authFailures)
  app.addHook('onRequest', async (request, reply) => {
    if (closing) throw new ShuttingDownError()
    // A request that matched no route has no access rule: it is answered 404 whoever sends it.
    if (request.is404) return
    tokens.check(request.routeOptions.config.access, request, reply)
  })
  if (options.bodyBudgetBytes !== undefined) registerBodyBudget(app, options.bodyBudgetBytes, options.bodyLimitBytes)
  // Fastify skips body validation when there is no body at all: a route with a body schema must
  // not see `undefined`.
  app.addHook('preValidation', async (request) => {
    if (request.body !== undefined || request.routeOptions.schema?.body === undefined) return
    if (request.routeOptions.config.optionalBody !== true) throw new InvalidRequestError('body is required')
    request.body = {}
  })
  // Node closes idle keep-alive connections once, when closing begins: a connection answered after
  // that would otherwise hold shutdown up until its keep-alive timeout.
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close')
  })
  app.addHook('onResponse', async (request, reply) => {
    metrics.observeRequest(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000)
  })

  app.setErrorHandler<FastifyError>((err, request, reply) => {
    const clientError = toClientError(err, bodyLimitBytes, request.headers['content-type'])
    if (clientError.statusCode >= 500) request.log.error({ err, code: clientError.code }, 'request failed')
    if (clientError.retryAfter !== undefined) reply.header('retry-after', String(clientError.retryAfter))
    const body: ErrorBody = errorBody(clientError.statusCode, clientError.code, clientError.message)
    // A condition that did not hold says what the last seq was, for the writer to catch up from.
    const { lastSeq } = err as Partial<SeqMismatch>
    if (clientError.code === 'WAL_SEQ_MISMATCH' && lastSeq !== undefined) {
      body.lastSeq = lastSeq
      reply.header('vecwal-last-seq', String(lastSeq))
    }
    // Sent as text, past the route's response schemas: an error (shutdown, say) may come from a route
    // whose schema for that status describes another body, /health/ready's 503 for one.
    reply.code(clientError.statusCode).type('application/json; charset=utf-8')
      .send(JSON.stringify(body))
  })
  app.setNotFoundHandler((request, reply) => {
    const err = new RouteNotFoundError(request.method, request.url.split('?')[0])
    reply.code(404).send(errorBody(404, err.code, err.message))
  })

  const schemas = apiSchemas({ dimensions: options.dimensions })
  // A route that forgot to say who may call it must not start open: it stops the app from starting.
  // The browsable OpenAPI UI, whose routes a plugin makes, is open by choice.
  app.addHook('onRoute', route => {
    if (route.prefix === OPENAPI_UI_PREFIX) route.config = { ...route.config, access: 'open' }
    if (route.config?.access === undefined) throw new Error(`route ${String(route.method)} ${route.url} declares no access`)
  })
  await app.register(openapiPlugin, { schemas: { RecoveryRecord: schemas.RecoveryRecord } })
  await app.register(writeRoutes, { log, schemas })
  await app.register(transactionRoutes, { log, schemas })
  await app.register(checkpointRoutes, { log, schemas })
  await app.register(consumerRoutes, { log, schemas })
  await app.register(recoveryRoutes, {
    log,
    schemas,
    maxStreams: options.maxStreams ?? Number.POSITIVE_INFINITY,
    heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
    metrics
  })
  await app.register(operationsRoutes, { log, metrics })
  return app
}
