// The vector index example (examples/vector-index) against a real service, both killed -9 at random
// moments, shared by test/examples/vector-index.test.ts (50,000 entries in `npm test`) and
// test/soak/kill9-soak.ts (more, in `npm run soak`).
//
// A writer sends random vectors through the typed client (VecwalClient, msgpack bodies) in batches
// and single entries (inserts of new ids, updates and deletes of earlier ones), a few requests at
// once, while, at seeded points, the index program, the service or both are killed -9 and started
// again on the same directories (the service on the same port, so the index program finds it
// again). The client keys every write with an Idempotency-Key and sends a request a kill cut off
// again with the same key until the restarted service answers, so the log must end up holding
// exactly the requests sent, each once: the multiset of its records' contents is the multiset of
// the requests' (vectors as the float32s sent). After the writes, and a few more kills of the index
// program while it catches up, it must hold what an index built from the whole log in one go,
// without any crash, holds:
//   - the same ids with the same vectors, to the bit (the digest over ids and vectors, /digest);
//   - the same exact top-10 for every query (a brute-force search over the vectors held);
//   - the same HNSW top-10 for every query, ids in the same order: the index program's graph is
//     the graph a run without crashes builds (see examples/vector-index/vector-index.ts).
// The log is read back from seq 1: the service keeps every segment (VECWAL_RETAIN_SEGMENTS), so
// the checkpoints the index program's consumer posts delete nothing the reference needs.
import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { unpackMultiple } from 'msgpackr'
import { describeError, type LogEntry, type LogRecord } from '../../examples/vector-index/log-source.js'
import { ownChild } from '../../scripts/children.js'
import { VecwalClient, type Entry } from '../../src/client/index.js'
import { contentDigest, VectorIndex, type IndexSettings, type Neighbour } from '../../examples/vector-index/vector-index.js'
import { ChildService, OutputTail, sleep, type Exit, type RunOptions } from './child-service.js'
import { PATIENT } from './client-follow.js'
import { below, seeded } from './fault-ledger.js'
import { freePort, ROOT } from './project.js'

export const INDEX_PROGRAM = path.join(ROOT, 'dist', 'examples', 'vector-index', 'main.js')

/** Write requests in flight at once: they share fsyncs (group commit), so the writes take less time. */
const WRITERS = 4

/** A request's content as a record of the log holds it: a single entry, or a batch of them, vectors as float32s. */
function content (batch: boolean, entries: ReadonlyArray<Entry | LogEntry>): string {
  const plain = entries.map(entry => 'vector' in entry && entry.vector !== undefined ? [entry.op, entry.id, Array.from(entry.vector)] : [entry.op, entry.id])
  return JSON.stringify(batch ? ['batch', plain] : plain[0])
}

function recordContent (record: LogRecord): string {
  return record.op === 'batch' ? content(true, record.entries) : content(false, [record])
}

export interface VectorIndexCrashOptions {
  /** A fresh directory: the service's data and the index's save go below it. */
  root: string
  /** Entries the writer sends in all. */
  entries: number
  dimensions: number
  /** Kills while the writer writes (each of the index program, the service or both). */
  kills: number
  /** Kills of the index program after the writes, while it catches up. */
  catchUpKills: number
  /** Queries compared at the end. */
  queries: number
  seed: number
  /** Everything must be done by then (epoch ms). */
  deadline: number
  onProgress?: (message: string) => void
}

export interface VectorIndexCrashResult {
  seed: number
  indexKills: number
  serviceKills: number
  /** Starts of the index program that loaded a save rather than starting empty. */
  resumedFromSave: number
  /** How long each start of the index program took to load its save (it adds the graph's nodes again). */
  indexOpenMs: number[]
  requests: number
  /** Answers that were replays (Idempotent-Replayed): a kill cut the first answer off after the write was durable. */
  replayed: number
  /** Requests that took more than one try. */
  retried: number
  /** Entry records in the final log, and the seq of the last. */
  records: number
  lastEntrySeq: number
  /** Requests sent whose content no record of the log holds, and records whose content no request sent (counted with multiplicity). */
  notInLog: number
  notSent: number
  /** The service's checkpoint at the end, and the index's saved seq (the checkpoint never passes it). */
  checkpoint: number
  savedSeq: number
  /** recall: mean recall@10 of the reference's HNSW answers against its exact ones (the graph's quality). */
  reference: { size: number, digest: string, plainDigest: string, recall: number }
  recovered: { size: number, digest: string, appliedSeq: number, idsEqual: boolean }
  /** Queries whose exact top-10 (ids, in order) was the reference's. */
  exactAgreeing: number
  /** Queries whose HNSW top-10 (ids, in order) was the reference's. */
  hnswAgreeing: number
  problems: string[]
}

