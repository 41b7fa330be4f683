// HTTP load with autocannon: a warm-up, then a measured run of the same requests.
import autocannon from 'autocannon'

export interface Load {
  path: string
  connections: number
  contentType: string
  body: Buffer
  /** Entries each request carries, so that entries/s can be told apart from requests/s. */
  entriesPerRequest: number
}

export interface LoadResult {
  /** 2xx responses per second. */
  requestsPerSecond: number
  entriesPerSecond: number
  p50Ms: number
  p99Ms: number
  /** Errors, timeouts and non-2xx answers: any at all makes the figures suspect. */
  failures: number
}

export interface LoadTiming {
  warmupSeconds: number
  seconds: number
}

export async function measureLoad (baseUrl: string, load: Load, timing: LoadTiming): Promise<LoadResult> {
  const options = {
    url: baseUrl + load.path,
    method: 'POST',
    connections: load.connections,
    headers: { 'content-type': load.contentType },
    body: load.body,
    timeout: 10,
    // autocannon stops at the first sample after the duration: sample often, or short runs last a second.
    sampleInt: 100
  }
  await autocannon({ ...options, duration: timing.warmupSeconds })
  const result = await autocannon({ ...options, duration: timing.seconds })
  const requestsPerSecond = result['2xx'] / result.duration
  return {
    requestsPerSecond,
    entriesPerSecond: requestsPerSecond * load.entriesPerRequest,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    failures: result.errors + result.timeouts + result.non2xx
  }
}
