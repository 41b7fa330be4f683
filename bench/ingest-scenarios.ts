// P1, P1b, P2 and P2b: durable writes under HTTP load, each against a reference loaded the same
// way in the same run. Every service child gets a fresh data directory, durability fsync.
import { bytesPerSecond, syncedWriteRate } from './disk.js'
import { measureLoads, type Load, type LoadResult } from './load.js'
import type { BenchOptions } from './options.js'
import { BATCH_ENTRIES, requestBodies } from './payloads.js'
import { makeTempDir, removeTempDir, type ServerChild } from './process.js'
import { startRedisPeer } from './redis-peer.js'
import { startCeiling, startService, withServers } from './servers.js'
import { count, ms, size, sizePerSecond, times, type Row } from './table.js'

const JSON_TYPE = 'application/json'
/** The header the keyed loads' reference carries, unique per request like the key: the service ignores it. */
const IGNORED_HEADER = 'X-Bench-Request'

/** The load with a unique Idempotency-Key per request, and its reference: the same load with a unique header the service ignores. */
function keyedPair (load: Load): [Load, Load] {
  return [{ ...load, uniqueHeader: 'Idempotency-Key' }, { ...load, uniqueHeader: IGNORED_HEADER }]
}

/**
 * The cost of idempotency keys: the keyed load's rate against the same load without keys, on the
 * same service (P1's, P2's) in the same rounds.
 */
function keysRow (scenario: string, keyed: LoadResult, unkeyed: LoadResult, unit: 'req/s' | 'entries/s'): Row {
  const rate = (r: LoadResult): number => unit === 'req/s' ? r.requestsPerSecond : r.entriesPerSecond
  const keysRatio = ratio(keyed, unkeyed)
  return {
    scenario,
    measured: `${count(rate(keyed))} ${unit}, p99 ${ms(keyed.p99Ms)}${failures(keyed)}`,
    reference: `the same load without keys ${count(rate(unkeyed))} ${unit}, p99 ${ms(unkeyed.p99Ms)}${failures(unkeyed)}`,
    ratio: keysRatio.text,
    target: 'report'
  }
}
const MSGPACK_TYPE = 'application/msgpack'

/** Starts the ceiling server and a service child per label (each on a fresh data directory), then runs `use`. */
async function withCeilingAndServices<T> (
  services: Array<{ label: string, env?: Record<string, string> }>,
  options: BenchOptions,
  use: (ceiling: ServerChild, services: ServerChild[]) => Promise<T>
): Promise<T> {
  const dataDirs = services.map(service => makeTempDir(service.label))
  try {
    return await withServers(
      [startCeiling, ...services.map((service, i) => async () => await startService({ ...service, dataDir: dataDirs[i], profileDir: options.profileDir }))],
      async ([ceiling, ...started]) => await use(ceiling, started)
    )
  } finally {
    for (const dir of dataDirs) removeTempDir(dir)
  }
}

/**
 * a/b over the whole run, and the range of a/b round by round: a wide range says the machine was
 * busy with other work during the run.
 */
function ratio (a: LoadResult, b: LoadResult): { value: number, text: string } {
  // NaN rather than Infinity when nothing completed (quick mode), so that no target counts as met.
  const divide = (x: number, y: number): number => y > 0 ? x / y : Number.NaN
  const value = divide(a.entriesPerSecond, b.entriesPerSecond)
  const rounds = a.roundEntriesPerSecond.map((perSecond, i) => divide(perSecond, b.roundEntriesPerSecond[i])).filter(Number.isFinite)
  const spread = rounds.length < 2 ? '' : ` (rounds ${times(Math.min(...rounds))}–${times(Math.max(...rounds))})`
  return { value, text: times(value) + spread }
}

function failures (...results: LoadResult[]): string {
  const failed = results.reduce((sum, r) => sum + r.failures, 0)
  return failed === 0 ? '' : ` (${count(failed)} failed requests)`
}

