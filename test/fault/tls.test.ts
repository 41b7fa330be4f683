// TLS (VECWAL_TLS_CERT / VECWAL_TLS_KEY): with a self-signed certificate made by openssl, the
// service speaks HTTPS only. Skipped where openssl is missing.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import https from 'node:https'
import path from 'node:path'
import t from 'tap'
import { startTestService } from '../helpers/http.js'
import { tempDir } from '../helpers/wal.js'

function hasOpenssl (): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

async function request (url: string, options: https.RequestOptions, body?: string): Promise<{ status: number, text: string }> {
  return await new Promise((resolve, reject) => {
    const req = https.request(url, { ...options, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, text }) })
    })
    req.on('error', reject)
    req.end(body)
  })
}

t.test('with a certificate and key the service serves HTTPS only', { skip: hasOpenssl() ? false : 'openssl is not installed' }, async t => {
  const dir = tempDir(t, 'vecwal-tls-')
  const cert = path.join(dir, 'cert.pem')
  const key = path.join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })

  const service = await startTestService(t, { VECWAL_TLS_CERT: cert, VECWAL_TLS_KEY: key })
  t.match(service.url, /^https:\/\/127\.0\.0\.1:\d+$/, 'the service says it is on https')
  const ca = fs.readFileSync(cert)
  const ready = await request(`${service.url}/health/ready`, { ca })
  t.equal(ready.status, 200, 'a client trusting the certificate gets /health/ready')
  const written = await request(`${service.url}/v1/entries`, { ca, method: 'POST' }, '{"op":"insert","id":"tls","vector":[0.5]}')
  t.same({ status: written.status, body: JSON.parse(written.text) }, { status: 201, body: { seq: 1 } }, 'and writes over TLS')
  await t.rejects(request(`${service.url}/health/ready`, {}), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }, 'a client that does not trust it is refused: it really is TLS')
  const plain = await fetch(service.url.replace('https:', 'http:') + '/health/ready').then(r => r.status, (err: Error) => err.name)
  t.not(plain, 200, 'plain HTTP on the same port gets no answer')
})
