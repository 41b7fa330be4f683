// A flood of connections against the real service as a child process run with a small limit of
// open files (prlimit). The connection cap, derived from that limit, closes the connections past
// it, so the descriptors the log needs stay free: a client already connected keeps writing across
// segment rotations while the flood holds every connection it can get, and afterwards the service
// takes new connections and has every acknowledged entry. Before the cap, the flood took every
// descriptor and the next segment could not be created (EMFILE).
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import fc from 'fast-check'
import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config.js'
import { sleep, startChild } from '../helpers/child-service.js'
import { tempDir } from '../helpers/wal.js'

const OPEN_FILES = 160
const MAX_STREAMS = 4
// The default the service derives: the limit less the streams and 64 kept for files and the runtime.
const MAX_CONNECTIONS = OPEN_FILES - MAX_STREAMS - 64
const FLOOD = 3 * OPEN_FILES

/** Generated entries (fast-check, fixed seed) as JSON bodies, each with a distinct id. */
function generatedEntries (count: number, seed: number): Array<{ id: string, body: string }> {
  const entry = fc.record({
    tag: fc.string({ maxLength: 60 }),
    vector: fc.array(fc.integer({ min: -1_000_000, max: 1_000_000 }), { minLength: 8, maxLength: 24 })
  })
  return fc.sample(entry, { numRuns: count, seed }).map(({ tag, vector }, i) => {
    const id = `e.${seed}.${i}`
    return { id, body: JSON.stringify({ op: 'insert', id, vector, metadata: { tag } }) }
  })
}

/** POST over `agent` (one kept-alive connection); resolves with the status and parsed body. */
async function post (url: string, agent: http.Agent | undefined, body: string): Promise<{ status: number, body: Record<string, unknown> }> {
  return await new Promise((resolve, reject) => {
    const req = http.request(`${url}/v1/entries`, { method: 'POST', agent, headers: { 'content-type': 'application/json' }, timeout: 10_000 }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }) })
    })
    req.on('timeout', () => { req.destroy(new Error('no answer within 10 s')) })
    req.on('error', reject)
    req.end(body)
  })
}

/** Opens a connection; resolves with it once connected (or undefined if the connect failed). */
async function connectOnce (port: number): Promise<net.Socket | undefined> {
  return await new Promise(resolve => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => { resolve(socket) })
    socket.once('error', () => { resolve(undefined) })
  })
}

t.test('a flood of connections is capped below the descriptor limit: the log keeps writing across rotations', async t => {
  const dataDir = tempDir(t, 'vecwal-flood-')
  const child = await startChild({
    dataDir,
    openFiles: OPEN_FILES,
    env: { VECWAL_MAX_STREAMS: String(MAX_STREAMS), VECWAL_SEGMENT_BYTES: '8192' }
  })
  t.teardown(async () => { await child.kill9() })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })

  const acked = new Map<string, number>()
  const write = async (entry: { id: string, body: string }, through: http.Agent | undefined): Promise<number> => {
    const answer = await post(child.url, through, entry.body)
    if (answer.status === 201) acked.set(entry.id, answer.body.seq as number)
    return answer.status
  }
  for (const entry of generatedEntries(5, 1)) await write(entry, agent)
  t.equal(acked.size, 5, 'writes over a kept-alive connection are acknowledged')

  const flood: net.Socket[] = []
  t.teardown(() => { flood.forEach(s => s.destroy()) })
  for (let i = 0; i < FLOOD; i += 40) {
    const opened = await Promise.all(Array.from({ length: Math.min(40, FLOOD - i) }, async () => await connectOnce(child.port)))
    for (const socket of opened) {
      if (socket === undefined) continue
      socket.on('error', () => {})
      flood.push(socket)
    }
  }
  await sleep(500)
  const held = flood.filter(s => !s.destroyed && s.readyState === 'open').length
  t.comment(`${FLOOD} connections opened, ${held} still held by the service; it has ${child.openFds()} descriptors open, of ${OPEN_FILES}`)
  t.ok(held <= MAX_CONNECTIONS - 1, `the service holds at most ${MAX_CONNECTIONS - 1} of them (the cap, less the writer's connection)`)
  t.ok(child.openFds() < OPEN_FILES, 'and has descriptors to spare')

  const segmentsBefore = fs.readdirSync(dataDir).filter(name => name.endsWith('.seg')).length
  const during = generatedEntries(150, 2)
  const statuses: number[] = []
  for (const entry of during) statuses.push(await write(entry, agent))
  const segmentsAfter = fs.readdirSync(dataDir).filter(name => name.endsWith('.seg')).length
  t.same(statuses.filter(s => s !== 201), [], `all ${during.length} writes during the flood are acknowledged`)
  t.ok(segmentsAfter >= segmentsBefore + 2, `across rotations (${segmentsBefore} segments before, ${segmentsAfter} after)`)

  flood.forEach(s => s.destroy())
  agent.destroy()
  // The service learns of the flood's closes as their FINs arrive: until then it may still be at
  // its cap and close a new connection at once. Wait for the first write to be taken, then count.
  const after = generatedEntries(20, 3)
  for (let tries = 1; ; tries++) {
    try {
      await write(after[0], undefined)
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET' || tries === 50) throw err
      await sleep(100)
    }
  }
  let accepted = acked.has(after[0].id) ? 1 : 0
  for (const entry of after.slice(1)) if (await write(entry, undefined) === 201) accepted++
  t.equal(accepted, after.length, 'once the flood has gone, writes on new connections are acknowledged')
  const ready = await fetch(`${child.url}/health/ready`)
  t.equal(ready.status, 200, 'the log is ready, not failed')

  const res = await fetch(`${child.url}/v1/recovery?after=0`)
  const found = new Map((await res.text()).split('\n').filter(l => l !== '').map(line => {
    const record = JSON.parse(line) as { seq: number, id: string }
    return [record.id, record.seq] as const
  }))
  t.same([...acked].filter(([id, seq]) => found.get(id) !== seq), [], `every one of the ${acked.size} acknowledged entries is in the log at its seq`)
  t.equal(found.size, acked.size, 'and nothing else')
  t.equal((await child.stop()).code, 0, 'the service stops gracefully')
})

t.test('the connection cap: derived from the limit of open files unless set, refused when the limit leaves none', async t => {
  t.doesNotThrow(() => { fc.assert(fc.property(fc.integer({ min: 1, max: 1024 }), fc.integer({ min: 0, max: 1_000_000 }), (streams, spare) => {
    const openFiles = streams + 64 + 1 + spare
    const derived = loadConfig({ VECWAL_MAX_STREAMS: String(streams) }, openFiles).maxConnections
    const set = loadConfig({ VECWAL_MAX_STREAMS: String(streams), VECWAL_MAX_CONNECTIONS: String(spare + 1) }, 1).maxConnections
    let refused: unknown
    try {
      loadConfig({ VECWAL_MAX_STREAMS: String(streams) }, streams + 64)
    } catch (err) {
      refused = err
    }
    return derived === spare + 1 && set === spare + 1 && refused instanceof ConfigError && refused.message.includes('VECWAL_MAX_CONNECTIONS')
  }), { seed: 5 }) }, 'the limit less the streams and 64; VECWAL_MAX_CONNECTIONS as set; no connection left: a ConfigError naming it')
})
