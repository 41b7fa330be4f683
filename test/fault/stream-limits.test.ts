// Recovery streams against the real service as a child process. (1) Past VECWAL_MAX_STREAMS a
// stream is refused with 503 HTTP_TOO_MANY_STREAMS and Retry-After, and opens again once one ends.
// (2) With the cap's worth of readers streaming (each taking 64 KiB, then pausing), writes are not
// starved: their p99 stays under ten times the idle p99 or 750 ms. Not a speed target: before
// streams gave way between chunks it was seconds.
import net from 'node:net'
import fc from 'fast-check'
import t from 'tap'
import { sleep, startChild, type ChildService } from '../helpers/child-service.js'
import { tempDir } from '../helpers/wal.js'

const MAX_STREAMS = 6

/** Generated entries (fast-check, fixed seed): ids, 64-value vectors, a metadata value. */
function generatedEntries (count: number, seed: number): string[] {
  const entry = fc.record({
    id: fc.string({ minLength: 1, maxLength: 24 }),
    vector: fc.array(fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), { minLength: 64, maxLength: 64 }),
    tag: fc.string({ maxLength: 40 })
  })
  return fc.sample(entry, { numRuns: count, seed }).map(({ id, vector, tag }) =>
    JSON.stringify({ op: 'insert', id, vector: vector.map(v => Object.is(v, -0) ? 0 : v), metadata: { tag } }))
}

async function post (url: string, route: string, body: string): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(url + route, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

/** Fills the log with `batches` batches of generated entries. */
async function fill (child: ChildService, batches: number): Promise<void> {
  const entries = generatedEntries(1000, 42)
  for (let b = 0; b < batches; b++) {
    const answer = await post(child.url, '/v1/batch', `{"entries":[${entries.join(',')}]}`)
    if (answer.status !== 201) throw new Error(`filling: ${answer.status} ${JSON.stringify(answer.body)}`)
  }
}

interface StreamReader {
  /** The status line's code, once the head has arrived. */
  status: Promise<number>
  /** Resolves once the connection is gone: the stream ended, or close() was called. */
  closed: Promise<void>
  received: () => number
  close: () => void
}

/**
 * GET /v1/recovery over a raw socket: takes `pauseEvery` bytes, stops reading for `pauseMs`, and so
 * on, until closed or the stream ends.
 */
function openStream (port: number, pauseEvery: number, pauseMs: number): StreamReader {
  const socket = net.connect(port, '127.0.0.1')
  socket.write(`GET /v1/recovery?after=0 HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`)
  let received = 0
  let sincePause = 0
  let head = ''
  let resolveStatus!: (code: number) => void
  const status = new Promise<number>(resolve => { resolveStatus = resolve })
  socket.on('data', (chunk: Buffer) => {
    if (received === 0 || head.length < 12) head += chunk.subarray(0, 64).toString('latin1')
    if (head.length >= 12) resolveStatus(Number(head.slice(9, 12)))
    received += chunk.length
    sincePause += chunk.length
    if (sincePause >= pauseEvery) {
      sincePause = 0
      socket.pause()
      setTimeout(() => { if (!socket.destroyed) socket.resume() }, pauseMs).unref()
    }
  })
  socket.on('error', () => {})
  const closed = new Promise<void>(resolve => {
    socket.on('close', () => {
      resolveStatus(0)
      resolve()
    })
  })
  return { status, closed, received: () => received, close: () => { socket.destroy() } }
}

/**
 * POSTs generated entries one after another, `count` of them or until `budgetMs` has passed, and
 * returns each one's latency in ms.
 */
async function writeLatencies (url: string, entries: string[], count: number, budgetMs = 15_000): Promise<number[]> {
  const latencies: number[] = []
  const deadline = performance.now() + budgetMs
  for (let i = 0; i < count && performance.now() < deadline; i++) {
    const started = performance.now()
    const answer = await post(url, '/v1/entries', entries[i % entries.length])
    latencies.push(performance.now() - started)
    if (answer.status !== 201) throw new Error(`write ${i}: ${answer.status} ${JSON.stringify(answer.body)}`)
  }
  return latencies
}

function p99 (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]
}