/** What the index program prints once it listens: where, what its save held, and how long loading it took. */
export interface Listening { url: string, appliedSeq: number, size: number, openMs: number }

/** The index program as a child process; ready once it prints where it listens. */
export class IndexProcess {
  readonly exited: Promise<Exit>
  readonly listening: Promise<Listening>
  private readonly out = new OutputTail()
  private exit: Exit | undefined

  constructor (args: string[]) {
    this.process = ownChild(spawn(process.execPath, [INDEX_PROGRAM, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }))
    this.process.stderr?.on('data', (chunk: Buffer) => { this.out.append(chunk) })
    this.listening = new Promise((resolve, reject) => {
      let pending = ''
      this.process.stdout?.on('data', (chunk: Buffer) => {
        this.out.append(chunk)
        pending += chunk.toString('utf8')
        const lines = pending.split('\n')
        pending = lines.pop() ?? ''
        for (const line of lines) {
          const event = JSON.parse(line) as Listening & { event: string }
          if (event.event === 'listening') resolve(event)
        }
      })
      this.process.once('close', () => { reject(new Error(`the index program exited before it listened\n${this.output}`)) })
    })
    this.listening.catch(() => {})
    this.exited = new Promise(resolve => {
      this.process.once('close', (code, signal) => {
        this.exit = { code, signal }
        resolve(this.exit)
      })
    })
  }

  readonly process: ChildProcess

  get running (): boolean {
    return this.exit === undefined
  }

  get output (): string {
    return this.out.toString()
  }

  async kill9 (): Promise<Exit> {
    if (this.running) this.process.kill('SIGKILL')
    return await this.exited
  }

  async stop (): Promise<Exit> {
    if (this.running) this.process.kill('SIGTERM')
    const timer = setTimeout(() => { this.process.kill('SIGKILL') }, 30_000)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }

  async get<T> (route: string): Promise<T> {
    const res = await fetch(`${(await this.listening).url}${route}`, { signal: AbortSignal.timeout(30_000) })
    if (res.status !== 200) throw new Error(`GET ${route}: ${res.status} ${await res.text()}`)
    return await res.json() as T
  }
}

/** Starts the service on `port` (the index program knows it there), trying again while the port is briefly taken. */
async function startServiceOn (options: RunOptions, port: number, deadline: number): Promise<ChildService> {
  for (;;) {
    const child = ChildService.spawn(options, port)
    try {
      await child.ready(Math.max(1000, deadline - Date.now()))
      return child
    } catch (err) {
      await child.kill9()
      if (!child.output.includes('EADDRINUSE') || Date.now() > deadline) throw err
      await sleep(100)
    }
  }
}

/** Every record of the log from seq 1, in pages (a page is one bounded request). */
async function readWholeLog (url: string): Promise<LogRecord[]> {
  const records: LogRecord[] = []
  for (;;) {
    const after = records.length === 0 ? 0 : records[records.length - 1].seq
    const res = await fetch(`${url}/v1/recovery?after=${after}&limit=5000`, { headers: { accept: 'application/msgpack' }, signal: AbortSignal.timeout(60_000) })
    if (res.status !== 200) throw new Error(`reading the log after ${after}: ${res.status} ${await res.text()}`)
    const body = Buffer.from(await res.arrayBuffer())
    if (body.length === 0) return records
    records.push(...unpackMultiple(body) as LogRecord[])
  }
}

