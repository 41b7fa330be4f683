// Faults of the NATS cluster under the JetStream backend, each bounded, on a 3-node cluster on
// 127.0.0.1 shared by the file (every case leaves it whole again): the stream leader killed under
// write load (keyed writers retrying through it) and restarted, all three nodes killed and
// restarted, the quorum lost, a node paused until the others elect a new leader, one of two
// vecwal instances killed. What every case holds to: an entry answered 2xx is in the log exactly
// once, at the seq its answer gave; a write not stored is answered 503 with Retry-After, never
// anything else; seqs stay one gap-free run.
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import t, { type Test } from 'tap'
import { VecwalClient, type Entry } from '../../src/client/index.js'
import { startChild } from '../helpers/child-service.js'
import { PATIENT } from '../helpers/client-follow.js'
import { ndjson, sampleEntry, startTestService, useJetStream, type TestService } from '../helpers/http.js'
import { deleteStream, freshStreamName, natsServerVersion, startNatsCluster, type NatsCluster } from '../helpers/nats-cluster.js'
import { tempDir } from '../helpers/wal.js'

/** A write waits this long for its ack before 503: the bound on a write while the quorum is lost. */
const TIMEOUT_MS = 2000
/** Concurrent writers of a load. */
const WRITERS = 8
/** A keyed writer's retry policy: PATIENT, for as long as an election and a restart take. */
const UNTIL_STORED = { ...PATIENT, attempts: 1000, maxElapsedMs: 60_000 }
/** Of a keyed load's answers, every this-many-th is lost on its way back (dropped after the service answered). */
const LOST_ANSWER_EVERY = 7

const cluster = await startNatsCluster(t)
useJetStream(cluster.servers)

/**
 * Debian's nats-server 2.9.10, which these tests run on, lets a replica diverge from the others:
 * a leader killed and restarted under load came back holding records the quorum never stored (an
 * acknowledged entry a second time, at a later seq), and a leader paused past an election stored,
 * once resumed, the publishes it had queued, which clients had been refused. A read served from such
 * a replica gets what the quorum does not hold (README: The JetStream backend). A check below that
 * fails on 2.9 while the nodes' replicas disagree is that defect, and is marked todo; one that fails
 * while they agree, or on a later server, is vecwal's and fails the file.
 */
const KNOWN_DIVERGENCE = /^2\.9\./.test(natsServerVersion()) ? `nats-server ${natsServerVersion()} lets replicas diverge (README: The JetStream backend)` : undefined

/** What a failed check is, when the replicas of `stream` disagree on a server known to let them: todo. */
async function divergence (stream: string): Promise<{ todo?: string }> {
  if (KNOWN_DIVERGENCE === undefined) return {}
  for (let i = 0; i < 20; i++) {
    const states = await Promise.all(cluster.nodes.map(async n => JSON.stringify((await streamDetail(n.monitorPort, stream))?.state)))
    if (states.some(state => state !== states[0])) return { todo: `${KNOWN_DIVERGENCE}: replicas ${states.join(' ')}` }
    await sleep(150)
  }
  return {}
}

function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** One write and its answer; `at` is when the answer came (ms). */
interface Outcome { id: string, status: number, seq?: number, retryAfter: string | null, at: number }

/** Posts entries of unique ids from WRITERS writers, round-robin over `urls`, until `until` resolves. */
async function load (urls: string[], until: Promise<unknown>, prefix: string): Promise<Outcome[]> {
  let stop = false
  void until.then(() => { stop = true })
  const outcomes: Outcome[] = []
  let next = 0
  await Promise.all(Array.from({ length: WRITERS }, async () => {
    while (!stop) {
      const n = next++
      const id = `${prefix}${n}`
      const url = urls[n % urls.length]
      let outcome: Outcome
      try {
        const response = await fetch(`${url}/v1/entries`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ...sampleEntry(n), id }),
          signal: AbortSignal.timeout(TIMEOUT_MS * 5)
        })
        const body = await response.json() as { seq?: number }
        outcome = { id, status: response.status, seq: body.seq, retryAfter: response.headers.get('retry-after'), at: Date.now() }
      } catch {
        // The instance was killed with the request in flight: its outcome is unknown.
        outcome = { id, status: 0, retryAfter: null, at: Date.now() }
      }
      outcomes.push(outcome)
      if (outcome.status !== 201) await sleep(50)
    }
  }))
  return outcomes
}

