// Every error a client can see, declared once. Errors of the HTTP layer are declared here with
// @fastify/error; errors of the engine keep their own codes and get their status from the table
// below. Every answer has the same JSON shape: {statusCode, code, error, message}.
import createError from '@fastify/error'
import { STATUS_CODES } from 'node:http'
import type { Static } from '@sinclair/typebox'
import type { LogErrorCode } from '../log.js'
import type { ErrorResponse } from './schemas.js'

export const InvalidRequestError = createError('HTTP_INVALID_REQUEST', '%s', 400)
export const MalformedBodyError = createError('HTTP_MALFORMED_BODY', 'the body is not valid %s: %s', 400)
export const BodyTooLargeError = createError('HTTP_BODY_TOO_LARGE', 'the body is larger than the limit of %s bytes', 413)
export const UnsupportedMediaTypeError = createError('HTTP_UNSUPPORTED_MEDIA_TYPE', 'content type %s is not accepted here; send %s', 415)
export const RouteNotFoundError = createError('HTTP_NOT_FOUND', 'no route %s %s', 404)
export const UnauthorizedError = createError('HTTP_UNAUTHORIZED', 'a valid bearer token is required', 401)
export const ForbiddenError = createError('HTTP_FORBIDDEN', 'the token lacks the %s scope', 403)
export const TooManyAuthFailuresError = createError('HTTP_TOO_MANY_AUTH_FAILURES', 'more than %s failed authentications from this address within a minute; retry in %s s', 429)
export const ShuttingDownError = createError('HTTP_SHUTTING_DOWN', 'the service is shutting down', 503)
export const TooManyStreamsError = createError('HTTP_TOO_MANY_STREAMS', 'the limit of %s open recovery streams is reached; retry shortly', 503)
export const TooManyBodiesError = createError('HTTP_TOO_MANY_BODIES', 'request bodies being received hold the limit of %s bytes; retry shortly', 503)
export const InternalError = createError('HTTP_INTERNAL', 'internal error', 500)

/**
 * Seconds a client should wait before retrying, sent as Retry-After, for the HTTP layer's own refusals
 * (HTTP_TOO_MANY_AUTH_FAILURES sends the seconds left in its address's window instead).
 */
export const HTTP_RETRY_AFTER: Readonly<Record<string, number>> = {
  HTTP_TOO_MANY_STREAMS: 1,
  HTTP_TOO_MANY_BODIES: 1
}

interface EngineErrorMapping {
  statusCode: number
  /** Seconds a client should wait before retrying, sent as Retry-After. */
  retryAfter?: number
}

/** The engine's error codes (src/errors.ts) and what they mean over HTTP. */
export const ENGINE_ERRORS: Readonly<Record<LogErrorCode, EngineErrorMapping>> = {
  WAL_QUEUE_FULL: { statusCode: 503, retryAfter: 1 },
  WAL_TX_MEMORY_FULL: { statusCode: 503, retryAfter: 1 },
  WAL_DISK_FULL: { statusCode: 507, retryAfter: 5 },
  WAL_SEGMENT_UNAVAILABLE: { statusCode: 503, retryAfter: 1 },
  WAL_FAILED: { statusCode: 503 },
  WAL_CLOSED: { statusCode: 503 },
  WAL_CORRUPT: { statusCode: 500 },
  WAL_CHECKPOINT_BACKWARDS: { statusCode: 409 },
  WAL_CHECKPOINT_AHEAD: { statusCode: 409 },
  WAL_TX_EMPTY: { statusCode: 409 },
  WAL_TX_NOT_FOUND: { statusCode: 404 },
  WAL_TX_TOO_LARGE: { statusCode: 413 },
  WAL_RECORD_TOO_LARGE: { statusCode: 413 },
  WAL_RANGE_GONE: { statusCode: 410 },
  WAL_RANGE_AHEAD: { statusCode: 416 },
  WAL_INVALID_ARGUMENT: { statusCode: 400 },
  WAL_INVALID_ENTRY: { statusCode: 400 },
  WAL_CONSUMER_NOT_FOUND: { statusCode: 404 },
  WAL_CONSUMER_EXISTS: { statusCode: 409 },
  WAL_CONSUMER_LIMIT: { statusCode: 409 },
  WAL_SEQ_MISMATCH: { statusCode: 412 },
  WAL_IDEMPOTENCY_KEY_REUSED: { statusCode: 422 },
  WAL_UNAVAILABLE: { statusCode: 503, retryAfter: 1 }
}

/** The refusals that send Retry-After, with their statuses: the engine's and the HTTP layer's own. */
export function retryAfterRefusals (): string[] {
  const engine = Object.entries(ENGINE_ERRORS).filter(([, mapping]) => mapping.retryAfter !== undefined).map(([code, mapping]) => `${mapping.statusCode} ${code}`)
  return [...engine, ...Object.keys(HTTP_RETRY_AFTER).map(code => `503 ${code}`)]
}

/** What a log's error code means over HTTP; undefined for any other code. */
export function engineError (code: string): EngineErrorMapping | undefined {
  return Object.hasOwn(ENGINE_ERRORS, code) ? ENGINE_ERRORS[code as LogErrorCode] : undefined
}

/** Every error's body: the shape its schema (ErrorResponse) documents. */
export type ErrorBody = Static<typeof ErrorResponse>

export function errorBody (statusCode: number, code: string, message: string): ErrorBody {
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message }
}

/**
 * For requests Node's HTTP parser rejects before Fastify sees them (a bad Content-Length, headers
 * too large): the same error shape, written straight to the socket.
 */
export function rawErrorResponse (err: NodeJS.ErrnoException): string {
  const [statusCode, message] = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    ? [408, 'the request took too long to arrive']
    : err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'the request headers are too large']
      : [400, 'the request is not valid HTTP']
  const body = JSON.stringify(errorBody(statusCode, 'HTTP_INVALID_REQUEST', message))
  return `HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode] ?? ''}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`
}
