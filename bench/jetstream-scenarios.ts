// PJ: the P1, P2 and P2b loads on the JetStream backend, at R1 and R3, against the segment engine
// in the same rounds; and R3 served by two instances on one stream against one. A 3-node cluster
// of Debian's nats-server on 127.0.0.1 (scripts/nats-cluster.ts), every node, instance and load
// generator on this one machine: a second instance buys here only what the cores left over allow,
// where on separate machines each brings its own.
import { NatsCluster } from '../scripts/nats-cluster.js'
import { measureLoads, type Load, type LoadResult } from './load.js'
import type { BenchOptions } from './options.js'
import { BATCH_ENTRIES, requestBodies } from './payloads.js'
import { makeTempDir, removeTempDir, type ServerChild } from './process.js'
import { startService, withServers } from './servers.js'
import { count, ms, times, type Row } from './table.js'

const JSON_TYPE = 'application/json'
const MSGPACK_TYPE = 'application/msgpack'

function rate (result: LoadResult, unit: 'req/s' | 'entries/s'): string {
  const value = unit === 'req/s' ? result.requestsPerSecond : result.entriesPerSecond
  return `${count(value)} ${unit}, p99 ${ms(result.p99Ms)}${result.failures === 0 ? '' : ` (${count(result.failures)} failed requests)`}`
}

function ratioText (a: LoadResult, b: LoadResult): string {
  return b.entriesPerSecond > 0 ? times(a.entriesPerSecond / b.entriesPerSecond) : times(Number.NaN)
}

export async function jetstreamScenarios (options: BenchOptions): Promise<Row[]> {
  const bodies = requestBodies()
  const loads: Array<{ name: string, load: Load, unit: 'req/s' | 'entries/s' }> = [
    { name: 'P1 single inserts', load: { path: '/v1/entries', connections: 64, contentType: JSON_TYPE, body: bodies.entryJson, entriesPerRequest: 1 }, unit: 'req/s' },
    { name: 'P2 batch ingest (JSON)', load: { path: '/v1/batch', connections: 16, contentType: JSON_TYPE, body: bodies.batchJson, entriesPerRequest: BATCH_ENTRIES }, unit: 'entries/s' },
    { name: 'P2b binary batch (msgpack)', load: { path: '/v1/batch', connections: 16, contentType: MSGPACK_TYPE, body: bodies.batchMsgpack, entriesPerRequest: BATCH_ENTRIES }, unit: 'entries/s' }
  ]
  const cluster = await NatsCluster.start(3)
  const dataDir = makeTempDir('PJ')
  try {
    const nats = (stream: string, replicas: number): Record<string, string> => ({
      VECWAL_BACKEND: 'jetstream', VECWAL_NATS_SERVERS: cluster.servers.join(','), VECWAL_NATS_STREAM: stream, VECWAL_NATS_REPLICAS: String(replicas)
    })
    const starts: Array<() => Promise<ServerChild>> = [
      async () => await startService({ label: 'PJ-segments', dataDir, profileDir: options.profileDir }),
      async () => await startService({ label: 'PJ-R1', dataDir, env: nats('bench_r1', 1), profileDir: options.profileDir }),
      async () => await startService({ label: 'PJ-R3', dataDir, env: nats('bench_r3', 3), profileDir: options.profileDir }),
      async () => await startService({ label: 'PJ-R3-second', dataDir, env: nats('bench_r3', 3), profileDir: options.profileDir })
    ]
    // Two instances on one new stream starting at once could both try to create it: the second starts after.
    return await withServers(starts.slice(0, 3), async ([segments, r1, r3]) => await withServers([starts[3]], async ([r3second]) => {
      const results = await measureLoads(loads.flatMap(({ load }) => [
        { url: segments.url, load },
        { url: r1.url, load },
        { url: r3.url, load },
        { url: r3.url, load, moreUrls: [r3second.url] }
      ]), options)
      return loads.flatMap(({ name, unit }, i) => {
        const [onSegments, onR1, onR3, onTwo] = results.slice(i * 4, i * 4 + 4)
        return [
          { scenario: `PJ ${name}, JetStream R1`, measured: rate(onR1, unit), reference: `segments (fsync) ${rate(onSegments, unit)}`, ratio: ratioText(onR1, onSegments), target: 'report' },
          { scenario: `PJ ${name}, JetStream R3`, measured: rate(onR3, unit), reference: `segments (fsync) ${rate(onSegments, unit)}`, ratio: ratioText(onR3, onSegments), target: 'report' },
          { scenario: `PJ ${name}, R3, two instances`, measured: rate(onTwo, unit), reference: `one instance ${rate(onR3, unit)}`, ratio: ratioText(onTwo, onR3), target: 'report' }
        ]
      })
    }))
  } finally {
    await cluster.stop()
    removeTempDir(dataDir)
  }
}