/** What a keyed load did: its outcomes (every one a 201), and how often it was refused, lost an answer, or was answered from a first write. */
interface KeyedLoad { outcomes: Outcome[], refused: number, lost: number, replayed: number }

/**
 * Appends entries of unique ids through the typed client from WRITERS writers until `until`
 * resolves, each under an Idempotency-Key of its own and tried with it until 201, through 503s and
 * answers lost on their way back (one in LOST_ANSWER_EVERY): the retries that must not write twice.
 */
async function keyedLoad (url: string, until: Promise<unknown>, prefix: string): Promise<KeyedLoad> {
  let stop = false
  void until.then(() => { stop = true })
  const done: KeyedLoad = { outcomes: [], refused: 0, lost: 0, replayed: 0 }
  let answers = 0
  const client = new VecwalClient({
    baseUrl: url,
    retry: UNTIL_STORED,
    fetch: async request => {
      const response = await fetch(request)
      if (response.status === 503) done.refused++
      if (++answers % LOST_ANSWER_EVERY !== 0) return response
      await response.arrayBuffer()
      done.lost++
      throw new TypeError('the answer was lost on its way back')
    }
  })
  let next = 0
  await Promise.all(Array.from({ length: WRITERS }, async () => {
    while (!stop) {
      const n = next++
      const id = `${prefix}${n}`
      const appended = await client.append({ ...sampleEntry(n), id } as Entry, { idempotencyKey: id })
      if (appended.replayed) done.replayed++
      done.outcomes.push({ id, status: 201, seq: appended.seq, retryAfter: null, at: Date.now() })
    }
  }))
  return done
}

/**
 * Holds the log read from `url` to the outcomes: every 201 exactly once at its seq, no id twice,
 * seqs one gap-free run from 1, every refusal a 503 with Retry-After (or, with `unknownAllowed`,
 * no answer from a killed instance). Where they differ, what each node's replica of `stream` holds
 * is told too: whether the replicas disagree, or agree on the wrong records.
 */
async function verify (t: Test, url: string, stream: string, outcomes: Outcome[], unknownAllowed = false): Promise<void> {
  const refused = outcomes.filter(o => o.status !== 201)
  t.comment(`${outcomes.length - refused.length} writes answered 201, ${refused.length} refused or unanswered`)
  const odd = refused.filter(o => !(o.status === 503 && o.retryAfter !== null) && !(unknownAllowed && o.status === 0))
  t.same(odd.map(o => `${o.id}: ${o.status}`), [], 'every write not answered 201 was answered 503 with Retry-After')
  const lines = await readWhole(url)
  t.same(lines.map(l => l.seq), lines.map((_, i) => i + 1), `the log is one gap-free run of ${lines.length} seqs`)
  const seqOf = new Map<string, number[]>()
  for (const line of lines) seqOf.set(String(line.id), [...(seqOf.get(String(line.id)) ?? []), Number(line.seq)])
  const acked = outcomes.filter(o => o.status === 201)
  const misplaced = acked.filter(o => JSON.stringify(seqOf.get(o.id)) !== JSON.stringify([o.seq])).map(o => `${o.id} at ${String(o.seq)}: ${JSON.stringify(seqOf.get(o.id))}`)
  const twice = [...seqOf].filter(([, seqs]) => seqs.length > 1).map(([id]) => id)
  const sent = new Set(outcomes.map(o => o.id))
  const invented = lines.filter(l => !sent.has(String(l.id))).map(l => l.id)
  const known = misplaced.length + twice.length + invented.length > 0 ? await divergence(stream) : {}
  if (misplaced.length > 0) {
    for (const node of cluster.nodes) t.comment(`${node.name}'s replica: ${JSON.stringify(await streamDetail(node.monitorPort, stream))}`)
  }
  t.same(misplaced, [], `each of the ${acked.length} acknowledged entries is in the log once, at its seq`, known)
  t.same(twice, [], 'no entry is in the log twice', known)
  t.same(invented, [], 'nothing in the log was never sent', known)
}

