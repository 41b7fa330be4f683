// P5: following the log under P1's load. For 0, 1, 10 and 100 NDJSON followers (GET
// /v1/recovery?follow=true) held by this process, the service takes P1's single inserts from wrk
// while a probe posts an entry of its own every PROBE_INTERVAL_MS: the delay from each probe's 2xx
// to its line reaching each follower gives p50 and p99; P1's throughput with 100 followers against
// none gives what following costs the writes; the service's peak RSS with 100 followers is sampled.
import http from 'node:http'
import { measureLoads, type Load, type LoadResult } from './load.js'
import type { BenchOptions } from './options.js'
import { requestBodies } from './payloads.js'
import { makeTempDir, removeTempDir, sampleResidentBytes, type ServerChild } from './process.js'
import { startService, withServer } from './servers.js'
import { count, ms, size, times, type Row } from './table.js'

const FOLLOWER_COUNTS = [0, 1, 10, 100] as const
const PROBE_INTERVAL_MS = 20
const PROBE_ID = Buffer.from('"id":"probe-')
/** Enough for a probe's id cut by a chunk's end to be found whole in the next one. */
const CARRY_BYTES = PROBE_ID.length + 20

interface FollowRun {
  load: LoadResult
  /** Milliseconds from each probe's 2xx to its line at each follower (a line may beat the 2xx: negative). */
  delaysMs: number[]
  /** Probes sent, and probe deliveries expected (probes × followers) against those seen. */
  probes: number
  deliveries: number
  peakRssBytes: number
}

/** A follower: notes when each probe's line arrives. */
function follow (url: string, arrivals: Map<number, number>): { close: () => void } {
  let carry: Buffer = Buffer.alloc(0)
  const request = http.get(`${url}/v1/recovery?after=0&follow=true`, { agent: false }, response => {
    response.on('data', (chunk: Buffer) => {
      const now = performance.now()
      const text = carry.length === 0 ? chunk : Buffer.concat([carry, chunk])
      for (let at = text.indexOf(PROBE_ID); at !== -1; at = text.indexOf(PROBE_ID, at + 1)) {
        const start = at + PROBE_ID.length
        const end = text.indexOf(0x22, start)
        if (end === -1) break
        const probe = Number(text.toString('latin1', start, end))
        if (!arrivals.has(probe)) arrivals.set(probe, now)
      }
      carry = text.subarray(Math.max(0, text.length - CARRY_BYTES))
    })
    response.on('error', () => {})
  })
  request.on('error', () => {})
  return { close: () => { request.destroy() } }
}

function percentile (sorted: number[], p: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

async function runWithFollowers (server: ServerChild, followers: number, load: Load, options: BenchOptions): Promise<FollowRun> {
  const entry = JSON.parse(load.body.toString()) as Record<string, unknown>
  const arrivals = Array.from({ length: followers }, () => new Map<number, number>())
  const streams = arrivals.map(map => follow(server.url, map))
  const acked = new Map<number, number>()
  let probing = true
  let probes = 0
  // Probes count once the warm-up is over: the delays are those of the measured load.
  const measuredFrom = performance.now() + options.warmupSeconds * 1000
  const probe = (async () => {
    for (let k = 0; probing; k++) {
      const body = JSON.stringify({ ...entry, id: `probe-${k}` })
      const response = await fetch(`${server.url}/v1/entries`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      await response.arrayBuffer()
      const now = performance.now()
      if (response.status === 201 && now >= measuredFrom) {
        acked.set(k, now)
        probes++
      }
      await new Promise(resolve => setTimeout(resolve, PROBE_INTERVAL_MS))
    }
  })()
  const rss = sampleResidentBytes(server.pid)
  try {
    const [result] = await measureLoads([{ url: server.url, load }], options)
    // Let the followers catch up with the last probes before counting.
    probing = false
    await probe
    await new Promise(resolve => setTimeout(resolve, 1000))
    const delaysMs: number[] = []
    for (const map of arrivals) {
      for (const [k, ackedAt] of acked) {
        const arrived = map.get(k)
        if (arrived !== undefined) delaysMs.push(arrived - ackedAt)
      }
    }
    return { load: result, delaysMs: delaysMs.sort((a, b) => a - b), probes, deliveries: delaysMs.length, peakRssBytes: rss.stop() }
  } finally {
    probing = false
    for (const stream of streams) stream.close()
  }
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
    const missed = run.probes * followers - run.deliveries
    rows.push({
      scenario: `P5 follow delay, ${followers} follower${followers === 1 ? '' : 's'}`,
      measured: `p50 ${ms(percentile(run.delaysMs, 0.5))}, p99 ${ms(percentile(run.delaysMs, 0.99))} from 2xx to delivery` +
        `${missed > 0 ? ` (${count(missed)} of ${count(run.probes * followers)} deliveries not seen)` : ''}`,
      reference: `P1 under it ${count(run.load.requestsPerSecond)} req/s, p99 ${ms(run.load.p99Ms)}`,
      ratio: times(run.load.requestsPerSecond / none.load.requestsPerSecond),
      target: 'report'
    })
  }
  const hundred = runs.get(100) as FollowRun
  rows.push({
    scenario: 'P5 writes with 100 followers',
    measured: `${count(hundred.load.requestsPerSecond)} req/s, service peak RSS ${size(hundred.peakRssBytes)}`,
    reference: `no follower ${count(none.load.requestsPerSecond)} req/s, peak RSS ${size(none.peakRssBytes)}`,
    ratio: `${times(hundred.load.requestsPerSecond / none.load.requestsPerSecond)} (${(100 * (1 - hundred.load.requestsPerSecond / none.load.requestsPerSecond)).toFixed(0)}% lost)`,
    target: 'report'
  })
  return rows
}
