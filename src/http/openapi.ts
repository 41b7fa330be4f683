// The OpenAPI 3.1 document, generated from the route schemas (@fastify/swagger), served at
// /openapi.json, and browsable at /docs (@fastify/swagger-ui, assets bundled, nothing fetched).
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { MSGPACK } from './msgpack.js'
import { isScope } from './auth.js'

const description = [
  'A durable, group-committed write-ahead log for vector indexes.',
  'A 2xx answer to a write means the entry is fsynced. Recovery streams NDJSON, one record a line, or msgpack maps on request.',
  `Write bodies are JSON, or ${MSGPACK} with the same fields (a vector may be a float32 typed array).`
].join(' ')

/** Where the browsable OpenAPI UI is served. */
export const OPENAPI_UI_PREFIX = '/docs'

async function openapi (app: FastifyInstance): Promise<void> {
  // @fastify/swagger marks every request body as required; the routes that take a missing body as
  // `{}` are noted here and corrected in the finished document.
  const optionalBodies = new Set<string>()
  await app.register(swagger, {
    transform ({ schema, url, route }) {
      const method = String(route.method).toLowerCase()
      if (route.config?.optionalBody === true) optionalBodies.add(`${method} ${url}`)
      const access = route.config?.access
      const secured = isScope(access)
      return { schema: secured ? { ...schema, security: [{ bearer: [] }] } : schema, url }
    },
    transformObject (documentObject) {
      if (!('openapiObject' in documentObject)) return documentObject.swaggerObject
      const { openapiObject } = documentObject
      for (const [path, item] of Object.entries(openapiObject.paths ?? {})) {
        for (const [method, operation] of Object.entries(item as Record<string, { requestBody?: { required?: boolean } }>)) {
          if (optionalBodies.has(`${method} ${path}`) && operation.requestBody !== undefined) operation.requestBody.required = false
        }
      }
      return openapiObject
    },
    openapi: {
      openapi: '3.1.0',
      info: { title: 'vecwal', version: '1', description },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'only when VECWAL_TOKENS is set. A client address past VECWAL_AUTH_FAILURES_PER_MINUTE failed attempts within a minute gets 429 HTTP_TOO_MANY_AUTH_FAILURES with Retry-After, and until then only tokens it has already used are accepted.'
          }
        }
      }
    }
  })
  await app.register(swaggerUi, { routePrefix: OPENAPI_UI_PREFIX, staticCSP: true })
  app.get('/openapi.json', { schema: { hide: true }, config: { access: 'open' } }, async () => app.swagger())
}

// Wrapped with fastify-plugin so that the swagger plugin sees the routes registered beside it.
export const openapiPlugin = fp(openapi, { name: 'vecwal-openapi' })
