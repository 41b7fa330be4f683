// Overload, against the real service as a child process.
// (1) Ten times more concurrent writers than the write queue holds: the excess gets 503 with
//     Retry-After and WAL_QUEUE_FULL, every 201 is in the log (and no 503), memory stays bounded, and
//     writes are accepted again once the load drops.
// (2) Slow and abandoned recovery readers over a log of tens of MB: writers keep getting 201s,
//     the service's memory stays bounded, and once the readers are gone its open files are back to
//     what they were.
import http from 'node:http'
import t from 'tap'
import { sleep, startChild, type ChildService } from '../helpers/child-service.js'
import { tempDir } from '../helpers/wal.js'

const MiB = 1024 * 1024
const DIMS = 1024

/** Vector values with short decimals (n / 4), exact as float32: `[..]` as JSON text, for variant k. */
const vectorValues = (k: number): number[] => Array.from({ length: DIMS }, (_, d) => ((k * 37 + d) % 256) / 4)
const vectorJson = Array.from({ length: 16 }, (_, k) => JSON.stringify(vectorValues(k)))

function entryBody (id: string, variant: number): string {
  return `{"op":"insert","id":"${id}","vector":${vectorJson[variant % 16]}}`
}

/** Samples a child's resident memory every 25 ms; `peak` is the highest seen. */
function rssSampler (child: ChildService): { peak: () => number, stop: () => void } {
  let peak = child.rssBytes()
  const timer = setInterval(() => {
    try { peak = Math.max(peak, child.rssBytes()) } catch {}
  }, 25)
  return { peak: () => peak, stop: () => { clearInterval(timer) } }
}

/** Streams the recovery NDJSON and returns each record's id and vector variant check. */
async function recoveredIds (url: string): Promise<Map<string, { seq: number, vector: number[] }>> {
  const res = await fetch(`${url}/v1/recovery?after=0`)
  const found = new Map<string, { seq: number, vector: number[] }>()
  const decoder = new TextDecoder()
  let rest = ''
  const take = (line: string): void => {
    if (line === '') return
    const record = JSON.parse(line) as { seq: number, id: string, vector: number[] }
    found.set(record.id, { seq: record.seq, vector: record.vector })
  }
  for await (const chunk of res.body ?? []) {
    rest += decoder.decode(chunk as Uint8Array, { stream: true })
    const lines = rest.split('\n')
    rest = lines.pop() ?? ''
    lines.forEach(take)
  }
  take(rest + decoder.decode())
  return found
}

