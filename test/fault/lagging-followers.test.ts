// Lagging followers against the real service as a child process: eight followers (the three forms)
// read their first chunk and then stop reading, their sockets full, while 32 MiB is written. The
// service's peak RSS growth over writing alone must stay within what README ("Memory.") gives a
// stream, times eight, plus the recent-encodings caches and the garbage collector's slack; then the
// followers read on and each gets every seq in order, and the last line at stop.
//
// Why 32 MiB and not 150: each follower is 32 MiB behind at the end, 13 times what README gives a
// stream in the process and three times what the kernel's socket buffers take, so a service that
// held a lagging follower's records in memory would grow by 8 x 32 MiB = 256 MiB, not tens. 48 MiB
// already took 22-46 s here on 2 busy cores (the followers read it all back, NDJSON and SSE
// printing every vector), 150 MiB would take minutes, for no added proof. VECWAL_DURABILITY=none
// for the same reason: the fsyncs only slow the writes (twice as long here), and the memory
// measured is the streams'.
import http from 'node:http'
import fc from 'fast-check'
import { Packr, unpackMultiple } from 'msgpackr'
import t from 'tap'
import { startChild } from '../helpers/child-service.js'
import { ACCEPT, type FollowForm } from '../helpers/follow.js'
import { tempDir } from '../helpers/wal.js'

const MiB = 1024 * 1024
const FOLLOWERS = 8
const FORMS: readonly FollowForm[] = ['msgpack', 'ndjson', 'sse']
const DIMS = 1024
/** Entries a batch, one record of about 64 KiB: streamBound adds what a record past a few KiB costs. */
const PER_BATCH = 16
const VOLUME = 32 * MiB

/** README, "Memory.": a stream holds about 2.2 MiB with records of a few KiB; a larger record adds a few times its size. */
const streamBound = (recordBytes: number): number => 2.2 * MiB + 4 * recordBytes
/** README: NDJSON and msgpack each keep at most 4 MiB of the newest records' encodings, whatever the followers. */
const SHARED_ENCODINGS = 2 * 4 * MiB
/**
 * The garbage collector's slack: garbage made by the writes and the streams between collections.
 * README's 16 paused streams measured 75 MiB against 35 MiB of buffers, some 40 MiB of slack.
 */
const GC_SLACK = 40 * MiB

/** A follow stream read as it arrives, keeping only its records' seqs and its last line. */
interface Follower {
  seqs: number[]
  end?: Record<string, unknown>
  firstChunk: Promise<void>
  resume: () => void
  close: () => void
}

/**
 * The seqs in `bytes`, whole units only: NDJSON lines, SSE events or msgpack values. Returns how
 * many bytes it read, so that the rest waits for the next chunk.
 */
