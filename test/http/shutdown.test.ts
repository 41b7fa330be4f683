// Graceful shutdown loses nothing acknowledged: writes in flight when the service stops either get
// 201 and are in the log after a restart, or get 503 / a refused connection; never a lost 2xx.
// The writes go one connection each; what keep-alive connections do at shutdown is tested apart.
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import {
  asStored, backendEnv, gatedIO, onJetStream, recoverAll, sampleEntry, spawnCli, startTestService, waitForExit
} from '../helpers/http.js'
import { tempDir } from '../helpers/wal.js'
import { freePort } from '../helpers/project.js'

interface Outcome {
  body: Record<string, unknown>
  status?: number
  seq?: number
  code?: string
  /** The fetch failed: no answer at all. */
  failed?: boolean
}

/** POSTs JSON on a connection of its own (`Connection: close`); rejects when no answer comes. */
async function postOnce (url: string, route: string, body: unknown): Promise<{ status: number, answer: { seq?: number, code?: string } }> {
  const data = JSON.stringify(body)
  return await new Promise((resolve, reject) => {
    const request = http.request(`${url}${route}`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }
    }, response => {
      let text = ''
      response.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
      response.on('end', () => {
        try {
          resolve({ status: response.statusCode ?? 0, answer: JSON.parse(text) as { seq?: number, code?: string } })
        } catch (err) {
          reject(err)
        }
      })
      response.on('error', reject)
    })
    request.on('error', reject)
    request.end(data)
  })
}

/** Fires `count` writes at once (every tenth a batch); resolves each with what came back. */
function fireWrites (url: string, count: number): { outcomes: Array<Promise<Outcome>>, firstAnswer: Promise<void> } {
  let answered: () => void = () => {}
  const firstAnswer = new Promise<void>(resolve => { answered = resolve })
  const outcomes = Array.from({ length: count }, async (_, i): Promise<Outcome> => {
    const batch = i % 10 === 9
    const body = batch ? { entries: [sampleEntry(i * 1000), sampleEntry(i * 1000 + 4)] } : sampleEntry(i)
    try {
      const { status, answer } = await postOnce(url, batch ? '/v1/batch' : '/v1/entries', body)
      answered()
      return { body, status, seq: answer.seq, code: answer.code }
    } catch {
      return { body, failed: true }
    }
  })
  return { outcomes, firstAnswer }
}

/** Every 201 is in `lines` under its seq with what was posted; everything else was a 503 or no answer. */
function assertNothingLost (t: Test, outcomes: Outcome[], lines: Array<Record<string, unknown>>): void {
  const bySeq = new Map(lines.map(l => [l.seq as number, l]))
  const acknowledged = outcomes.filter(o => o.status === 201)
  t.ok(acknowledged.length > 0, `${acknowledged.length} of ${outcomes.length} writes were acknowledged`)
  const lost = acknowledged.filter(o => {
    const line = bySeq.get(o.seq as number)
    if (line === undefined) return true
    const { seq: _seq, timestamp: _timestamp, ...body } = line
    const wanted = Array.isArray(o.body.entries) ? { op: 'batch', entries: (o.body.entries as Array<Record<string, unknown>>).map(asStored) } : asStored(o.body)
    const found = Array.isArray(body.entries) ? { ...body, entries: (body.entries as Array<Record<string, unknown>>).map(asStored) } : asStored(body)
    return JSON.stringify(found) !== JSON.stringify(wanted)
  })
  t.same(lost, [], 'every acknowledged write is in the log, under its seq, as posted')
  const other = outcomes.filter(o => o.status !== 201 && o.failed !== true)
  t.same(other.filter(o => o.status !== 503), [], 'the rest got 503 or no answer, never another status')
  t.same(other.filter(o => o.code !== 'HTTP_SHUTTING_DOWN' && o.code !== 'WAL_CLOSED'), [], '503s say the service is shutting down')
  t.equal(lines.length, acknowledged.length, 'the log holds nothing but the acknowledged writes')
}

t.test('service.stop() with writes in flight loses nothing acknowledged', async t => {
  const first = await startTestService(t)
  const { outcomes, firstAnswer } = fireWrites(first.url, 300)
  let settled = 0
  for (const o of outcomes) void o.then(() => { settled++ })
  await firstAnswer
  const inFlight = outcomes.length - settled
  await first.stop()
  const results = await Promise.all(outcomes)
  t.ok(inFlight > 0, `${inFlight} writes were in flight when stop began`)

  const second = await startTestService(t, {}, first.dir)
  assertNothingLost(t, results, await recoverAll(second))
  t.equal((await second.call('POST', '/v1/entries', sampleEntry(0))).status, 201, 'the reopened log takes writes')
})