t.test('ten times more writers than the queue holds: 503 + Retry-After for the excess, nothing accepted lost', async t => {
  const queueLimit = 256 * 1024
  const dir = tempDir(t, 'vecwal-overload-')
  const child = await startChild({ dataDir: dir, env: { VECWAL_QUEUE_LIMIT_BYTES: String(queueLimit) } })
  t.teardown(async () => { await child.kill9() })

  // A 1024-value vector is a record of about 4.1 KiB: the queue holds about 63 of them.
  const recordBytes = 28 + DIMS * 4 + 40
  const writers = 10 * Math.ceil(queueLimit / recordBytes)
  const requests = 2000
  const baseline = child.rssBytes()
  const rss = rssSampler(child)
  let issued = 0
  const acked = new Map<string, { seq: number, variant: number }>()
  const refused: string[] = []
  const others: string[] = []
  await Promise.all(Array.from({ length: writers }, async () => {
    while (issued < requests) {
      const i = issued++
      const id = `load.${i}`
      try {
        const res = await fetch(`${child.url}/v1/entries`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: entryBody(id, i) })
        const body = await res.json() as { seq?: number, code?: string, statusCode?: number, error?: string, message?: string }
        if (res.status === 201 && typeof body.seq === 'number') acked.set(id, { seq: body.seq, variant: i % 16 })
        else if (res.status === 503 && body.code === 'WAL_QUEUE_FULL' && body.statusCode === 503 && typeof body.message === 'string' && Number(res.headers.get('retry-after')) > 0) refused.push(id)
        else others.push(`${res.status} ${JSON.stringify(body)} retry-after ${String(res.headers.get('retry-after'))}`)
      } catch (err) {
        others.push(`${id}: ${String(err)}`)
      }
    }
  }))
  rss.stop()
  t.comment(`${writers} writers, ${requests} requests: ${acked.size} acknowledged, ${refused.length} refused with 503; RSS ${Math.round(baseline / MiB)} MiB before, peak ${Math.round(rss.peak() / MiB)} MiB`)
  t.same(others, [], 'every answer is a 201 or a 503 WAL_QUEUE_FULL with Retry-After')
  t.ok(refused.length > 0, 'the excess was refused')
  t.ok(acked.size > 0, 'writes were accepted')
  // The bound: an idle service is about 100 MiB here; at most `writers` request bodies (about 6 KiB
  // of JSON, parsed into a 1024-number array and a Float32Array) are held at once, some 40 KiB each
  // at worst, plus the 256 KiB queue: about 30 MiB. 300 MiB leaves room for the garbage collector's
  // slack and still fails if accepted writes piled up beyond the queue limit.
  t.ok(rss.peak() < 300 * MiB, `peak RSS ${Math.round(rss.peak() / MiB)} MiB stays under 300 MiB`)

  const again: number[] = []
  for (let i = 0; i < 20; i++) {
    const id = `calm.${i}`
    const res = await fetch(`${child.url}/v1/entries`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: entryBody(id, i) })
    const body = await res.json() as { seq: number }
    again.push(res.status)
    if (res.status === 201) acked.set(id, { seq: body.seq, variant: i % 16 })
  }
  t.same(again, again.map(() => 201), 'once the load drops, writes are accepted again')

  const found = await recoveredIds(child.url)
  const lost = [...acked].filter(([id, { seq, variant }]) => {
    const record = found.get(id)
    return record === undefined || record.seq !== seq || JSON.stringify(record.vector) !== vectorJson[variant]
  })
  t.same(lost.map(([id]) => id), [], `every one of the ${acked.size} acknowledged writes is in the log, at its seq, unchanged`)
  t.same(refused.filter(id => found.has(id)), [], 'no refused write is in the log')
  t.equal(found.size, acked.size, 'and nothing else is')
  t.equal((await child.stop()).code, 0, 'the service stops gracefully')
})

interface Reader { request: http.ClientRequest, received: number, firstChunk: Promise<void> }

/**
 * Opens GET /v1/recovery?after=0 over its own connection. A slow reader takes one chunk and then
 * waits `pauseMs` before the next (the socket fills and the server must stop pulling); an abandoned
 * one hangs up after its first chunk.
 */
function openReader (url: string, mode: 'slow' | 'abandon', pauseMs = 250): Reader {
  let resolveFirst!: () => void
  let rejectFirst!: (err: Error) => void
  const firstChunk = new Promise<void>((resolve, reject) => { resolveFirst = resolve; rejectFirst = reject })
  const reader: Reader = { request: undefined as unknown as http.ClientRequest, received: 0, firstChunk }
  reader.request = http.get(`${url}/v1/recovery?after=0`, { agent: false }, res => {
    if (res.statusCode !== 200) rejectFirst(new Error(`recovery answered ${String(res.statusCode)}`))
    res.on('data', (chunk: Buffer) => {
      reader.received += chunk.length
      resolveFirst()
      if (mode === 'abandon') {
        reader.request.destroy()
        return
      }
      res.pause()
      setTimeout(() => { res.resume() }, pauseMs).unref()
    })
    res.on('error', () => {})
  })
  reader.request.on('error', (err) => { rejectFirst(err) })
  return reader
}

/** POST over a connection of its own (closed after the answer), so the server's open files settle. */
async function postOnce (url: string, route: string, body: string): Promise<{ status: number, ms: number }> {
  const started = performance.now()
  return await new Promise((resolve, reject) => {
    const req = http.request(`${url}${route}`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, res => {
      res.resume()
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }) })
    })
    req.setTimeout(60_000, () => { req.destroy(new Error('no answer within 60 s')) })
    req.on('error', reject)
    req.end(body)
  })
}

/** GET over a connection of its own; resolves with the status and the body text. */
async function getOnce (url: string, route: string): Promise<{ status: number, text: string }> {
  return await new Promise((resolve, reject) => {
    http.get(`${url}${route}`, { agent: false }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, text }) })
    }).on('error', reject)
  })
}