/** The ids and vectors the log leaves, replayed as plainly as can be (no index): what the digest must be. */
export function plainReplay (records: LogRecord[]): string {
  const held = new Map<string, Float32Array>()
  for (const record of records) {
    for (const entry of record.op === 'batch' ? record.entries : [record]) {
      if (entry.op === 'delete') held.delete(entry.id)
      else held.set(entry.id, Float32Array.from(entry.vector as Float32Array))
    }
  }
  return contentDigest([...held.keys()].sort().map(id => [id, held.get(id) as Float32Array]))
}

function recall (found: Neighbour[], exact: Neighbour[]): number {
  const truth = new Set(exact.map(n => n.id))
  return found.filter(n => truth.has(n.id)).length / Math.max(1, exact.length)
}

export async function runVectorIndexCrash (options: VectorIndexCrashOptions): Promise<VectorIndexCrashResult> {
  const random = seeded(options.seed)
  const progress = options.onProgress ?? (() => {})
  // Few candidates searched (recall@10 about 0.87 at 50,000 vectors): the HNSW answers are then
  // approximate, and their equality with the reference's says the graph is the same, which it would
  // not if they were the exact answers (as they are with the program's default of 512).
  const settings: IndexSettings = { dimensions: options.dimensions, connectivity: 16, expansionAdd: 32, expansionSearch: 16 }
  const serviceOptions: RunOptions = {
    dataDir: path.join(options.root, 'log'),
    env: { VECWAL_DIMENSIONS: String(options.dimensions), VECWAL_RETAIN_SEGMENTS: '1000000' }
  }
  const indexArgs = [
    '--dir', path.join(options.root, 'index'),
    '--dimensions', String(settings.dimensions),
    '--connectivity', String(settings.connectivity),
    '--expansion-add', String(settings.expansionAdd),
    '--expansion-search', String(settings.expansionSearch),
    '--port', '0',
    '--save-every-ms', '300',
    '--save-every-records', '5000',
    '--poll-ms', '20'
  ]
  const result: VectorIndexCrashResult = {
    seed: options.seed,
    indexKills: 0,
    serviceKills: 0,
    resumedFromSave: 0,
    indexOpenMs: [],
    requests: 0,
    replayed: 0,
    retried: 0,
    records: 0,
    lastEntrySeq: 0,
    notInLog: 0,
    notSent: 0,
    checkpoint: 0,
    savedSeq: 0,
    reference: { size: 0, digest: '', plainDigest: '', recall: 0 },
    recovered: { size: 0, digest: '', appliedSeq: 0, idsEqual: false },
    exactAgreeing: 0,
    hnswAgreeing: 0,
    problems: []
  }

  const port = await freePort()
  let service = await startServiceOn(serviceOptions, port, options.deadline)
  const logUrl = service.url
  // Patient enough that a request a kill cut off is sent again until the service is back.
  const client = new VecwalClient({ baseUrl: logUrl, encoding: 'msgpack', retry: PATIENT })
  /** The content of every request sent, with how many times it was sent (a multiset). */
  const sentContents = new Map<string, number>()
  let index: IndexProcess | undefined
  const current = (): IndexProcess => {
    if (index === undefined) throw new Error('the index program was never started')
    return index
  }
  const startIndex = async (): Promise<void> => {
    index = new IndexProcess(['--log', logUrl, ...indexArgs])
    const { appliedSeq, openMs } = await index.listening
    if (appliedSeq > 0) result.resumedFromSave++
    result.indexOpenMs.push(openMs)
  }
  /** An exit the test did not cause: the index program failed (a record applied twice, say). */
  const checkIndexAlive = (): void => {
    if (index !== undefined && !index.running) throw new Error(`the index program exited by itself\n${index.output}`)
  }
  let restarting: Promise<void> | undefined
  const crash = (target: 'index' | 'service' | 'both'): void => {
    const previous = restarting
    const restart = (async () => {
      await previous
      checkIndexAlive()
      if (target !== 'service') {
        await index?.kill9()
        result.indexKills++
      }
      if (target !== 'index') {
        await service.kill9()
        result.serviceKills++
        service = await startServiceOn(serviceOptions, port, options.deadline)
      }
      if (target !== 'service') await startIndex()
      progress(`killed ${target} (index ${result.indexKills}, service ${result.serviceKills})`)
    })()
    // Awaited by the writer before its next request; until then a failure must not go unhandled.
    restart.catch(() => {})
    restarting = restart
  }
  /** Waits until no restart is under way (one may be chained onto another while it is awaited). */
  const restarted = async (): Promise<void> => {
    while (restarting !== undefined) {
      const awaited = restarting
      await awaited
      if (restarting === awaited) restarting = undefined
    }
  }

  try {
    await startIndex()
    const killAt = Array.from({ length: options.kills }, () => below(random, options.entries)).sort((a, b) => a - b)
    const ids: string[] = []
    let sent = 0
    const inFlight = new Set<Promise<void>>()
    while (sent < options.entries) {
      if (Date.now() > options.deadline) throw new Error(`time ran out after ${sent} entries`)
      if (killAt.length > 0 && sent >= killAt[0]) {
        killAt.shift()
        const roll = random()
        const target = roll < 0.5 ? 'index' : roll < 0.8 ? 'service' : 'both'
        // After a random delay, while the writer goes on: the kill lands in the middle of a request,
        // of the index program's applying or saving, whatever is going on.
        setTimeout(() => { crash(target) }, below(random, 30))
      }
      await restarted()
      const count = random() < 0.1 ? 1 : 1 + below(random, 200)
      const randomVector = (): Float32Array => Float32Array.from({ length: options.dimensions }, () => random() * 2 - 1)
      const entries = Array.from({ length: Math.min(count, options.entries - sent) }, (): Entry => {
        const roll = random()
        if (ids.length === 0 || roll < 0.7) {
          const id = `v${ids.length}`
          ids.push(id)
          return { op: 'insert', id, vector: randomVector() }
        }
        const id = ids[below(random, ids.length)]
        return roll < 0.9 ? { op: 'update', id, vector: randomVector() } : { op: 'delete', id }
      })
      sent += entries.length
      result.requests++
      const batch = !(entries.length === 1 && count === 1)
      const key = content(batch, entries)
      sentContents.set(key, (sentContents.get(key) ?? 0) + 1)
      const request = (async () => {
        try {
          const { replayed, attempts } = batch ? await client.appendBatch(entries) : await client.append(entries[0])
          if (replayed) result.replayed++
          if (attempts > 1) result.retried++
        } catch (err) {
          result.problems.push(`${batch ? 'batch' : 'append'} of ${entries.length}: ${describeError(err)}`)
        }
      })()
      inFlight.add(request)
      void request.then(() => inFlight.delete(request))
      if (inFlight.size >= WRITERS) await Promise.race(inFlight)
      if (result.problems.length > 0) return result
    }
    await Promise.all(inFlight)
    // A kill scheduled during the last request.
    await sleep(30)
    await restarted()
    progress(`wrote ${sent} entries in ${result.requests} requests`)

    for (let i = 0; i < options.catchUpKills; i++) {
      await sleep(below(random, 400))
      crash('index')
      await restarted()
    }

    const records = (await readWholeLog(service.url))
    result.records = records.length
    const notSeen = new Map(sentContents)
    for (const record of records) {
      const key = recordContent(record)
      const left = notSeen.get(key) ?? 0
      if (left === 0) result.notSent++
      else notSeen.set(key, left - 1)
    }
    for (const left of notSeen.values()) result.notInLog += left
    // Reads leave the log's own records out (the index's consumer record may be seq 1): ask the log where it starts.
    const { segments } = await (await fetch(`${service.url}/v1/status`, { signal: AbortSignal.timeout(10_000) })).json() as { segments: Array<{ firstSeq: number }> }
    if (segments[0].firstSeq !== 1) throw new Error(`the log starts at seq ${segments[0].firstSeq}, not 1: retention deleted part of it`)
    result.lastEntrySeq = records.length === 0 ? 0 : records[records.length - 1].seq

    const reference = VectorIndex.inMemory(settings)
    for (const record of records) reference.apply(record)
    result.reference.size = reference.size
    result.reference.digest = reference.digest()
    result.reference.plainDigest = plainReplay(records)

    let state = await current().get<{ appliedSeq: number, size: number }>('/state')
    while (state.appliedSeq < result.lastEntrySeq) {
      checkIndexAlive()
      if (Date.now() > options.deadline) throw new Error(`the index applied up to ${state.appliedSeq} of ${result.lastEntrySeq} in time`)
      await sleep(100)
      state = await current().get('/state')
    }
    progress(`the index caught up to seq ${state.appliedSeq}`)
    result.recovered.appliedSeq = state.appliedSeq
    result.recovered.size = state.size
    result.recovered.digest = (await current().get<{ digest: string }>('/digest')).digest
    result.recovered.idsEqual = JSON.stringify(await current().get<string[]>('/ids')) === JSON.stringify(reference.ids())

    const sameIds = (a: Neighbour[], b: Neighbour[]): boolean => JSON.stringify(a.map(n => n.id)) === JSON.stringify(b.map(n => n.id))
    let referenceRecall = 0
    for (let q = 0; q < options.queries; q++) {
      const query = Float32Array.from({ length: options.dimensions }, () => random() * 2 - 1)
      const vector = Array.from(query).join(',')
      const exact = reference.search(query, 10, true)
      const approximate = reference.search(query, 10, false)
      const recovered = async (exactly: boolean): Promise<Neighbour[]> => (await current().get<{ neighbours: Neighbour[] }>(`/knn?vector=${vector}&k=10&exact=${exactly}`)).neighbours
      if (sameIds(await recovered(true), exact)) result.exactAgreeing++
      if (sameIds(await recovered(false), approximate)) result.hnswAgreeing++
      referenceRecall += recall(approximate, exact)
    }
    result.reference.recall = referenceRecall / options.queries

    checkIndexAlive()
    await current().stop()
    const consumer = await (await fetch(`${service.url}/v1/consumers/vector-index`, { signal: AbortSignal.timeout(10_000) })).json() as { checkpoint: number }
    result.checkpoint = consumer.checkpoint
    const saved = VectorIndex.open(path.join(options.root, 'index'), settings)
    result.savedSeq = saved.savedSeq
    saved.close()
    return result
  } finally {
    if (restarting !== undefined) await restarting.catch(() => {})
    await index?.kill9()
    await service.kill9()
  }
}

