// The bytes of request bodies being received at once, held to a total. Each body is bounded by the
// body limit, but connections are bounded by descriptors, not memory: 32 uploads stalled one byte
// short of 16 MiB held 514 MiB. A request reserves its Content-Length (the body limit when the
// length is not known) when its headers arrive, before a byte of body is read, and gives it back
// when it ends, whichever way it ends.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { TooManyBodiesError } from './errors.js'

export function registerBodyBudget (app: FastifyInstance, budgetBytes: number, bodyLimitBytes: number): void {
  let reserved = 0
  const held = new WeakMap<FastifyRequest, number>()

  const release = async (request: FastifyRequest): Promise<void> => {
    const bytes = held.get(request)
    if (bytes === undefined) return
    held.delete(request)
    reserved -= bytes
  }

  app.addHook('onRequest', async request => {
    const length = request.headers['content-length']
    const chunked = request.headers['transfer-encoding'] !== undefined
    if (length === undefined && !chunked) return
    const bytes = length === undefined ? bodyLimitBytes : Math.min(Number(length) || 0, bodyLimitBytes)
    if (bytes === 0) return
    // With nothing reserved any one request is admitted, so a body larger than the budget is not refused for ever.
    if (reserved > 0 && reserved + bytes > budgetBytes) throw new TooManyBodiesError(budgetBytes)
    reserved += bytes
    held.set(request, bytes)
  })
  app.addHook('onResponse', release)
  app.addHook('onRequestAbort', release)
}