/**
 * The whole log read from `url`. A read started while the cluster settles after a fault may be
 * refused or cut off (its consumer cannot be made yet): tried again, within a bound, until one
 * stream ends at the X-Vecwal-Last-Seq it promised.
 */
async function readWhole (url: string): Promise<Array<Record<string, unknown>>> {
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await fetch(`${url}/v1/recovery?after=0`)
      const lines = await ndjson(response)
      const promised = Number(response.headers.get('x-vecwal-last-seq'))
      if (response.status === 200 && (lines.at(-1)?.seq ?? 0) === promised) return lines
    } catch (err) {
      if (attempt >= 50) throw err
    }
    if (attempt >= 50) throw new Error(`no whole read of ${url} in ${attempt} attempts`)
    await sleep(200)
  }
}

async function streamLeader (stream: string): Promise<string> {
  const nc = await connect({ servers: cluster.servers, timeout: 2000 })
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5000 })
    let cause: unknown
    for (let i = 0; i < 100; i++) {
      // Right after a restart the stream may not answer at all until its replicas elect a leader.
      const leader = await jsm.streams.info(stream).then(info => info.cluster?.leader, (err: unknown) => { cause = err })
      if (leader !== undefined && leader !== '') return leader
      await sleep(100)
    }
    throw new Error(`stream ${stream} has no leader`, { cause })
  } finally {
    await nc.close()
  }
}

function nodeNamed (c: NatsCluster, name: string): NatsCluster['nodes'][number] {
  const node = c.nodes.find(n => n.name === name)
  if (node === undefined) throw new Error(`no node ${name}`)
  return node
}

/** Starts every stopped node again and waits for the cluster to be whole. */
async function heal (): Promise<void> {
  for (const node of cluster.nodes) if (!node.running) node.start()
  await cluster.ready()
}

t.test('kill -9 of the stream leader under write load, then its restart: 503 with Retry-After during the election, then writes resume; nothing acknowledged is lost, and keyed writers retrying every 503 or lost answer store each entry once', async t => {
  const service = await startTestService(t, { VECWAL_NATS_TIMEOUT_MS: String(TIMEOUT_MS) })
  const stream = streamOf(service)
  const leader = nodeNamed(cluster, await streamLeader(stream))
  let resumedAfterKill = 0
  let storedAfterRestart = 0
  const done = (async () => {
    await sleep(500)
    await leader.signal('SIGKILL')
    const killedAt = Date.now()
    // Writes must resume on the new leader: wait for 201s after the kill, bounded.
    const before = service.log.lastSeq
    while (Date.now() - killedAt < 20_000 && service.log.lastSeq < before + 50) await sleep(100)
    resumedAfterKill = service.log.lastSeq - before
    // The killed node comes back under the load.
    await heal()
    const healed = service.log.lastSeq
    for (let i = 0; i < 100 && service.log.lastSeq < healed + 50; i++) await sleep(100)
    storedAfterRestart = service.log.lastSeq - healed
  })()
  const [outcomes, keyed] = await Promise.all([load([service.url], done, 'leader-'), keyedLoad(service.url, done, 'leader-keyed-')])
  t.ok(resumedAfterKill >= 50, `writes resumed after the kill (${resumedAfterKill} stored after it)`)
  t.ok(storedAfterRestart >= 50, `writes went on after the restart (${storedAfterRestart} stored after it)`)
  t.comment(`keyed writes: ${keyed.outcomes.length} stored, ${keyed.refused} answers 503, ${keyed.lost} answers lost, ${keyed.replayed} retries answered from the first write`)
  t.ok(keyed.refused > 0, 'keyed writers were refused during the election, and retried')
  t.ok(keyed.replayed > 0, 'retries of writes stored before their answer was lost were answered from the first write')
  await verify(t, service.url, stream, [...outcomes, ...keyed.outcomes])
})