/** The child's open files once the count holds still for half a second. */
async function steadyFds (child: ChildService): Promise<number> {
  let last = child.openFds()
  for (let i = 0; i < 40; i++) {
    await sleep(500)
    const now = child.openFds()
    if (now === last) return now
    last = now
  }
  return last
}

async function settle (what: () => number, target: number, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs
  let value = what()
  while (value > target && Date.now() < deadline) {
    await sleep(100)
    value = what()
  }
  return value
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

t.test('slow and abandoned recovery readers stall no writer and hold no memory or files', async t => {
  const dir = tempDir(t, 'vecwal-overload-')
  const child = await startChild({ dataDir: dir, env: { VECWAL_SEGMENT_BYTES: String(8 * MiB) } })
  t.teardown(async () => { await child.kill9() })

  // About 30 MiB of records (7,200 entries of 1,024 values), as 36 batches of 200.
  for (let b = 0; b < 36; b += 4) {
    const answers = await Promise.all([0, 1, 2, 3].map(async k => {
      const entries = Array.from({ length: 200 }, (_, i) => entryBody(`big.${b + k}.${i}`, i)).join(',')
      return await postOnce(child.url, '/v1/batch', `{"entries":[${entries}]}`)
    }))
    t.ok(answers.every(a => a.status === 201), `batches ${b}..${b + 3} are acknowledged`)
  }
  const status = JSON.parse((await getOnce(child.url, '/v1/status')).text) as { bytes: number, segments: unknown[] }
  t.ok(status.bytes > 25 * MiB, `the log holds ${Math.round(status.bytes / MiB)} MiB in ${status.segments.length} segments`)

  const quiet = await Promise.all(Array.from({ length: 20 }, async (_, i) => await postOnce(child.url, '/v1/entries', entryBody(`quiet.${i}`, i))))
  t.ok(quiet.every(a => a.status === 201), 'writes before the readers are acknowledged')
  const baseFds = await steadyFds(child)
  const baseRss = child.rssBytes()
  const rss = rssSampler(child)

  const slow = Array.from({ length: 4 }, () => openReader(child.url, 'slow'))
  const abandoned = Array.from({ length: 4 }, () => openReader(child.url, 'abandon'))
  await Promise.all([...slow, ...abandoned].map(async r => { await r.firstChunk }))
  t.ok(child.openFds() > baseFds, 'the open streams hold sockets and segment files')

  // Writers go on while the readers crawl: every write must be answered (a stall never would be).
  const latencies: number[] = []
  const statuses: number[] = []
  await Promise.all(Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; i < 50; i++) {
      const { status, ms } = await postOnce(child.url, '/v1/entries', entryBody(`during.${w}.${i}`, i))
      statuses.push(status)
      latencies.push(ms)
    }
  }))
  await sleep(1000)
  rss.stop()
  const received = slow.map(r => r.received)
  t.comment(`write latency with 4 slow readers: median ${Math.round(median(latencies))} ms, max ${Math.round(Math.max(...latencies))} ms; ` +
    `slow readers got ${received.map(b => Math.round(b / 1024)).join(', ')} KiB; RSS ${Math.round(baseRss / MiB)} MiB before, peak ${Math.round(rss.peak() / MiB)} MiB`)
  t.same(statuses, statuses.map(() => 201), `all ${statuses.length} writes are acknowledged while the readers crawl`)
  t.ok(Math.max(...latencies) < 10_000, 'no write waited 10 s')
  t.ok(received.every(b => b < status.bytes), 'the slow readers are far from done (they really are slow)')
  // Each open stream may hold about a megabyte in the engine's read buffer, its 256 KiB stream buffer
  // and what the socket takes; reading a stream into memory would take some 40 MiB of NDJSON each.
  t.ok(rss.peak() - baseRss < 100 * MiB, `RSS grew by ${Math.round((rss.peak() - baseRss) / MiB)} MiB, under 100 MiB`)

  for (const reader of slow) reader.request.destroy()
  const fds = await settle(() => child.openFds(), baseFds)
  t.ok(fds <= baseFds, `once every reader is gone the service holds ${fds} files, as before (${baseFds})`)
  t.equal((await getOnce(child.url, '/health/ready')).status, 200, 'the service is ready')
  t.equal((await child.stop()).code, 0, 'the service stops gracefully')
})
