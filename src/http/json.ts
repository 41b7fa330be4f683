// application/json request bodies, parsed stricter than Fastify's default: bytes that are not
// valid UTF-8 are refused instead of being stored as replacement characters, and a forbidden key
// (`__proto__`, or `constructor` holding `prototype`) is named as such.
import { isUtf8 } from 'node:buffer'
import type { FastifyInstance } from 'fastify'
import sjson from 'secure-json-parse'
import { InvalidRequestError, MalformedBodyError } from './errors.js'

const FORBIDDEN = /forbidden (prototype|constructor) property/

export function registerJsonParser (app: FastifyInstance): void {
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    const bytes = body as Buffer
    if (bytes.length === 0) {
      done(new MalformedBodyError('JSON', 'the body is empty'), undefined)
      return
    }
    if (!isUtf8(bytes)) {
      done(new MalformedBodyError('JSON', 'the body is not valid UTF-8'), undefined)
      return
    }
    try {
      done(null, sjson.parse(bytes.toString('utf8'), { protoAction: 'error', constructorAction: 'error' }))
    } catch (err) {
      const forbidden = FORBIDDEN.exec((err as Error).message)
      done(forbidden === null
        ? new MalformedBodyError('JSON', (err as Error).message)
        : new InvalidRequestError(`body holds a forbidden ${forbidden[1] === 'prototype' ? '__proto__' : 'constructor.prototype'} key`), undefined)
    }
  })
}
