// Connection timeouts against the real server on 127.0.0.1, over raw sockets. A kept-alive
// connection idle after a request is closed after VECWAL_IDLE_TIMEOUT_MS like any other idle one
// (not after Node's keep-alive timeout); a client that drips its request a byte at a time, never
// idle, gets 408 and is cut off at VECWAL_REQUEST_TIMEOUT_MS; a recovery response that takes
// longer than that deadline is not cut, since the deadline is about receiving the request.
import net from 'node:net'
import fc from 'fast-check'
import t from 'tap'
import { startTestService } from '../helpers/http.js'

const IDLE_MS = 2000
const REQUEST_MS = 2000
// Node looks for expired requests once a second at most; the rest is scheduling slack.
const SLACK_MS = 1500
// An idle timer fires on time, give or take scheduling.
const IDLE_SLACK_MS = 600

interface RawConnection {
  socket: net.Socket
  /** Everything received so far, as latin1 text. */
  text: () => string
  /** Resolves with the time (performance.now()) the server closed the connection. */
  closed: Promise<number>
}

async function connect (port: number): Promise<RawConnection> {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve).once('error', reject) })
  let received = ''
  socket.on('data', (chunk: Buffer) => { received += chunk.toString('latin1') })
  socket.on('error', () => {})
  const closed = new Promise<number>(resolve => { socket.once('close', () => { resolve(performance.now()) }) })
  return { socket, text: () => received, closed }
}

/** Resolves with the close time, or undefined if the connection is still open after `ms`. */
async function closedWithin (connection: RawConnection, ms: number): Promise<number | undefined> {
  let timer: NodeJS.Timeout | undefined
  const result = await Promise.race([connection.closed, new Promise<undefined>(resolve => { timer = setTimeout(() => { resolve(undefined) }, ms) })])
  clearTimeout(timer)
  return result
}

/** Generated entries as JSON request bodies (fast-check, fixed seed). */
function entryBodies (count: number, seed: number): string[] {
  const entry = fc.record({
    id: fc.string({ minLength: 1, maxLength: 32 }),
    vector: fc.array(fc.integer({ min: -1000, max: 1000 }), { minLength: 4, maxLength: 4 })
  })
  return fc.sample(entry, { numRuns: count, seed }).map(({ id, vector }) => JSON.stringify({ op: 'insert', id, vector }))
}

const env = { VECWAL_IDLE_TIMEOUT_MS: String(IDLE_MS), VECWAL_REQUEST_TIMEOUT_MS: String(REQUEST_MS) }

t.test('a kept-alive connection idle after a request is closed after the idle timeout', async t => {
  const service = await startTestService(t, env)
  const port = Number(new URL(service.url).port)
  const connection = await connect(port)
  t.teardown(() => { connection.socket.destroy() })
  connection.socket.write('GET /health/live HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: keep-alive\r\n\r\n')
  while (!connection.text().includes('{"status":"ok"}')) await new Promise(resolve => setTimeout(resolve, 5))
  const answered = performance.now()
  t.match(connection.text(), /^HTTP\/1\.1 200 .*\r\nconnection: keep-alive\r\n/is, 'the answer keeps the connection alive')
  const closedAt = await closedWithin(connection, IDLE_MS + 3000)
  t.ok(closedAt !== undefined, `the idle connection is closed (within ${IDLE_MS + 3000} ms)`)
  const idleFor = (closedAt ?? Number.POSITIVE_INFINITY) - answered
  t.ok(idleFor >= IDLE_MS - 100 && idleFor <= IDLE_MS + IDLE_SLACK_MS, `after ${Math.round(idleFor)} ms idle, near the ${IDLE_MS} ms timeout`)
})