t.test('all three nodes killed and restarted: every acknowledged entry is present', async t => {
  const service = await startTestService(t, { VECWAL_NATS_TIMEOUT_MS: String(TIMEOUT_MS) })
  const outcomes = await load([service.url], sleep(1000), 'all-')
  t.ok(outcomes.some(o => o.status === 201), 'writes were acknowledged before the kill')
  await Promise.all(cluster.nodes.map(async n => { await n.signal('SIGKILL') }))
  await heal()
  await streamLeader(streamOf(service))
  // The instance reconnects by itself; reads wait for it within the bound.
  for (let i = 0; i < 100 && (await fetch(`${service.url}/v1/recovery?after=0`).then(async r => { await r.arrayBuffer(); return r.status }).catch(() => 0)) !== 200; i++) await sleep(100)
  await verify(t, service.url, streamOf(service), outcomes)
})

t.test('a cluster without its quorum: writes get 503 with Retry-After within the timeout, and writes resume once it is back', async t => {
  const service = await startTestService(t, { VECWAL_NATS_TIMEOUT_MS: String(TIMEOUT_MS) })
  const before = await load([service.url], sleep(300), 'quorum-before-')
  await Promise.all(cluster.nodes.slice(1).map(async n => { await n.signal('SIGKILL') }))
  const started = Date.now()
  const refused = await fetch(`${service.url}/v1/entries`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(sampleEntry(1)) })
  const took = Date.now() - started
  t.equal(refused.status, 503, 'the write is refused')
  t.equal((await refused.json() as { code: string }).code, 'WAL_UNAVAILABLE')
  t.equal(refused.headers.get('retry-after'), '1')
  t.ok(took < TIMEOUT_MS + 3000, `answered in ${took} ms, within the ${TIMEOUT_MS} ms timeout and some`)
  await heal()
  const healed = service.log.lastSeq
  const after = await load([service.url], (async () => {
    for (let i = 0; i < 200 && service.log.lastSeq < healed + 20; i++) await sleep(100)
  })(), 'quorum-after-')
  t.ok(after.some(o => o.status === 201), 'writes are acknowledged again once the quorum is back')
  await verify(t, service.url, streamOf(service), [...before, { id: String(sampleEntry(1).id), status: 503, retryAfter: '1', at: started + took }, ...after])
})

t.test('a cluster without its quorum: a read that does not follow gets 503 with Retry-After within the timeout, a follower ends `unavailable`, /health/ready answers 503; once the quorum is back, 200 and whole reads again', async t => {
  const service = await startTestService(t, { VECWAL_NATS_TIMEOUT_MS: String(TIMEOUT_MS) })
  const written = await load([service.url], sleep(300), 'reads-')
  t.ok(written.some(o => o.status === 201), 'writes were acknowledged before the quorum went')
  t.equal((await fetch(`${service.url}/health/ready`)).status, 200, 'ready while the cluster is whole')
  // The two followers go: the leader left alone goes on calling itself leader (nats-server 2.9).
  const leader = await streamLeader(streamOf(service))
  await Promise.all(cluster.nodes.filter(n => n.name !== leader).map(async n => { await n.signal('SIGKILL') }))
  const started = Date.now()
  const refused = await fetch(`${service.url}/v1/recovery?after=0`)
  const took = Date.now() - started
  t.equal(refused.status, 503, 'a read that does not follow is refused')
  t.match(await refused.json(), { code: 'WAL_UNAVAILABLE' })
  t.equal(refused.headers.get('retry-after'), '1')
  t.ok(took < TIMEOUT_MS + 3000, `answered in ${took} ms, within the ${TIMEOUT_MS} ms timeout and some`)
  const followed = await fetch(`${service.url}/v1/recovery?after=0&follow=true`, { signal: AbortSignal.timeout(TIMEOUT_MS * 10) })
  t.equal(followed.status, 200, 'a follow read is answered')
  t.match((await ndjson(followed)).at(-1), { end: 'unavailable', code: 'WAL_UNAVAILABLE' }, 'and ends saying the log cannot be read for now')
  const ready = await readiness(service.url, 503)
  t.equal(ready.status, 503, '/health/ready answers 503 while the quorum is lost')
  t.same(ready.body, { status: 'unavailable' })
  t.match(await (await fetch(`${service.url}/v1/status`)).json(), { state: 'unavailable' }, '/v1/status says so')
  await heal()
  const back = await readiness(service.url, 200)
  t.equal(back.status, 200, '/health/ready answers 200 once the quorum is back')
  t.match(await (await fetch(`${service.url}/v1/status`)).json(), { state: 'ok' })
  await verify(t, service.url, streamOf(service), written)
})

