// A nats-server that trusts no one by default, for the tests of the VECWAL_NATS_* credentials and
// TLS variables: a throwaway certificate authority made with openssl (a server certificate for
// 127.0.0.1 and a client certificate), a second authority that signed neither, and one JetStream
// node on 127.0.0.1 that requires TLS, verifies clients' certificates against the first authority
// and takes one user with a generated password. The node is a NatsNode (scripts/nats-cluster.ts),
// stopped by its pid at teardown with its directory.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { ownTempDir, removeTempDir } from '../../scripts/children.js'
import { NATS_MAX_PAYLOAD_BYTES, NatsNode } from '../../scripts/nats-cluster.js'
import { sleep } from './child-service.js'
import { freePort } from './project.js'
import type { TeardownTarget } from './wal.js'

/** Debian's openssl (package openssl, installed by .ci/run where missing). */
const OPENSSL = '/usr/bin/openssl'
/** How long a start waits for the node's JetStream. */
const READY_TIMEOUT_MS = 15_000

/** PEM files: the authorities' certificates, and a certificate with its key for each side. */
export interface TlsFiles {
  ca: string
  /** An authority that signed neither certificate: a client trusting only it must refuse the server. */
  strangerCa: string
  serverCert: string
  serverKey: string
  clientCert: string
  clientKey: string
}

function openssl (dir: string, args: string[]): void {
  execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}

/** A self-signed authority: `name`.pem and `name`-key.pem in `dir`. */
function authority (dir: string, name: string): string {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', `/CN=vecwal test ${name}`, '-keyout', `${name}-key.pem`, '-out', `${name}.pem`])
  return path.join(dir, `${name}.pem`)
}

/** A certificate for `name` signed by the authority `ca`, with the X.509 extensions `extensions`. */
function signed (dir: string, ca: string, name: string, extensions: string): { cert: string, key: string } {
  fs.writeFileSync(path.join(dir, `${name}.ext`), extensions)
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-subj', `/CN=vecwal test ${name}`, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`])
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}-key.pem`,
    '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.pem`])
  return { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}-key.pem`) }
}

/** Makes the authorities and certificates in `dir`. */
export function makeTlsFiles (dir: string): TlsFiles {
  const ca = authority(dir, 'ca')
  const strangerCa = authority(dir, 'stranger')
  // nats.js sends no server name when it reaches a server by IP address (tls://127.0.0.1), and Node
  // then checks the certificate against the name localhost: the certificate holds both.
  const server = signed(dir, 'ca', 'server', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
  const client = signed(dir, 'ca', 'client', 'extendedKeyUsage=clientAuth\n')
  return { ca, strangerCa, serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key }
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
async function listening (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => { resolve(false) })
  })
}

export interface SecureNats {
  /** tls://127.0.0.1:port */
  url: string
  tls: TlsFiles
  user: string
  password: string
}

/**
 * Starts one JetStream node requiring TLS, a client certificate signed by the test authority, and
 * the user `vecwal` with a generated password; stopped and its files removed when `t` ends.
 */
export async function startSecureNats (t: TeardownTarget): Promise<SecureNats> {
  const dir = ownTempDir('vecwal-nats-tls-')
  const [port, monitorPort] = [await freePort(), await freePort()]
  const user = 'vecwal'
  const password = randomBytes(16).toString('hex')
  let node: NatsNode | undefined
  t.teardown(async () => {
    await node?.stop()
    removeTempDir(dir)
  })
  const tls = makeTlsFiles(dir)
  const configFile = path.join(dir, 'nats.conf')
  fs.writeFileSync(configFile, [
    'server_name: secure',
    `listen: 127.0.0.1:${port}`,
    `http: 127.0.0.1:${monitorPort}`,
    `max_payload: ${NATS_MAX_PAYLOAD_BYTES}`,
    `jetstream { store_dir: "${path.join(dir, 'store')}", max_memory_store: 64MB, max_file_store: 256MB }`,
    `tls { cert_file: "${tls.serverCert}", key_file: "${tls.serverKey}", ca_file: "${tls.ca}", verify: true, timeout: 2 }`,
    `authorization { users: [ { user: ${user}, password: "${password}" } ] }`,
    ''
  ].join('\n'))
  node = new NatsNode('secure', port, monitorPort, configFile, path.join(dir, 'nats.log'))
  node.start()
  const deadline = Date.now() + READY_TIMEOUT_MS
  // nats-server starts JetStream before it listens for clients: both are waited for.
  while ((await node.metaState()).leader === undefined || !(await listening(port))) {
    if (Date.now() > deadline) throw new Error(`the TLS node's JetStream did not start within ${READY_TIMEOUT_MS} ms:\n${node.logTail()}`)
    await sleep(100)
  }
  return { url: `tls://127.0.0.1:${port}`, tls, user, password }
}
