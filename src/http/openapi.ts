// The OpenAPI 3.1 document, generated from the route schemas (@fastify/swagger), served at
// /openapi.json, and browsable at /docs (@fastify/swagger-ui, assets bundled, nothing fetched).
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { TSchema } from '@sinclair/typebox'
import { MSGPACK } from './msgpack.js'
import { isScope } from './auth.js'

const description = [
  'A durable, group-committed write-ahead log for vector indexes.',
  'A 2xx answer to a write means the entry is durable: fsynced, on the segment backend; stored by a quorum of the stream\'s replicas, on the JetStream backend (503 WAL_UNAVAILABLE while the cluster cannot store it).',
  'Recovery streams NDJSON, one record a line, msgpack maps or Server-Sent Events on request: each record a RecoveryRecord (components).',
  `Write bodies are JSON, or ${MSGPACK} with the same fields (a vector may be a float32 typed array).`
].join(' ')

/** Where the browsable OpenAPI UI is served. */
export const OPENAPI_UI_PREFIX = '/docs'

export interface OpenapiOptions {
  /** Schemas named in the document's components, for what no route body or answer describes: a streamed record. */
  schemas: Record<string, TSchema>
}

async function openapi (app: FastifyInstance, options: OpenapiOptions): Promise<void> {
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
        schemas: options.schemas,
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
