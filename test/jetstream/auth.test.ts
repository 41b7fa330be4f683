// The VECWAL_NATS_* credentials and TLS variables against a real nats-server (Debian's), one node
// that requires TLS, verifies clients' certificates and takes one user and password
// (test/helpers/nats-tls.ts): with the right authority, certificate, key and password the service
// starts and generated entries go in and read back; with any one of them wrong it does not
// start, within the connect timeout, with an error that says why as far as nats.js tells.
import fc from 'fast-check'
import t from 'tap'
import { entry, entryBody, float32Bits, keyOrder, type Entry } from '../helpers/bodies.js'
import { ndjson, startTestService } from '../helpers/http.js'
import { freshStreamName } from '../helpers/nats-cluster.js'
import { startSecureNats } from '../helpers/nats-tls.js'

const TIMEOUT_MS = 2000
/** Past the connect timeout, what a refused start may take: the service's own start and stop. */
const SLACK_MS = 3000

const nats = await startSecureNats(t)

/** The variables that reach the node as it wants: replaced one at a time by the refusals below. */
function rightEnv (): Record<string, string> {
  return {
    VECWAL_BACKEND: 'jetstream',
    VECWAL_NATS_SERVERS: nats.url,
    VECWAL_NATS_STREAM: freshStreamName(),
    VECWAL_NATS_REPLICAS: '1',
    VECWAL_NATS_TIMEOUT_MS: String(TIMEOUT_MS),
    VECWAL_NATS_TLS_CA: nats.tls.ca,
    VECWAL_NATS_TLS_CERT: nats.tls.clientCert,
    VECWAL_NATS_TLS_KEY: nats.tls.clientKey,
    VECWAL_NATS_USER: nats.user,
    VECWAL_NATS_PASSWORD: nats.password
  }
}

/** The entry without what the log adds (seq, timestamp), vectors as float32 bits (so -0 stays -0). */
function comparable (e: Record<string, unknown> | Entry): Record<string, unknown> {
  const { seq: _seq, timestamp: _timestamp, vector, ...rest } = e as Record<string, unknown>
  return vector === undefined ? rest : { ...rest, vector: float32Bits(vector as ArrayLike<number>) }
}

t.test('with the right authority, client certificate, key and password, generated entries go in and read back', async t => {
  const service = await startTestService(t, rightEnv())
  const sent: Entry[] = []
  await fc.assert(fc.asyncProperty(entry, keyOrder, async (e, order) => {
    const response = await service.call('POST', '/v1/entries', entryBody(e, 'json', order), { 'content-type': 'application/json' })
    t.equal(response.status, 201, await response.clone().text())
    sent.push(e)
  }), { numRuns: 5 })
  const response = await service.call('GET', '/v1/recovery?after=0')
  t.equal(response.status, 200)
  t.same((await ndjson(response)).map(comparable), sent.map(comparable), 'every entry, in order, as sent')
})

const refusals: Array<[string, Record<string, string | undefined>, RegExp]> = [
  ['a wrong password', { VECWAL_NATS_PASSWORD: 'not-the-password' }, /Authorization Violation/],
  // Under TLS 1.3 the server refuses a missing client certificate after the handshake, with an
  // alert (certificate required) that nats.js drops: the connect waits out its timeout, and the
  // service's message says what a timeout over TLS without a client certificate may mean.
  ['no client certificate', { VECWAL_NATS_TLS_CERT: undefined, VECWAL_NATS_TLS_KEY: undefined }, /requires client certificates.*VECWAL_NATS_TLS_CERT.*timeout/],
  ['an authority that did not sign the server\'s certificate', { VECWAL_NATS_TLS_CA: nats.tls.strangerCa }, /unable to verify the first certificate/]
]

for (const [what, change, why] of refusals) {
  t.test(`${what}: the service does not start, within the connect timeout`, async t => {
    const env = Object.fromEntries(Object.entries({ ...rightEnv(), ...change }).filter((pair): pair is [string, string] => pair[1] !== undefined))
    const started = Date.now()
    const error = await startTestService(t, env).then(() => undefined, (err: Error & { code?: string }) => err)
    const elapsedMs = Date.now() - started
    t.ok(error, 'the start failed')
    t.equal(error?.code, 'WAL_OPEN_FAILED', 'the open failed')
    t.match(error?.message, /reach the NATS servers tls:\/\/127\.0\.0\.1/, 'it names the servers')
    t.match(error?.message, why, `it says why: ${String(error?.message)}`)
    t.ok(elapsedMs < TIMEOUT_MS + SLACK_MS, `refused in ${elapsedMs} ms, within ${TIMEOUT_MS} ms and ${SLACK_MS} ms of slack`)
  })
}