/** Starts `vecwal serve` on a free port, on the backend the tests run on; resolves once /health/ready answers 200. */
async function startCli (t: Test, dir: string): Promise<{ child: ChildProcess, url: string }> {
  const port = await freePort()
  const child = spawnCli(['serve'], { VECWAL_PORT: String(port), VECWAL_DATA_DIR: dir, VECWAL_LOG_LEVEL: 'info', ...backendEnv(t, dir) })
  const url = `http://127.0.0.1:${port}`
  for (let attempt = 0; attempt < 200; attempt++) {
    const ready = await fetch(`${url}/health/ready`).then(r => r.status, () => 0)
    if (ready === 200) return { child, url }
    if (child.exitCode !== null) break
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  child.kill('SIGKILL')
  throw new Error('vecwal serve did not become ready')
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`vecwal serve on ${signal}: exit 0, everything acknowledged durable`, async t => {
    const dir = tempDir(t)
    const { child, url } = await startCli(t, dir)
    const exited = waitForExit(child)
    const { outcomes, firstAnswer } = fireWrites(url, 200)
    await firstAnswer
    child.kill(signal)
    const [result, writes] = await Promise.all([exited, Promise.all(outcomes)])
    t.equal(result.code, 0, `exit code 0 (stderr: ${result.stderr})`)
    t.equal(result.signal, null, 'it exited by itself')
    t.match(result.stdout, /everything acknowledged is durable/, 'it says so in the log')

    const reopened = await startTestService(t, {}, dir)
    assertNothingLost(t, writes, await recoverAll(reopened))
  })
}

t.test('keep-alive clients do not hold up shutdown: answers during it close their connection', { skip: onJetStream() ? 'it holds a write in flight by holding its fsync (gatedIO), the segment engine\'s file layer' : false }, async t => {
  const { io, hold, release } = gatedIO()
  const service = await startTestService(t, {}, undefined, { io })
  hold()
  // fetch keeps its connections alive: the write waits on the held fsync while stop begins.
  const write = service.call('POST', '/v1/entries', sampleEntry(0))
  for (let i = 0; i < 400 && service.log.status().queuedBytes === 0; i++) await new Promise(resolve => setTimeout(resolve, 5))
  t.ok(service.log.status().queuedBytes > 0, 'the write is queued behind the held fsync')
  let stopped = false
  // A readiness probe whose request is still arriving when stop begins is answered during it.
  const probe = net.connect(Number(new URL(service.url).port), '127.0.0.1')
  probe.on('error', () => {})
  await once(probe, 'connect')
  probe.write('GET /health/ready HTTP/1.1\r\nhost: 127.0.0.1\r\n')
  await sleep(20)
  const stopping = service.stop().then(() => { stopped = true })
  await new Promise(resolve => setTimeout(resolve, 50))
  const answer: Buffer[] = []
  probe.on('data', (chunk: Buffer) => answer.push(chunk))
  probe.write('\r\n')
  await Promise.race([once(probe, 'close'), sleep(2_000)])
  probe.destroy()
  const text = Buffer.concat(answer).toString('utf8')
  t.match(text, /^HTTP\/1\.1 503 /, 'readiness says no while shutting down')
  t.match(text, /"code":"HTTP_SHUTTING_DOWN"/, 'in the error shape, though the route\'s 503 schema is the health body')
  release()
  const response = await write
  t.equal(response.status, 201, 'the write in flight is answered')
  t.equal(response.headers.get('connection'), 'close', 'and its connection closed')
  const deadline = Date.now() + 10_000
  while (!stopped && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  t.ok(stopped, 'stop() finished without waiting for the idle connection to time out')
  service.app.server.closeAllConnections()
  await stopping
})

t.test('a client that stalls mid-body is cut off after VECWAL_IDLE_TIMEOUT_MS: it holds no buffer, nor shutdown', async t => {
  const service = await startTestService(t, { VECWAL_IDLE_TIMEOUT_MS: '300' })
  const socket = net.connect(Number(new URL(service.url).port), '127.0.0.1')
  socket.on('error', () => {})
  const closed = once(socket, 'close')
  await once(socket, 'connect')
  socket.write('POST /v1/entries HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"op"')
  const started = performance.now()
  const outcome = await Promise.race([closed.then(() => 'closed'), sleep(5_000).then(() => 'still open')])
  socket.destroy()
  t.equal(outcome, 'closed', `the server closed the stalled connection (after ${Math.round(performance.now() - started)} ms)`)
  const response = await service.call('POST', '/v1/entries', sampleEntry(1, 4))
  t.equal(response.status, 201, 'the service goes on serving')
})
