// VECWAL_BACKEND and the VECWAL_NATS_* variables, checked at start: a bad value stops the service
// with a message naming the variable; a good set gives the backend its settings.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config.js'
import { makeTlsFiles } from '../helpers/nats-tls.js'
import { tempDir } from '../helpers/wal.js'

const jetstream = { VECWAL_BACKEND: 'jetstream', VECWAL_NATS_SERVERS: 'nats://n1:4222,tls://n2.example:4222' }

t.test('segments is the default backend and needs no NATS variable', async t => {
  t.equal(loadConfig({}).jetstream, undefined)
})

t.test('jetstream: servers, stream, replicas, timeout and credentials reach the backend', async t => {
  const dir = tempDir(t)
  const creds = path.join(dir, 'user.creds')
  fs.writeFileSync(creds, 'creds')
  const config = loadConfig({ ...jetstream, VECWAL_NATS_STREAM: 'orders_1', VECWAL_NATS_REPLICAS: '1', VECWAL_NATS_TIMEOUT_MS: '250', VECWAL_NATS_CREDS: creds })
  t.match(config.jetstream, { servers: ['nats://n1:4222', 'tls://n2.example:4222'], stream: 'orders_1', replicas: 1, timeoutMs: 250, credsFile: creds })
  t.match(loadConfig(jetstream).jetstream, { stream: 'vecwal', replicas: 3, timeoutMs: 5000 }, 'the defaults')
})

t.test('jetstream: the TLS authority, client certificate and key reach the backend, the key checked against the certificate', async t => {
  const tls = makeTlsFiles(tempDir(t))
  const files = { VECWAL_NATS_TLS_CA: tls.ca, VECWAL_NATS_TLS_CERT: tls.clientCert, VECWAL_NATS_TLS_KEY: tls.clientKey }
  t.match(loadConfig({ ...jetstream, ...files }).jetstream, { tlsCaFile: tls.ca, tlsCertFile: tls.clientCert, tlsKeyFile: tls.clientKey })
  t.throws(() => loadConfig({ ...jetstream, ...files, VECWAL_NATS_TLS_KEY: tls.serverKey }),
    { constructor: ConfigError, message: /VECWAL_NATS_TLS_CERT\/VECWAL_NATS_TLS_KEY: .*key values mismatch/ }, 'another certificate\'s key')
  t.throws(() => loadConfig({ ...jetstream, ...files, VECWAL_NATS_TLS_CERT: tls.ca + '-missing' }), { constructor: ConfigError, message: /VECWAL_NATS_TLS_CERT: ENOENT/ })
  t.throws(() => loadConfig({ ...jetstream, ...files, VECWAL_NATS_TLS_KEY: tls.ca }), { constructor: ConfigError, message: /VECWAL_NATS_TLS_CERT\/VECWAL_NATS_TLS_KEY/ }, 'a certificate for a key')
})

t.test('each bad value is refused, naming its variable', async t => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ VECWAL_BACKEND: 'jetstream' }, /VECWAL_NATS_SERVERS is required/],
    [{ ...jetstream, VECWAL_NATS_SERVERS: 'http://n1:4222' }, /VECWAL_NATS_SERVERS/],
    [{ ...jetstream, VECWAL_NATS_SERVERS: 'nats://n1:4222,' }, /VECWAL_NATS_SERVERS/],
    [{ ...jetstream, VECWAL_NATS_STREAM: 'a.b' }, /VECWAL_NATS_STREAM/],
    [{ ...jetstream, VECWAL_NATS_REPLICAS: '7' }, /VECWAL_NATS_REPLICAS/],
    [{ ...jetstream, VECWAL_NATS_USER: 'u' }, /VECWAL_NATS_USER and VECWAL_NATS_PASSWORD go together/],
    [{ ...jetstream, VECWAL_NATS_TLS_CA: '/nonexistent/ca.pem' }, /VECWAL_NATS_TLS_CA/],
    [{ ...jetstream, VECWAL_NATS_TLS_CERT: '/nonexistent/client.pem' }, /VECWAL_NATS_TLS_CERT and VECWAL_NATS_TLS_KEY go together/],
    [{ ...jetstream, VECWAL_NATS_TLS_KEY: '/nonexistent/client-key.pem' }, /VECWAL_NATS_TLS_CERT and VECWAL_NATS_TLS_KEY go together/],
    [{ ...jetstream, VECWAL_NATS_TLS_CERT: '/nonexistent/client.pem', VECWAL_NATS_TLS_KEY: '/nonexistent/client-key.pem' }, /VECWAL_NATS_TLS_CERT: ENOENT/],
    [{ ...jetstream, VECWAL_RETAIN_MAX_BYTES: '1000000' }, /VECWAL_RETAIN_MAX_BYTES is for the segment backend/],
    [{ VECWAL_BACKEND: 'postgres' }, /VECWAL_BACKEND/],
    [{ VECWAL_DURABILITY: 'quorum' }, /VECWAL_DURABILITY/]
  ]
  for (const [env, message] of bad) t.throws(() => loadConfig(env), { constructor: ConfigError, message }, JSON.stringify(env))
})