export async function singleInserts (options: BenchOptions): Promise<Row[]> {
  const load: Load = { path: '/v1/entries', connections: 64, contentType: JSON_TYPE, body: requestBodies().entryJson, entriesPerRequest: 1 }
  const [keyedLoad, unkeyedLoad] = keyedPair(load)
  const [ceiling, service, oneSyncEach, keyed, unkeyed] = await withCeilingAndServices(
    [{ label: 'P1' }, { label: 'P1b', env: { VECWAL_GROUP_COMMIT: 'false' } }],
    options,
    async (ceiling, [groupCommit, oneSync]) => await measureLoads(
      [
        ...[ceiling, groupCommit, oneSync].map(server => ({ url: server.url, load })),
        { url: groupCommit.url, load: keyedLoad },
        { url: groupCommit.url, load: unkeyedLoad }
      ],
      options
    )
  )
  const serviceRatio = ratio(service, ceiling)
  const groupCommitGain = ratio(service, oneSyncEach)
  return [
    {
      scenario: 'P1 single inserts',
      measured: `${count(service.requestsPerSecond)} req/s${failures(service, ceiling)}`,
      reference: `ceiling ${count(ceiling.requestsPerSecond)} req/s`,
      ratio: serviceRatio.text,
      target: '≥ 0.9×',
      met: serviceRatio.value >= 0.9
    },
    {
      scenario: 'P1 latency',
      measured: `p99 ${ms(service.p99Ms)}, p50 ${ms(service.p50Ms)}`,
      reference: `ceiling p99 ${ms(ceiling.p99Ms)}, p50 ${ms(ceiling.p50Ms)}`,
      ratio: `${times(service.p99Ms / ceiling.p99Ms)} (p99)`,
      target: 'p99 ≤ 15 ms',
      met: service.p99Ms <= 15
    },
    {
      scenario: 'P1b group commit gain',
      measured: `P1 ${count(service.requestsPerSecond)} req/s`,
      reference: `one fsync per append ${count(oneSyncEach.requestsPerSecond)} req/s, p99 ${ms(oneSyncEach.p99Ms)}${failures(oneSyncEach)}`,
      ratio: groupCommitGain.text,
      target: 'report'
    },
    keysRow('P1k single inserts with idempotency keys', keyed, unkeyed, 'req/s')
  ]
}

export async function batchIngest (options: BenchOptions): Promise<Row[]> {
  const bodies = requestBodies()
  const jsonBatch: Load = { path: '/v1/batch', connections: 16, contentType: JSON_TYPE, body: bodies.batchJson, entriesPerRequest: BATCH_ENTRIES }
  const msgpackBatch: Load = { ...jsonBatch, contentType: MSGPACK_TYPE, body: bodies.batchMsgpack }

  const diskDir = makeTempDir('disk')
  const disk = await syncedWriteRate(diskDir, bodies.batchRecordBytes, options.diskSeconds).finally(() => { removeTempDir(diskDir) })
  const redis = await startRedisPeer(Math.round(bodies.batchRecordBytes / BATCH_ENTRIES))
  const [keyedBatch, unkeyedBatch] = keyedPair(jsonBatch)
  const [ceiling, ceilingMsgpack, json, msgpack, xadd, keyed, unkeyed] = await withCeilingAndServices(
    [{ label: 'P2' }, { label: 'P2b' }],
    options,
    async (ceiling, [jsonService, msgpackService]) => await measureLoads([
      { url: ceiling.url, load: jsonBatch },
      { url: ceiling.url, load: msgpackBatch },
      { url: jsonService.url, load: jsonBatch },
      { url: msgpackService.url, load: msgpackBatch },
      { run: redis.run, entriesPerRequest: 1 },
      { url: jsonService.url, load: keyedBatch },
      { url: jsonService.url, load: unkeyedBatch }
    ], options)
  ).finally(redis.stop)

  const jsonRatio = ratio(json, ceiling)
  const msgpackGain = ratio(msgpack, json)
  const redisRatio = ratio(msgpack, xadd)
  const logBytesPerSecond = msgpack.requestsPerSecond * bodies.batchRecordBytes
  const diskBytesPerSecond = bytesPerSecond(disk)
  return [
    {
      scenario: 'P2 batch ingest (JSON)',
      measured: `${count(json.entriesPerSecond)} entries/s, p99 ${ms(json.p99Ms)}${failures(json, ceiling)}`,
      reference: `ceiling ${count(ceiling.entriesPerSecond)} entries/s`,
      ratio: jsonRatio.text,
      target: '≥ 0.95×',
      met: jsonRatio.value >= 0.95
    },
    {
      scenario: 'P2b binary batch (msgpack)',
      measured: `${count(msgpack.entriesPerSecond)} entries/s, p99 ${ms(msgpack.p99Ms)}${failures(msgpack, ceilingMsgpack)}`,
      reference: `Redis XADD, appendfsync always, 64 clients pipelining 16: ${count(xadd.entriesPerSecond)} entries/s, p99 ${ms(xadd.p99Ms)}`,
      ratio: redisRatio.text,
      target: '≥ 2× Redis',
      met: redisRatio.value >= 2
    },
    {
      scenario: 'P2b against P2',
      measured: `${count(msgpack.entriesPerSecond)} entries/s`,
      reference: `P2 ${count(json.entriesPerSecond)} entries/s (msgpack ceiling ${count(ceilingMsgpack.entriesPerSecond)} entries/s)`,
      ratio: msgpackGain.text,
      target: 'report'
    },
    {
      scenario: 'P2b against the disk',
      measured: `log writes ${sizePerSecond(logBytesPerSecond)} (records of ${size(bodies.batchRecordBytes)})`,
      reference: `write+fdatasync of ${size(bodies.batchRecordBytes)} chunks: ${sizePerSecond(diskBytesPerSecond)}`,
      ratio: times(logBytesPerSecond / diskBytesPerSecond),
      target: 'report'
    },
    keysRow('P2k JSON batch ingest with idempotency keys', keyed, unkeyed, 'entries/s')
  ]
}