/** /health/ready's answer once it is `status`, or the last within a bound. */
async function readiness (url: string, status: number): Promise<{ status: number, body: unknown }> {
  let answer = { status: 0, body: undefined as unknown }
  for (let i = 0; i < 150 && answer.status !== status; i++) {
    if (i > 0) await sleep(200)
    const response = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined)
    answer = { status: response?.status ?? 0, body: await response?.json().catch(() => undefined) }
  }
  return answer
}

t.test('SIGSTOP of the stream leader until the others elect a new one, then SIGCONT: nothing lost or invented, and the node catches up', async t => {
  const service = await startTestService(t, { VECWAL_NATS_TIMEOUT_MS: String(TIMEOUT_MS) })
  const stream = streamOf(service)
  const paused = nodeNamed(cluster, await streamLeader(stream))
  const others = cluster.nodes.filter(n => n !== paused)
  let elected: Array<string | undefined> = []
  let pausedFor = 0
  const outcomes = await load([service.url], (async () => {
    await sleep(300)
    await paused.signal('SIGSTOP')
    const pausedAt = Date.now()
    // Paused until both other nodes name the same new leader (an election took place), bounded.
    for (; Date.now() - pausedAt < ELECTION_BOUND_MS; await sleep(200)) {
      elected = await Promise.all(others.map(async n => (await streamDetail(n.monitorPort, stream))?.cluster?.leader))
      if (elected.every(leader => leader !== undefined && leader !== '' && leader !== paused.name && leader === elected[0])) break
    }
    pausedFor = Date.now() - pausedAt
    await paused.signal('SIGCONT')
    await sleep(1000)
  })(), 'pause-')
  t.ok(others.some(n => n.name === elected[0]) && elected.every(leader => leader === elected[0]),
    `the other nodes elected ${String(elected[0])} in place of the paused ${paused.name} (${JSON.stringify(elected)}, after ${pausedFor} ms)`)
  await cluster.ready()
  await verify(t, service.url, stream, outcomes)
  const last = service.log.lastSeq
  const newLeader = nodeNamed(cluster, await streamLeader(stream))
  let held: StreamState | undefined
  let leaderHeld: StreamState | undefined
  for (let i = 0; i < 100; i++) {
    [held, leaderHeld] = await Promise.all([paused, newLeader].map(async n => (await streamDetail(n.monitorPort, stream))?.state))
    if (held !== undefined && held.last_seq >= last && JSON.stringify(held) === JSON.stringify(leaderHeld)) break
    await sleep(100)
  }
  const known = KNOWN_DIVERGENCE === undefined || JSON.stringify(held) === JSON.stringify(leaderHeld) ? {} : { todo: `${KNOWN_DIVERGENCE}: ${JSON.stringify(held)} against ${JSON.stringify(leaderHeld)}` }
  t.equal(held?.last_seq, last, `the paused node holds the stream up to seq ${last} again`, known)
  t.same(held, leaderHeld, `the paused node's replica holds what the leader ${newLeader.name}'s does`, known)
})

t.test('kill -9 of one of two vecwal instances under load: the other keeps serving, nothing acknowledged is lost', async t => {
  const stream = freshStreamName()
  t.teardown(async () => { await deleteStream(cluster.servers, stream) })
  const env = { VECWAL_BACKEND: 'jetstream', VECWAL_NATS_SERVERS: cluster.servers.join(','), VECWAL_NATS_STREAM: stream, VECWAL_NATS_TIMEOUT_MS: String(TIMEOUT_MS) }
  const victim = await startChild({ dataDir: tempDir(t), env })
  t.teardown(async () => { await victim.kill9() })
  const survivor = await startChild({ dataDir: tempDir(t), env })
  t.teardown(async () => { await survivor.stop() })
  let killedAt = Number.POSITIVE_INFINITY
  const outcomes = await load([victim.url, survivor.url], (async () => {
    await sleep(500)
    await victim.kill9()
    killedAt = Date.now()
    await sleep(1000)
  })(), 'instance-')
  t.ok(outcomes.some(o => o.status === 201 && o.at > killedAt), 'the survivor acknowledged writes after the kill')
  await verify(t, survivor.url, stream, outcomes, true)
})