t.test('past VECWAL_MAX_STREAMS a stream gets 503 HTTP_TOO_MANY_STREAMS with Retry-After, and opens once one ends', async t => {
  const child = await startChild({ dataDir: tempDir(t, 'vecwal-streams-'), env: { VECWAL_MAX_STREAMS: String(MAX_STREAMS), VECWAL_DURABILITY: 'none' } })
  t.teardown(async () => { await child.kill9() })
  await fill(child, 10)
  // Readers that take a little and stop: each stream stays open, held up by its full socket.
  const readers = Array.from({ length: MAX_STREAMS }, () => openStream(child.port, 64 * 1024, 60_000))
  t.teardown(() => { readers.forEach(r => { r.close() }) })
  t.same(await Promise.all(readers.map(r => r.status)), readers.map(() => 200), `${MAX_STREAMS} streams open`)
  const refused = await fetch(`${child.url}/v1/recovery?after=0`)
  const body = await refused.json() as Record<string, unknown>
  t.equal(refused.status, 503, `stream ${MAX_STREAMS + 1} gets 503`)
  t.equal(body.code, 'HTTP_TOO_MANY_STREAMS', 'with code HTTP_TOO_MANY_STREAMS')
  t.equal(refused.headers.get('retry-after'), '1', 'and Retry-After: 1')
  t.equal((await post(child.url, '/v1/entries', generatedEntries(1, 7)[0])).status, 201, 'writes are still accepted')
  readers[0].close()
  let reopened = 0
  for (let attempt = 0; attempt < 100 && reopened !== 200; attempt++) {
    await sleep(20)
    const res = await fetch(`${child.url}/v1/recovery?after=0&limit=1`)
    await res.arrayBuffer()
    reopened = res.status
  }
  t.equal(reopened, 200, 'once a stream has ended, another opens')
})

t.test('with the cap\'s worth of slow readers streaming, write p99 stays under ten times its idle value or 750 ms, not seconds', async t => {
  const child = await startChild({ dataDir: tempDir(t, 'vecwal-streams-'), env: { VECWAL_MAX_STREAMS: String(MAX_STREAMS), VECWAL_DURABILITY: 'none' } })
  t.teardown(async () => { await child.kill9() })
  await fill(child, 40)
  const entries = generatedEntries(200, 9)
  await writeLatencies(child.url, entries, 50)
  const idle = await writeLatencies(child.url, entries, 200)

  // Every reader takes 64 KiB and pauses 5 ms, over and over; one whose stream ends starts another.
  let reading = true
  const open = new Set<StreamReader>()
  let streamed = 0
  const loops = Array.from({ length: MAX_STREAMS }, async () => {
    while (reading) {
      const reader = openStream(child.port, 64 * 1024, 5)
      open.add(reader)
      await reader.closed
      open.delete(reader)
      streamed += reader.received()
    }
  })
  await sleep(500)
  const loaded = await writeLatencies(child.url, entries, 200)
  reading = false
  open.forEach(r => { r.close() })
  await Promise.all(loops)

  const idleP99 = p99(idle)
  const loadedP99 = p99(loaded)
  t.comment(`write p99 idle ${idleP99.toFixed(1)} ms, with ${MAX_STREAMS} streaming readers ${loadedP99.toFixed(1)} ms (max ${Math.max(...loaded).toFixed(1)} ms); readers took ${Math.round(streamed / 1024 / 1024)} MiB`)
  t.ok(streamed > 64 * 1024 * MAX_STREAMS, 'the readers were streaming')
  const bound = Math.max(10 * idleP99, 750)
  t.ok(loadedP99 < bound, `write p99 with readers (${loadedP99.toFixed(1)} ms) is under ${bound.toFixed(0)} ms`)
})
