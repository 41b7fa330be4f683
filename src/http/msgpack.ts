// application/msgpack request bodies: the same entries as JSON, validated by the same schemas.
// A vector may come as an array of numbers or as a Float32Array (msgpackr's typed-array extension).
import type { FastifyInstance } from 'fastify'
import { Unpackr } from 'msgpackr'
import { MalformedBodyError } from './errors.js'

export const MSGPACK = 'application/msgpack'

const unpackr = new Unpackr({ mapsAsObjects: true })

/**
 * Float32Arrays become plain arrays so that the schemas (which see JSON's shape) check them as
 * they check any vector: length, finiteness, range. Everything else is left as decoded.
 */
function plainVectors (value: unknown): unknown {
  if (value instanceof Float32Array) return Array.from(value)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = plainVectors(value[i])
  } else if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>
    if (record.vector instanceof Float32Array) record.vector = Array.from(record.vector)
    if (Array.isArray(record.entries)) plainVectors(record.entries)
  }
  return value
}

export function registerMsgpackParser (app: FastifyInstance): void {
  app.addContentTypeParser(MSGPACK, { parseAs: 'buffer' }, (_request, body, done) => {
    let decoded: unknown
    try {
      decoded = unpackr.unpack(body as Buffer)
    } catch (err) {
      done(new MalformedBodyError('msgpack', (err as Error).message), undefined)
      return
    }
    done(null, plainVectors(decoded))
  })
}
