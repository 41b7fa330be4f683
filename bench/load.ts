// HTTP load with wrk (Debian's `wrk`), a C client on one thread: it takes little of the CPU the
// service and the ceiling share with it, where a Node load generator on the same 2 cores took
// enough to hide about 30% of the log's own cost. Loads that are compared are measured in
// interleaved rounds (A B C, A B C, ...), so that a burst of work from elsewhere on a shared
// machine falls on all of them alike instead of on whichever happened to run then.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { makeTempDir, removeTempDir } from './process.js'

const WRK_SCRIPT = fileURLToPath(new URL('../../bench/wrk-post.lua', import.meta.url))

export interface Load {
  path: string
  connections: number
  contentType: string
  body: Buffer
  /** Entries each request carries, so that entries/s can be told apart from requests/s. */
  entriesPerRequest: number
  /** A header every request carries with a value of its own (an Idempotency-Key, or one the service ignores). */
  uniqueHeader?: string
}

export interface LoadTarget {
  url: string
  load: Load
  /** Other instances of one service, loaded at the same time: the connections are split among them all. */
  moreUrls?: string[]
}

/** A load some other tool drives (a peer such as Redis), measured in the same interleaved rounds. */
export interface PeerTarget {
  run: (seconds: number) => Promise<Round>
  entriesPerRequest: number
}

export interface LoadResult {
  /** 2xx responses per second. */
  requestsPerSecond: number
  entriesPerSecond: number
  /** Entries per second of each round alone, in order: how much the figure moved during the run. */
  roundEntriesPerSecond: number[]
  /** Latency percentiles: the median over the rounds of each round's percentile (wrk keeps no samples to pool). */
  p50Ms: number
  p99Ms: number
  /** Socket errors, timeouts and non-2xx answers: any at all makes the figures suspect. */
  failures: number
}

export interface LoadTiming {
  /** Unmeasured load on each target first, so V8 has optimized its hot paths. */
  warmupSeconds: number
  /** Measured seconds per target, over all rounds. */
  seconds: number
  rounds: number
}

export interface Round {
  ok: number
  seconds: number
  failures: number
  p50Ms: number
  p99Ms: number
}

const SUMMARY = /^vecwal-bench requests=(\d+) micros=(\d+) non2xx=(\d+) socket_errors=(\d+) timeouts=(\d+) p50=(\d+) p99=(\d+)$/m

/** wrk takes whole seconds. */
function wholeSeconds (seconds: number): number {
  return Math.max(1, Math.round(seconds))
}

/**
 * One round against the target: a wrk per instance at once when it has several, their counts
 * summed and their percentiles the higher of the instances'.
 */
async function run (target: LoadTarget, seconds: number, bodyFile: string): Promise<Round> {
  const urls = [target.url, ...target.moreUrls ?? []]
  if (urls.length === 1) return await runOne(target.url, target.load, seconds, bodyFile)
  const connections = Math.max(1, Math.round(target.load.connections / urls.length))
  const rounds = await Promise.all(urls.map(async url => await runOne(url, { ...target.load, connections }, seconds, bodyFile)))
  return {
    ok: rounds.reduce((sum, r) => sum + r.ok, 0),
    seconds: Math.max(...rounds.map(r => r.seconds)),
    failures: rounds.reduce((sum, r) => sum + r.failures, 0),
    p50Ms: Math.max(...rounds.map(r => r.p50Ms)),
    p99Ms: Math.max(...rounds.map(r => r.p99Ms))
  }
}

async function runOne (url: string, load: Load, seconds: number, bodyFile: string): Promise<Round> {
  const { stdout } = await promisify(execFile)('wrk', [
    '--threads', '1', '--connections', String(load.connections), '--duration', `${wholeSeconds(seconds)}s`,
    '--timeout', '10s', '--script', WRK_SCRIPT, url + load.path
  ], { env: { ...process.env, VECWAL_BENCH_CONTENT_TYPE: load.contentType, VECWAL_BENCH_BODY_FILE: bodyFile, VECWAL_BENCH_UNIQUE_HEADER: load.uniqueHeader ?? '' }, timeout: (wholeSeconds(seconds) + 30) * 1000 })
  const match = SUMMARY.exec(stdout)
  if (match === null) throw new Error(`wrk printed no summary:\n${stdout}`)
  const [requests, micros, non2xx, socketErrors, timeouts, p50, p99] = match.slice(1).map(Number)
  return { ok: requests - non2xx, seconds: micros / 1e6, failures: non2xx + socketErrors + timeouts, p50Ms: p50 / 1000, p99Ms: p99 / 1000 }
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? Number.NaN : sorted[Math.floor((sorted.length - 1) / 2)]
}

export async function measureLoads (targets: ReadonlyArray<LoadTarget | PeerTarget>, timing: LoadTiming): Promise<LoadResult[]> {
  const dir = makeTempDir('load')
  try {
    const runs = targets.map((target, i): (seconds: number) => Promise<Round> => {
      if ('run' in target) return target.run
      const file = path.join(dir, `body-${i}`)
      fs.writeFileSync(file, target.load.body)
      return async seconds => await run(target, seconds, file)
    })
    if (timing.warmupSeconds > 0) for (const load of runs) await load(timing.warmupSeconds)
    const rounds: Round[][] = targets.map(() => [])
    for (let round = 0; round < timing.rounds; round++) {
      for (let i = 0; i < targets.length; i++) rounds[i].push(await runs[i](timing.seconds / timing.rounds))
    }
    return rounds.map((measured, i) => {
      const target = targets[i]
      const entriesPerRequest = 'run' in target ? target.entriesPerRequest : target.load.entriesPerRequest
      const ok = measured.reduce((sum, r) => sum + r.ok, 0)
      const requestsPerSecond = ok / measured.reduce((sum, r) => sum + r.seconds, 0)
      return {
        requestsPerSecond,
        entriesPerSecond: requestsPerSecond * entriesPerRequest,
        roundEntriesPerSecond: measured.map(r => r.ok / r.seconds * entriesPerRequest),
        p50Ms: median(measured.map(r => r.p50Ms)),
        p99Ms: median(measured.map(r => r.p99Ms)),
        failures: measured.reduce((sum, r) => sum + r.failures, 0)
      }
    })
  } finally {
    removeTempDir(dir)
  }
}