for (const part of ['headers', 'body'] as const) {
  t.test(`a request whose ${part} drip in a byte at a time gets 408 and is cut off at the request deadline`, async t => {
    const service = await startTestService(t, env)
    const port = Number(new URL(service.url).port)
    const body = entryBodies(1, part === 'body' ? 11 : 12)[0]
    const head = `POST /v1/entries HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`
    const connection = await connect(port)
    t.teardown(() => { connection.socket.destroy() })
    const started = performance.now()
    // Headers go whole when the body drips; when the headers drip, they never end in time.
    const dripped = part === 'body' ? body : head + body
    if (part === 'body') connection.socket.write(head)
    let sent = 0
    // Every 300 ms, well inside the idle timeout: the connection is never idle.
    const drip = setInterval(() => {
      if (sent < dripped.length && !connection.socket.destroyed) connection.socket.write(dripped[sent++])
    }, 300)
    t.teardown(() => { clearInterval(drip) })
    const closedAt = await closedWithin(connection, REQUEST_MS + SLACK_MS + 2000)
    clearInterval(drip)
    t.ok(sent < dripped.length, `the request was still arriving (${sent} of ${dripped.length} bytes)`)
    t.ok(closedAt !== undefined, 'the connection is closed')
    const lasted = (closedAt ?? Number.POSITIVE_INFINITY) - started
    t.ok(lasted >= REQUEST_MS - 100 && lasted <= REQUEST_MS + SLACK_MS, `after ${Math.round(lasted)} ms, near the ${REQUEST_MS} ms deadline`)
    t.match(connection.text(), /^HTTP\/1\.1 408 /, 'with a 408')
    t.match(connection.text(), /"code":"HTTP_INVALID_REQUEST"/, 'in the error shape')
  })
}

/**
 * The body of a chunked HTTP/1.1 response held in `text` (latin1), its chunk framing taken out: the
 * only carriage returns in it, since NDJSON escapes those in strings.
 */
function chunkedBody (text: string): string {
  return text.slice(text.indexOf('\r\n\r\n') + 4).replace(/(^|\r\n)[0-9a-f]+\r\n/g, '').replace(/\r\n$/, '')
}

t.test('a recovery response that lasts longer than the request deadline is not cut', async t => {
  const service = await startTestService(t, env)
  const port = Number(new URL(service.url).port)
  const entry = fc.record({
    id: fc.string({ minLength: 1, maxLength: 32 }),
    vector: fc.array(fc.integer({ min: -1000, max: 1000 }), { minLength: 96, maxLength: 96 })
  })
  const bodies = fc.sample(entry, { numRuns: 1000, seed: 13 }).map(e => JSON.stringify({ op: 'insert', ...e })).join(',')
  // About 20 MB of NDJSON: far more than the socket buffers hold, so the server is still writing
  // when the deadline passes.
  const batches = 50
  for (let i = 0; i < batches; i++) {
    const res = await service.call('POST', '/v1/batch', `{"entries":[${bodies}]}`)
    if (res.status !== 201) t.fail(`batch ${i}: ${res.status} ${await res.text()}`)
  }
  const connection = await connect(port)
  t.teardown(() => { connection.socket.destroy() })
  const started = performance.now()
  connection.socket.write('GET /v1/recovery?after=0 HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n')
  // Takes 512 KiB, then stops reading for 100 ms, and so on: about 5 MB a second, never idle for
  // the idle timeout.
  let sincePause = 0
  connection.socket.on('data', (chunk: Buffer) => {
    sincePause += chunk.length
    if (sincePause < 512 * 1024) return
    sincePause = 0
    connection.socket.pause()
    setTimeout(() => { connection.socket.resume() }, 100)
  })
  const closedAt = await closedWithin(connection, 30_000)
  const lasted = (closedAt ?? Number.POSITIVE_INFINITY) - started
  const lines = Buffer.from(chunkedBody(connection.text()), 'latin1').toString('utf8').split('\n').filter(line => line !== '')
  const entries = lines.map(line => (JSON.parse(line) as { entries: unknown[] }).entries.length)
  t.ok(lasted > REQUEST_MS, `the response lasted ${Math.round(lasted)} ms, past the ${REQUEST_MS} ms deadline`)
  t.same(entries, Array.from({ length: batches }, () => 1000), 'and brought every record (each a batch of 1000 entries) whole')
  t.ok(connection.text().endsWith('\r\n0\r\n\r\n'), 'to its end')
})
