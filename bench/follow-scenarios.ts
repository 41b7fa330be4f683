// P5: following the log under P1's load. For 0, 1, 10 and 100 NDJSON followers (GET
// /v1/recovery?follow=true) held by worker threads (followers.ts), each reading as fast as the
// service sends, the service takes P1's single inserts from wrk while a probe posts an entry of its
// own every PROBE_INTERVAL_MS: the delay from each probe's 2xx to its line reaching each follower
// gives p50 and p99, every probe waited for (a bounded time); P1's throughput with 100
// followers against none gives what following costs the writes; the service's peak RSS with 100
// followers is sampled.
import { sharedClockMs, startFollowers } from './followers.js'
import { measureLoads, type Load, type LoadResult } from './load.js'
import type { BenchOptions } from './options.js'
import { requestBodies } from './payloads.js'
import { makeTempDir, removeTempDir, sampleResidentBytes, type ServerChild } from './process.js'
import { startService, withServer } from './servers.js'
import { count, ms, size, times, type Row } from './table.js'

const FOLLOWER_COUNTS = [0, 1, 10, 100] as const
const PROBE_INTERVAL_MS = 20

interface FollowRun {
  load: LoadResult
  /** Milliseconds from each probe's 2xx to its line at each follower (a line may beat the 2xx: negative). */
  delaysMs: number[]
  /** Probe deliveries expected (probes × followers), and those that never came. */
  deliveries: number
  unseen: number
  /** The busiest follower thread's share of busy time during the load (NaN without followers). */
  followerBusy: number
  peakRssBytes: number
}

function percentile (sorted: number[], p: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

/**
 * Posts a probe entry every PROBE_INTERVAL_MS until stopped; `acked` gives each probe counted (its
 * 2xx at or after `measuredFrom`) by number, with its 2xx on the shared clock.
 */
function startProbes (url: string, entry: Record<string, unknown>, measuredFrom: number): { stop: () => void, acked: Promise<Map<number, number>> } {
  let probing = true
  const acked = (async () => {
    const ackedAt = new Map<number, number>()
    for (let k = 0; probing; k++) {
      const body = JSON.stringify({ ...entry, id: `probe-${k}` })
      const response = await fetch(`${url}/v1/entries`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      await response.arrayBuffer()
      const now = sharedClockMs()
      if (response.status === 201 && now >= measuredFrom) ackedAt.set(k, now)
      await new Promise(resolve => setTimeout(resolve, PROBE_INTERVAL_MS))
    }
    return ackedAt
  })()
  // Awaited once the load is done; when the load fails, its error is the one worth reporting.
  acked.catch(() => {})
  return { stop: () => { probing = false }, acked }
}

async function runWithFollowers (server: ServerChild, followers: number, load: Load, options: BenchOptions): Promise<FollowRun> {
  const entry = JSON.parse(load.body.toString()) as Record<string, unknown>
  const threads = followers === 0 ? undefined : await startFollowers(server.url, followers)
  try {
    // Probes count once the warm-up is over: the delays are those of the measured load.
    const probes = startProbes(server.url, entry, sharedClockMs() + options.warmupSeconds * 1000)
    const rss = sampleResidentBytes(server.pid)
    const [result] = await measureLoads([{ url: server.url, load }], options).finally(probes.stop)
    const peakRssBytes = rss.stop()
    const acked = [...(await probes.acked)]
    const collected = await threads?.collect(acked.map(([probe]) => probe), sharedClockMs() + options.followDeliveryWaitSeconds * 1000)
    const delaysMs: number[] = []
    for (const arrivedAt of collected?.arrivals ?? []) {
      arrivedAt.forEach((arrived, i) => { if (!Number.isNaN(arrived)) delaysMs.push(arrived - acked[i][1]) })
    }
    const deliveries = acked.length * followers
    return { load: result, delaysMs: delaysMs.sort((a, b) => a - b), deliveries, unseen: deliveries - delaysMs.length, followerBusy: collected?.busiest ?? Number.NaN, peakRssBytes }
  } finally {
    await threads?.close()
  }
}

/** Whether the followers kept up: a thread busy all the time may have held the delays, not the service. */
function threadsBusy (run: FollowRun): string {
  return `follower threads at most ${(100 * run.followerBusy).toFixed(0)}% busy`
}

export async function followScenarios (options: BenchOptions): Promise<Row[]> {
  const load: Load = { path: '/v1/entries', connections: 64, contentType: 'application/json', body: requestBodies().entryJson, entriesPerRequest: 1 }
  const runs = new Map<number, FollowRun>()
  for (const followers of FOLLOWER_COUNTS) {
    const dataDir = makeTempDir(`P5-${followers}`)
    try {
      runs.set(followers, await withServer(
        async () => await startService({ label: `P5-${followers}`, dataDir, env: { VECWAL_MAX_STREAMS: '128' } }),
        async server => await runWithFollowers(server, followers, load, options)
      ))
    } finally {
      removeTempDir(dataDir)
    }
  }
  const none = runs.get(0) as FollowRun
  const rows: Row[] = []
  for (const followers of FOLLOWER_COUNTS.filter(n => n > 0)) {
    const run = runs.get(followers) as FollowRun
    const unseen = run.unseen > 0 ? `; ${count(run.unseen)} of ${count(run.deliveries)} deliveries not seen within ${options.followDeliveryWaitSeconds} s` : ''
    rows.push({
      scenario: `P5 follow delay, ${followers} follower${followers === 1 ? '' : 's'}`,
      measured: `p50 ${ms(percentile(run.delaysMs, 0.5))}, p99 ${ms(percentile(run.delaysMs, 0.99))} from 2xx to delivery (${threadsBusy(run)}${unseen})`,
      reference: `P1 under it ${count(run.load.requestsPerSecond)} req/s, p99 ${ms(run.load.p99Ms)}`,
      ratio: times(run.load.requestsPerSecond / none.load.requestsPerSecond),
      target: 'report'
    })
  }
  const hundred = runs.get(100) as FollowRun
  rows.push({
    scenario: 'P5 writes with 100 followers',
    measured: `${count(hundred.load.requestsPerSecond)} req/s (${threadsBusy(hundred)}), service peak RSS ${size(hundred.peakRssBytes)}`,
    reference: `no follower ${count(none.load.requestsPerSecond)} req/s, peak RSS ${size(none.peakRssBytes)}`,
    ratio: `${times(hundred.load.requestsPerSecond / none.load.requestsPerSecond)} (${(100 * (1 - hundred.load.requestsPerSecond / none.load.requestsPerSecond)).toFixed(0)}% lost)`,
    target: 'report'
  })
  return rows
}
