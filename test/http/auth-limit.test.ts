// Failed authentication against a real service on 127.0.0.1, requests sent from two loopback
// addresses (127.0.0.1 and 127.0.0.2, both on lo): past VECWAL_AUTH_FAILURES_PER_MINUTE failures an
// address gets 429 HTTP_TOO_MANY_AUTH_FAILURES with Retry-After, and may present only a token it has
// already used (a valid one it has not is refused unseen); the other address is not limited.
import http from 'node:http'
import fc from 'fast-check'
import t from 'tap'
import { assertError, startTestService, type TestService } from '../helpers/http.js'

const GRANTS = { write: 'w'.repeat(24), read: 'r'.repeat(24), admin: 'a'.repeat(24) }
const TOKENS = `write:${GRANTS.write},read:${GRANTS.read},admin:${GRANTS.admin}`
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
const entry = JSON.stringify({ op: 'insert', id: 'a', vector: [1, 2] })

/** A request sent from `localAddress`; the answer as a fetch Response. */
async function callFrom (service: TestService, localAddress: string, method: string, route: string, headers: Record<string, string>): Promise<Response> {
  const body = method === 'POST' ? entry : undefined
  return await new Promise((resolve, reject) => {
    const request = http.request(service.url + route, {
      method,
      localAddress,
      headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' }
    }, response => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => {
        const responseHeaders = new Headers()
        for (const [name, value] of Object.entries(response.headers)) if (typeof value === 'string') responseHeaders.set(name, value)
        resolve(new Response(Buffer.concat(chunks), { status: response.statusCode, headers: responseHeaders }))
      })
      response.on('error', reject)
    })
    request.on('error', reject)
    request.end(body)
  })
}

// Wrong tokens of every shape a client may send: generated, never one of the grants.
const wrongCredentials = fc.oneof(
  fc.string({ minLength: 1, maxLength: 64 }).filter(s => /^\S+$/.test(s) && !Object.values(GRANTS).includes(s)).map(bearer),
  fc.constant({}),
  fc.constant({ authorization: 'Basic d3d3d3d3d3d3' })
)

t.test('a flood of wrong tokens from one address gets 429 past the limit; its working token and the other address are served', async t => {
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1, max: 20 }),
    fc.integer({ min: 1, max: 20 }),
    fc.array(wrongCredentials, { minLength: 40, maxLength: 40 }),
    async (limit, past, flood) => {
      const service = await startTestService(t, { VECWAL_TOKENS: TOKENS, VECWAL_AUTH_FAILURES_PER_MINUTE: String(limit) })
      try {
        t.equal((await callFrom(service, '127.0.0.1', 'POST', '/v1/entries', bearer(GRANTS.write))).status, 201, 'the writer works before the flood')
        for (const [i, headers] of flood.slice(0, limit + past).entries()) {
          const response = await callFrom(service, '127.0.0.1', 'POST', '/v1/entries', headers)
          if (i < limit) {
            await assertError(t, response, 401, 'HTTP_UNAUTHORIZED')
          } else {
            await assertError(t, response, 429, 'HTTP_TOO_MANY_AUTH_FAILURES', String(limit))
            const retryAfter = Number(response.headers.get('retry-after'))
            t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter} is 1 to 60 seconds`)
          }
        }
        t.equal((await callFrom(service, '127.0.0.1', 'POST', '/v1/entries', bearer(GRANTS.write))).status, 201, 'the writer on the limited address is still served')
        await assertError(t, await callFrom(service, '127.0.0.1', 'GET', '/v1/status', bearer(GRANTS.read)), 429, 'HTTP_TOO_MANY_AUTH_FAILURES')
        // The other address, untouched by the flood, is served, and its own first failure is a 401. (Its
        // tokens go first: with a limit of 1 that failure is its limit, and a token it never used is refused then.)
        t.equal((await callFrom(service, '127.0.0.2', 'GET', '/v1/status', bearer(GRANTS.read))).status, 200, 'the other address is not limited')
        t.equal((await callFrom(service, '127.0.0.2', 'POST', '/v1/entries', bearer(GRANTS.admin))).status, 201)
        await assertError(t, await callFrom(service, '127.0.0.2', 'POST', '/v1/entries', flood[0]), 401, 'HTTP_UNAUTHORIZED')
        const status = await (await callFrom(service, '127.0.0.2', 'GET', '/v1/status', bearer(GRANTS.admin))).json() as { lastSeq: number }
        t.equal(status.lastSeq, 3, 'only the three authenticated writes reached the log')
      } finally {
        await service.stop()
      }
    }
  ), { numRuns: 4, examples: [[1, 1, Array.from({ length: 40 }, () => ({}))]] })
})

t.test('a token with the wrong scope still proves its holder: not a failure, and usable past the limit', async t => {
  const service = await startTestService(t, { VECWAL_TOKENS: TOKENS, VECWAL_AUTH_FAILURES_PER_MINUTE: '2' })
  await assertError(t, await callFrom(service, '127.0.0.1', 'POST', '/v1/entries', bearer(GRANTS.read)), 403, 'HTTP_FORBIDDEN', 'write')
  await assertError(t, await callFrom(service, '127.0.0.1', 'POST', '/v1/entries', bearer(GRANTS.read)), 403, 'HTTP_FORBIDDEN', 'write')
  await assertError(t, await callFrom(service, '127.0.0.1', 'GET', '/v1/status', {}), 401, 'HTTP_UNAUTHORIZED')
  await assertError(t, await callFrom(service, '127.0.0.1', 'GET', '/v1/status', {}), 401, 'HTTP_UNAUTHORIZED')
  await assertError(t, await callFrom(service, '127.0.0.1', 'GET', '/v1/status', {}), 429, 'HTTP_TOO_MANY_AUTH_FAILURES')
  t.equal((await callFrom(service, '127.0.0.1', 'GET', '/v1/status', bearer(GRANTS.read))).status, 200, 'the read token used before is served')
  t.equal((await callFrom(service, '127.0.0.1', 'GET', '/health/live', {})).status, 200, 'open routes stay open')
})
