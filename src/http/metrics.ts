// Prometheus metrics (prom-client), all named vecwal_ but the process defaults. Counters and
// histograms are fed as things happen; gauges read the log's status when scraped.
import client from 'prom-client'
import type { ConsumerStatus, LogObserver, LogStatus } from '../log.js'

// prom-client's defaults include three gauges named like counters, which promtool rejects; the
// same figures stay available, by type, in nodejs_active_handles/requests/resources.
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

export interface Metrics {
  registry: client.Registry
  /** Hand this to the engine so it reports commits and fsyncs. */
  observer: Required<LogObserver>
  observeRequest: (method: string, route: string, statusCode: number, seconds: number) => void
  /** Recovery streams that follow the log, open now. */
  followStreams: { inc: () => void, dec: () => void }
}

export function createMetrics (status: () => LogStatus | undefined, consumers: () => ConsumerStatus[] | undefined = () => undefined): Metrics {
  const registry = new client.Registry()
  client.collectDefaultMetrics({ register: registry })
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name)
  const registers = [registry]

  const entries = new client.Counter({
    name: 'vecwal_entries_appended_total',
    help: 'Entries made durable, by op (entries inside batches counted one by one)',
    labelNames: ['op'],
    registers
  })
  const bytes = new client.Counter({ name: 'vecwal_bytes_appended_total', help: 'Record bytes made durable, framing included', registers })
  const fsyncSeconds = new client.Histogram({
    name: 'vecwal_fsync_duration_seconds',
    help: 'Duration of each fdatasync of a group-commit batch',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers
  })
  const batchRecords = new client.Histogram({
    name: 'vecwal_group_commit_records',
    help: 'Records per group-commit batch',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
    registers
  })
  const batchBytes = new client.Histogram({
    name: 'vecwal_group_commit_bytes',
    help: 'Bytes per group-commit batch',
    buckets: [256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216],
    registers
  })
  const requestSeconds = new client.Histogram({
    name: 'vecwal_http_request_duration_seconds',
    help: 'HTTP request duration by method, route and status',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers
  })

  const followStreams = new client.Gauge({ name: 'vecwal_follow_streams', help: 'Recovery streams open now that follow the log (follow=true)', registers })
  const replays = new client.Counter({
    name: 'vecwal_idempotent_replays_total',
    help: 'Writes answered from the earlier write of their idempotency key, writing nothing',
    registers
  })
  const keysEvicted = new client.Counter({
    name: 'vecwal_idempotency_keys_evicted_total',
    help: 'Idempotency keys forgotten before their window ended, to keep to VECWAL_IDEMPOTENCY_MAX_KEYS',
    registers
  })

  const requestChildren = new Map<string, ReturnType<typeof requestSeconds.labels>>()

  // A reading of undefined (a figure this backend does not have) leaves the gauge without a sample:
  // prom-client would otherwise show an unset gauge as 0, which an alert would take for a fact.
  const gauge = (name: string, help: string, read: (s: LogStatus) => number | undefined): void => {
    const metric: client.Gauge = new client.Gauge({
      name,
      help,
      registers,
      collect () {
        const current = status()
        const reading = current === undefined ? undefined : read(current)
        if (reading === undefined) metric.remove()
        else metric.set(reading)
      }
    })
  }
  gauge('vecwal_write_queue_bytes', 'Bytes waiting in the write queue or being written', s => s.queuedBytes)
  gauge('vecwal_write_queue_limit_bytes', 'The write queue limit: past it writes get 503 WAL_QUEUE_FULL', s => s.queueLimitBytes)
  gauge('vecwal_last_seq', 'The last durable sequence number', s => s.lastSeq)
  gauge('vecwal_checkpoint_seq', 'The last checkpoint (0: none)', s => s.checkpoint)
  gauge('vecwal_segments', 'Segment files in the log (0 for a backend that keeps none)', s => s.segments?.length ?? 0)
  gauge('vecwal_segments_bytes', 'Bytes of all segment files', s => s.bytes)
  gauge('vecwal_failed', '1 while the log is failed (a write or fsync failed, or another writer was found) and refuses writes', s => s.state === 'failed' ? 1 : 0)
  gauge('vecwal_disk_full', '1 while free disk space is below VECWAL_MIN_FREE_BYTES and writes are refused', s => s.diskFull ? 1 : 0)
  gauge('vecwal_disk_free_bytes', 'Free bytes of the data directory\'s file system, as last asked (segment backend, while VECWAL_MIN_FREE_BYTES is above 0)', s => s.freeBytes)
  gauge('vecwal_open_transactions', 'Transactions open and staging in memory', s => s.openTransactions)
  gauge('vecwal_idempotency_keys', 'Idempotency keys remembered, whose writes a retry is answered from', s => s.idempotencyKeys)

  // One series per consumer, read from the log when scraped: a deleted consumer's series go with it.
  const consumerGauge = (name: string, help: string, read: (c: ConsumerStatus) => number): void => {
    const metric: client.Gauge<'consumer'> = new client.Gauge({
      name,
      help,
      labelNames: ['consumer'],
      registers,
      collect () {
        const current = consumers()
        if (current === undefined) return
        metric.reset()
        for (const c of current) metric.set({ consumer: c.name }, read(c))
      }
    })
  }
  consumerGauge('vecwal_consumer_checkpoint_seq', 'The consumer\'s checkpoint', c => c.checkpoint)
  consumerGauge('vecwal_consumer_lag_seqs', 'The seq of the last entry record minus the consumer\'s checkpoint (checkpoint and consumer records aside)', c => c.lagSeqs)
  consumerGauge('vecwal_consumer_lag_bytes', 'Bytes of the log after the consumer\'s checkpoint (exact to within 1 MiB)', c => c.lagBytes)
  consumerGauge('vecwal_consumer_passed_by_retention', '1 once VECWAL_RETAIN_MAX_BYTES let retention delete records the consumer has not checkpointed', c => c.passedByRetention ? 1 : 0)

  return {
    registry,
    followStreams: {
      inc () { followStreams.inc() },
      dec () { followStreams.dec() }
    },
    observer: {
      committed (records, committedBytes) {
        bytes.inc(committedBytes)
        batchRecords.observe(records)
        batchBytes.observe(committedBytes)
      },
      synced (seconds) { fsyncSeconds.observe(seconds) },
      appended (op, count) { entries.inc({ op }, count) },
      replayed () { replays.inc() },
      keysEvicted (count) { keysEvicted.inc(count) }
    },
    observeRequest (method, route, statusCode, seconds) {
      // One labelled child per method, route and status, looked up by a string key: cheaper on
      // every request than prom-client hashing a labels object.
      const key = `${method} ${route} ${statusCode}`
      let child = requestChildren.get(key)
      if (child === undefined) {
        child = requestSeconds.labels(method, route, String(statusCode))
        requestChildren.set(key, child)
      }
      child.observe(seconds)
    }
  }
}
