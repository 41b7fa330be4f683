// HTTP load with autocannon. Loads that are compared are measured in interleaved rounds (A B C,
// A B C, ...), so that a burst of work from elsewhere on a shared machine falls on all of them
// alike instead of on whichever happened to run then.
import autocannon from 'autocannon'

export interface Load {
  path: string
  connections: number
  contentType: string
  body: Buffer
  /** Entries each request carries, so that entries/s can be told apart from requests/s. */
  entriesPerRequest: number
}

export interface LoadTarget {
  url: string
  load: Load
}

export interface LoadResult {
  /** 2xx responses per second. */
  requestsPerSecond: number
  entriesPerSecond: number
  /** Entries per second of each round alone, in order: how much the figure moved during the run. */
  roundEntriesPerSecond: number[]
  /** Latency percentiles of the 2xx responses of all rounds together. */
  p50Ms: number
  p99Ms: number
  /** Errors, timeouts and non-2xx answers: any at all makes the figures suspect. */
  failures: number
}

export interface LoadTiming {
  /** Unmeasured load on each target first, so V8 has optimized its hot paths. */
  warmupSeconds: number
  /** Measured seconds per target, over all rounds. */
  seconds: number
  rounds: number
}

interface Tally {
  ok: number
  seconds: number
  failures: number
  latenciesMs: number[]
  roundRequestsPerSecond: number[]
}

async function run (target: LoadTarget, seconds: number, tally?: Tally): Promise<void> {
  const instance = autocannon({
    url: target.url + target.load.path,
    method: 'POST',
    connections: target.load.connections,
    headers: { 'content-type': target.load.contentType },
    body: target.load.body,
    duration: seconds,
    timeout: 10,
    // autocannon stops at the first sample after the duration: sample often, or short runs last a second.
    sampleInt: 100
  })
  if (tally !== undefined) {
    instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      if (statusCode >= 200 && statusCode < 300) tally.latenciesMs.push(responseTimeMs)
    })
  }
  const result = await instance
  if (tally !== undefined) {
    tally.ok += result['2xx']
    tally.seconds += result.duration
    tally.roundRequestsPerSecond.push(result['2xx'] / result.duration)
    tally.failures += result.errors + result.timeouts + result.non2xx
  }
}

function percentile (sorted: Float64Array, fraction: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]
}

export async function measureLoads (targets: readonly LoadTarget[], timing: LoadTiming): Promise<LoadResult[]> {
  for (const target of targets) await run(target, timing.warmupSeconds)
  const tallies = targets.map((): Tally => ({ ok: 0, seconds: 0, failures: 0, latenciesMs: [], roundRequestsPerSecond: [] }))
  for (let round = 0; round < timing.rounds; round++) {
    for (let i = 0; i < targets.length; i++) await run(targets[i], timing.seconds / timing.rounds, tallies[i])
  }
  return tallies.map((tally, i) => {
    const sorted = Float64Array.from(tally.latenciesMs).sort()
    const requestsPerSecond = tally.ok / tally.seconds
    const { entriesPerRequest } = targets[i].load
    return {
      requestsPerSecond,
      entriesPerSecond: requestsPerSecond * entriesPerRequest,
      roundEntriesPerSecond: tally.roundRequestsPerSecond.map(perSecond => perSecond * entriesPerRequest),
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      failures: tally.failures
    }
  })
}