/** What a run must show, each condition that failed as a sentence (none: it passed). */
export function vectorIndexFailures (result: VectorIndexCrashResult, options: VectorIndexCrashOptions): string[] {
  const failures = [...result.problems]
  const check = (ok: boolean, what: string): void => { if (!ok) failures.push(what) }
  check(result.records > 0 && result.reference.size > 0, 'the log holds entries and the reference holds vectors')
  check(result.records === result.requests && result.notInLog === 0 && result.notSent === 0,
    `the log holds every request sent, each once, and nothing else (${result.records} records for ${result.requests} requests; ${result.notInLog} sent and not in the log, ${result.notSent} in the log and not sent)`)
  check(result.reference.digest === result.reference.plainDigest, 'the reference, applied with the example\'s code, holds what a plain replay of the log leaves')
  check(result.recovered.appliedSeq === result.lastEntrySeq, `the recovered index applied up to the last entry record (${result.recovered.appliedSeq} of ${result.lastEntrySeq})`)
  check(result.recovered.size === result.reference.size, `the recovered index holds as many ids as the reference (${result.recovered.size}, ${result.reference.size})`)
  check(result.recovered.idsEqual, 'the recovered index holds the same ids as the reference')
  check(result.recovered.digest === result.reference.digest, 'the recovered index holds the same vectors as the reference, to the bit')
  check(result.exactAgreeing === options.queries, `exact top-10 the same as the reference's for every query (${result.exactAgreeing} of ${options.queries})`)
  check(result.reference.recall < 1, `the HNSW answers are approximate (recall@10 ${result.reference.recall}), so that their equality says more than the exact answers' does`)
  check(result.hnswAgreeing === options.queries, `HNSW top-10 the same as the reference's for every query (${result.hnswAgreeing} of ${options.queries})`)
  check(result.checkpoint > 0 && result.checkpoint <= result.savedSeq, `the service's checkpoint (${result.checkpoint}) is set and never past the index's save (${result.savedSeq})`)
  check(result.indexKills > options.catchUpKills && result.resumedFromSave > 0, `the index program was killed while writes went on (${result.indexKills - options.catchUpKills}) and resumed from a save (${result.resumedFromSave})`)
  check(result.serviceKills > 0, 'the service was killed')
  return failures
}