function readUnits (form: FollowForm, bytes: Buffer, follower: Follower): number {
  if (form === 'msgpack') {
    let whole = 0
    try {
      unpackMultiple(bytes, (value: unknown, _start?: number, end?: number) => {
        const seq = (value as { seq?: unknown } | null)?.seq
        if (typeof seq === 'number') follower.seqs.push(seq)
        else if (value !== null) follower.end = value as Record<string, unknown>
        whole = end ?? whole
      })
    } catch {
      // The last value has not all come yet.
    }
    return whole
  }
  const boundary = form === 'ndjson' ? '\n' : '\n\n'
  let from = 0
  for (let at = bytes.indexOf(boundary, from); at >= 0; at = bytes.indexOf(boundary, from)) {
    // A record's seq leads its line (`{"seq":N,`) or its event (`id: N`): no need to parse its vectors.
    const head = bytes.toString('latin1', from, Math.min(at, from + 32))
    const seq = form === 'ndjson' ? /^\{"seq":(\d+),/.exec(head) : /^id: (\d+)\n/.exec(head)
    if (seq !== null) follower.seqs.push(Number(seq[1]))
    else if (head.startsWith('{"end"')) follower.end = JSON.parse(bytes.toString('utf8', from, at)) as Record<string, unknown>
    else if (head.startsWith('event: end\ndata: ')) follower.end = JSON.parse(bytes.toString('utf8', from + 17, at)) as Record<string, unknown>
    from = at + boundary.length
  }
  return from
}

/** Follows from seq 0; reads the first chunk, then stops reading until resume(). */
function follow (url: string, form: FollowForm): Follower {
  let rest: Buffer = Buffer.alloc(0)
  let first!: () => void
  let failed!: (err: Error) => void
  const follower: Follower = {
    seqs: [],
    firstChunk: new Promise((resolve, reject) => { first = resolve; failed = reject }),
    resume: () => {},
    close: () => { request.destroy() }
  }
  const request: http.ClientRequest = http.get(`${url}/v1/recovery?after=0&follow=true`, { agent: false, headers: { accept: ACCEPT[form] } }, response => {
    if (response.statusCode !== 200) failed(new Error(`${form}: the follow answered ${String(response.statusCode)}`))
    follower.resume = () => { response.resume() }
    response.once('data', () => {
      response.pause()
      first()
    })
    response.on('data', (chunk: Buffer) => {
      rest = rest.length === 0 ? chunk : Buffer.concat([rest, chunk])
      rest = rest.subarray(readUnits(form, rest, follower))
    })
    response.on('error', () => {})
  })
  request.on('error', err => { failed(err) })
  return follower
}

t.test('followers that stop reading while 32 MiB is written hold the service\'s memory to the per-stream bound, then get every seq', async t => {
  const child = await startChild({ dataDir: tempDir(t), env: { VECWAL_DIMENSIONS: String(DIMS), VECWAL_DURABILITY: 'none' } })
  t.teardown(async () => { await child.kill9() })
  // Generated vectors of small whole numbers: short in NDJSON, so that reading it all back is quick.
  const vectors = fc.sample(fc.array(fc.integer({ min: -99, max: 99 }), { minLength: DIMS, maxLength: DIMS }), { numRuns: 16, seed: 1212 })
  const packr = new Packr({ moreTypes: true })
  const bodies = vectors.map((_, k) => packr.pack({ entries: Array.from({ length: PER_BATCH }, (_, i) => ({ op: 'insert', id: `v${k}.${i}`, vector: Float32Array.from(vectors[(k + i) % vectors.length]) })) }))
  let lastSeq = 0
  let batches = 0
  // Four writers at once, until `bytes` more are written.
  const write = async (bytes: number): Promise<void> => {
    let written = 0
    await Promise.all([0, 1, 2, 3].map(async () => {
      while (written < bytes) {
        const body = bodies[batches++ % bodies.length]
        written += body.length
        const response = await fetch(`${child.url}/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/msgpack' }, body })
        if (response.status !== 201) throw new Error(`a batch answered ${response.status}: ${await response.text()}`)
        lastSeq = Math.max(lastSeq, ((await response.json()) as { seq: number }).seq)
      }
    }))
  }
  let peak = child.rssBytes()
  const sampler = setInterval(() => {
    try { peak = Math.max(peak, child.rssBytes()) } catch {}
  }, 25)
  t.teardown(() => { clearInterval(sampler) })
  // The baseline is the peak of writing alone, at the same pace: the write routes' own garbage, and
  // the heap grown to hold it, are not the followers'.
  await write(VOLUME / 2)
  const baseline = peak

  const followers = Array.from({ length: FOLLOWERS }, (_, i) => follow(child.url, FORMS[i % FORMS.length]))
  t.teardown(() => { followers.forEach(f => { f.close() }) })
  await Promise.all(followers.map(async f => { await f.firstChunk }))
  const started = performance.now()
  await write(VOLUME)
  const writeMs = performance.now() - started
  const recordBytes = Math.max(...bodies.map(b => b.length))
  const bound = FOLLOWERS * streamBound(recordBytes) + SHARED_ENCODINGS + GC_SLACK
  const growth = peak - baseline
  t.comment(`${VOLUME / MiB} MiB written in ${Math.round(writeMs)} ms past ${FOLLOWERS} paused followers (records of ${Math.round(recordBytes / 1024)} KiB): RSS peak ${Math.round(baseline / MiB)} MiB writing alone, ${Math.round(peak / MiB)} MiB`)
  t.ok(followers.every(f => f.seqs.length < lastSeq / 2), 'the followers were held behind: each has less than half the log')
  t.ok(growth <= bound, `RSS grew by ${(growth / MiB).toFixed(1)} MiB, within ${FOLLOWERS} streams' ${(streamBound(recordBytes) / MiB).toFixed(2)} MiB, the 8 MiB of shared encodings and ${GC_SLACK / MiB} MiB of slack: ${(bound / MiB).toFixed(1)} MiB`)

  followers.forEach(f => { f.resume() })
  const deadline = Date.now() + 60_000
  while (followers.some(f => f.seqs.length < lastSeq) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
  clearInterval(sampler)
  t.comment(`the followers caught up in ${Math.round(performance.now() - started - writeMs)} ms`)
  const expected = Array.from({ length: lastSeq }, (_, i) => i + 1)
  for (const [i, f] of followers.entries()) {
    t.same(f.seqs, expected, `follower ${i} (${FORMS[i % FORMS.length]}): every seq of ${lastSeq}, once, in order`)
  }
  t.ok(peak - baseline <= bound, `and while they caught up: RSS peaked ${((peak - baseline) / MiB).toFixed(1)} MiB over the baseline`)
  t.equal((await child.stop()).code, 0, 'the service stops gracefully')
  const ended = Date.now() + 5000
  while (followers.some(f => f.end === undefined) && Date.now() < ended) await new Promise(resolve => setTimeout(resolve, 20))
  t.same(followers.map(f => f.end), followers.map(() => ({ end: 'shutdown' })), 'each follower\'s last line says the server stopped')
})