function streamOf (service: TestService): string {
  if (service.stream === undefined) throw new Error('the service is not on JetStream')
  return service.stream
}

/** How long a paused leader waits at most for the other nodes to elect another (auditors saw 6.6 to 7.7 s). */
const ELECTION_BOUND_MS = 20_000

/** A stream replica's contents, as a node's monitoring endpoint counts them. */
interface StreamState { messages: number, first_seq: number, last_seq: number }

/**
 * The stream as one node sees it, from its monitoring endpoint: the leader it knows of, and what
 * its own replica holds; undefined if the node does not answer (paused, killed) or holds no replica.
 */
async function streamDetail (monitorPort: number, stream: string): Promise<{ cluster?: { leader?: string }, state: StreamState } | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${monitorPort}/jsz?streams=true`, { signal: AbortSignal.timeout(1000) })
    const body = await response.json() as { account_details?: Array<{ stream_detail?: Array<{ name: string, cluster?: { leader?: string }, state: StreamState & Record<string, unknown> }> }> }
    const found = body.account_details?.flatMap(a => a.stream_detail ?? []).find(s => s.name === stream)
    if (found === undefined) return undefined
    const { messages, first_seq: firstSeq, last_seq: lastSeq } = found.state
    return { cluster: found.cluster, state: { messages, first_seq: firstSeq, last_seq: lastSeq } }
  } catch {
    return undefined
  }
}

t.test('a follower while every node is down: its stream ends with an `unavailable` last line, and a follow begun after it resumes once the cluster is back', async t => {
  const service = await startTestService(t, { VECWAL_NATS_TIMEOUT_MS: String(TIMEOUT_MS) })
  const written = await load([service.url], sleep(300), 'follow-down-')
  const acked = written.filter(o => o.status === 201).length
  t.ok(acked > 0, `${acked} writes acknowledged before the nodes go`)
  const response = await fetch(`${service.url}/v1/recovery?after=0&follow=true`)
  t.equal(response.status, 200)
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let text = ''
  // Until every acknowledged record has come, then the nodes go, then until the stream ends.
  const deadline = Date.now() + 60_000
  let killed = false
  for (;;) {
    const { done, value } = await Promise.race([reader.read(), sleep(Math.max(deadline - Date.now(), 0)).then(() => ({ done: true, value: undefined }))])
    if (value !== undefined) text += decoder.decode(value, { stream: true })
    const lines = text.split('\n').filter(line => line !== '').map(line => JSON.parse(line) as Record<string, unknown>)
    if (!killed && lines.filter(l => 'seq' in l).length >= acked) {
      killed = true
      await Promise.all(cluster.nodes.map(async n => { await n.signal('SIGKILL') }))
    }
    if (done === true) break
  }
  await reader.cancel().catch(() => {})
  const lines = text.split('\n').filter(line => line !== '').map(line => JSON.parse(line) as Record<string, unknown>)
  t.ok(killed, 'every acknowledged record came before the nodes were killed')
  t.match(lines.at(-1), { end: 'unavailable', code: 'WAL_UNAVAILABLE' }, 'the stream ends saying the log cannot be read for now')
  const seqs = lines.filter(l => 'seq' in l).map(l => Number(l.seq))
  t.same(seqs, seqs.map((_, i) => i + 1), 'the records before it are one gap-free run')
  await heal()
  // The cluster may refuse even a connection for a moment after all its nodes restarted.
  for (let attempt = 1; await streamLeader(streamOf(service)).then(() => false, (err: unknown) => { if (attempt >= 30) throw err; return true }); attempt++) await sleep(1000)
  const last = seqs.at(-1) ?? 0
  const after = await load([service.url], (async () => {
    for (let i = 0; i < 200 && service.log.lastSeq < last + 5; i++) await sleep(100)
  })(), 'follow-back-')
  t.ok(after.some(o => o.status === 201), 'writes resume')
  const resumed = await fetch(`${service.url}/v1/recovery?after=${last}&limit=1`)
  t.match((await ndjson(resumed)).at(0), { seq: last + 1 }, 'a read after the last seq received goes on from there')
})
