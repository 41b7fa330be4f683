// A worker thread of P5's followers (see followers.ts): holds its share of the NDJSON follow
// streams, reading each as fast as it comes and scanning its bytes for probe ids, nothing more,
// so that it keeps up with the log; notes each probe's arrival on the shared clock.
import http from 'node:http'
import type { EventLoopUtilization } from 'node:perf_hooks'
import { parentPort, workerData } from 'node:worker_threads'
import { sharedClockMs, type CollectRequest, type FollowerThreadData, type FromFollowerThread } from './followers.js'

const PROBE_ID = Buffer.from('"id":"probe-')
/** Enough for a probe's id cut by a chunk's end to be found whole in the next one. */
const CARRY_BYTES = PROBE_ID.length + 20
/** How often a collect request looks whether every follower has its probes. */
const CHECK_MS = 10

interface Follower {
  /** Probe number → its arrival on the shared clock. */
  arrivals: Map<number, number>
  /** The stream ended or failed: nothing more will arrive. */
  ended: boolean
}

const port = parentPort
if (port === null) throw new Error('follower-thread.js runs as a worker thread')
const send = (message: FromFollowerThread): void => { port.postMessage(message) }

/** Follows the log from its start; resolves once the response's head says 200. */
async function follow (url: string, follower: Follower): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let carry: Buffer = Buffer.alloc(0)
    const request = http.get(`${url}/v1/recovery?after=0&follow=true`, { agent: false }, response => {
      if (response.statusCode !== 200) {
        reject(new Error(`a follow request answered ${response.statusCode ?? '?'}`))
        response.resume()
        return
      }
      resolve()
      response.on('data', (chunk: Buffer) => {
        const now = sharedClockMs()
        const text = carry.length === 0 ? chunk : Buffer.concat([carry, chunk])
        for (let at = text.indexOf(PROBE_ID); at !== -1; at = text.indexOf(PROBE_ID, at + 1)) {
          const start = at + PROBE_ID.length
          const end = text.indexOf(0x22, start)
          if (end === -1) break
          const probe = Number(text.toString('latin1', start, end))
          if (!follower.arrivals.has(probe)) follower.arrivals.set(probe, now)
        }
        carry = text.subarray(Math.max(0, text.length - CARRY_BYTES))
      })
      // A stream cut short shows as the probes it never delivered.
      response.on('error', () => {})
      response.once('close', () => { follower.ended = true })
    })
    request.on('error', err => {
      follower.ended = true
      reject(err)
    })
  })
}

function collect (followers: Follower[], request: CollectRequest, since: EventLoopUtilization): void {
  // Up to the load's end, before the wait for stragglers.
  const busy = performance.eventLoopUtilization(since).utilization
  const done = (): boolean => followers.every(f => f.ended || request.probes.every(probe => f.arrivals.has(probe)))
  const timer = setInterval(() => {
    if (!done() && sharedClockMs() < request.deadline) return
    clearInterval(timer)
    send({
      kind: 'arrivals',
      busy,
      arrivals: followers.map(f => Float64Array.from(request.probes, probe => f.arrivals.get(probe) ?? Number.NaN))
    })
  }, CHECK_MS)
}

const data = workerData as FollowerThreadData
const followers: Follower[] = Array.from({ length: data.followers }, () => ({ arrivals: new Map(), ended: false }))
let ready = performance.eventLoopUtilization()
port.on('message', (request: CollectRequest) => { collect(followers, request, ready) })
Promise.all(followers.map(async follower => { await follow(data.url, follower) })).then(
  () => {
    ready = performance.eventLoopUtilization()
    send({ kind: 'ready' })
  },
  (err: unknown) => { send({ kind: 'failed', message: err instanceof Error ? err.message : String(err) }) }
)
