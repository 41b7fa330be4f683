// P3 and P4: reading a log back, by streaming it (GET /v1/recovery) and by opening it (every CRC
// checked before /health/ready), each against a plain read of the same segment files; P3's NDJSON
// also against PostgreSQL printing the same rows.
import { rawSegmentReadRate, type Rate } from './disk.js'
import { fillLog, fillLogToBytes } from './fill.js'
import type { BenchOptions } from './options.js'
import { BATCH_ENTRIES } from './payloads.js'
import { startPostgresPeer, type CopyForm, type CopyRead } from './postgres-peer.js'
import { makeTempDir, removeTempDir, residentBytes, sampleResidentBytes } from './process.js'
import { readRecovery, type RecoveryForm, type RecoveryRead } from './recovery-client.js'
import { startService, withServer } from './servers.js'
import { count, seconds, size, sizePerSecond, times, type Row } from './table.js'

/** P3's log holds what P2's traffic writes: batch records of BATCH_ENTRIES entries. */
const RECOVERY_ENTRIES_PER_RECORD = BATCH_ENTRIES
/** P4's log is built with big batch records: a gigabyte in a few seconds. */
const OPEN_ENTRIES_PER_RECORD = 1000
const RECOVERY_TIMEOUT_MS = 120_000
/** The service's default form, then the form a client asks for with Accept: application/msgpack. */
const RECOVERY_FORMS: readonly RecoveryForm[] = ['ndjson', 'msgpack']
const RSS_LIMIT_BYTES = 150 * 1024 * 1024
/**
 * The msgpack stream's target. NDJSON's is a ratio against PostgreSQL's COPY of the same rows (the
 * row after it): printing decimals has a floor no log escapes, so its absolute speed is reported.
 */
const MSGPACK_TARGET_ENTRIES_PER_SECOND = 300_000
/** The NDJSON stream and PostgreSQL's COPYs alternate this many times (A B C, A B C). */
const POSTGRES_ROUNDS = 2
const COPY_FORMS: readonly CopyForm[] = ['float4[]', 'row_to_json']
/** Issue 16: NDJSON entries/s at least this many times PostgreSQL's rows/s, in either form. */
const POSTGRES_TARGET_RATIO = 1.2
const OPEN_TARGET_SECONDS = 3

export const READ_NOTES = [
  `P3 and P4 logs are filled by the engine itself in the bench's process, durability none, as batch records of ${RECOVERY_ENTRIES_PER_RECORD} (P3) and ${OPEN_ENTRIES_PER_RECORD} (P4) entries; the service then runs on them with durability fsync.`,
  'Raw reads go through the page cache, like the service\'s reads: the log was just written.',
  `PostgreSQL 15 (a private server on a unix socket) holds P3's log read back, one row per entry (id text, vector float4[], metadata jsonb, seq bigint), vacuumed after loading; each COPY is psql's, read to its end by a client counting lines, in ${POSTGRES_ROUNDS} rounds alternating with the NDJSON stream.`
]

/**
 * Streams the log at two sizes, the second grown from the first, in both forms: speed and the
 * server's peak RSS; the NDJSON stream against PostgreSQL's COPY of the same rows.
 */
export async function recovery (options: BenchOptions): Promise<Row[]> {
  const dataDir = makeTempDir('P3')
  const postgres = await startPostgresPeer().catch((err: unknown) => {
    removeTempDir(dataDir)
    throw err
  })
  const rows: Row[] = []
  try {
    let filled = 0
    let records = 0
    let loadedSeq = 0
    for (const entries of options.recoveryEntries) {
      await fillLog(dataDir, { entries: entries - filled, entriesPerRecord: RECOVERY_ENTRIES_PER_RECORD, firstId: filled + 1 })
      records += Math.ceil((entries - filled) / RECOVERY_ENTRIES_PER_RECORD)
      filled = entries
      loadedSeq = await postgres.loadLog(dataDir, loadedSeq)
      const raw = await rawSegmentReadRate(dataDir)
      for (const form of RECOVERY_FORMS) {
        const { reads, copies, idleRss, peakRss } = await withServer(
          async () => await startService({ label: `P3-${form}-${entries}`, dataDir, profileDir: options.profileDir }),
          async server => {
            const idleRss = residentBytes(server.pid) ?? 0
            const sampler = sampleResidentBytes(server.pid)
            const reads = [await readRecovery(server.url, form, RECOVERY_TIMEOUT_MS)]
            const peakRss = sampler.stop()
            const copies = new Map<CopyForm, CopyRead[]>(COPY_FORMS.map(copyForm => [copyForm, []]))
            if (form === 'ndjson') {
              for (let round = 0; round < POSTGRES_ROUNDS; round++) {
                if (round > 0) reads.push(await readRecovery(server.url, form, RECOVERY_TIMEOUT_MS))
                for (const copyForm of COPY_FORMS) copies.get(copyForm)?.push(await postgres.copyOut(copyForm))
              }
            }
            return { reads, copies, idleRss, peakRss }
          }
        )
        for (const { records: streamed } of reads) {
          if (streamed !== records) throw new Error(`P3: the ${form} recovery stream had ${streamed} records where ${records} were written`)
        }
        for (const [copyForm, copyReads] of copies) {
          for (const { rows: copied } of copyReads) {
            if (copied !== entries) throw new Error(`P3: PostgreSQL's ${copyForm} COPY printed ${copied} rows where ${entries} were loaded`)
          }
        }
        rows.push(...streamRows(entries, form, reads[0], raw, idleRss, peakRss))
        if (form === 'ndjson') rows.push(postgresRow(entries, reads, copies))
      }
    }
  } finally {
    await postgres.stop()
    removeTempDir(dataDir)
  }
  return rows
}

function streamRows (entries: number, form: RecoveryForm, read: RecoveryRead, raw: Rate, idleRss: number, peakRss: number): Row[] {
  const entriesPerSecond = entries / read.seconds
  const label = form === 'ndjson' ? `P3 recovery, ${count(entries)} entries` : `P3b recovery as msgpack, ${count(entries)} entries`
  return [
    {
      scenario: label,
      measured: `${count(entriesPerSecond)} entries/s (${seconds(read.seconds)}, ${sizePerSecond(read.bytes / read.seconds)} of ${form === 'ndjson' ? 'NDJSON' : 'msgpack'})`,
      reference: `raw read of ${size(raw.bytes)}: ${seconds(raw.seconds)}`,
      ratio: `${times(read.seconds / raw.seconds)} the raw read's time`,
      ...(form === 'msgpack'
        ? { target: `≥ ${count(MSGPACK_TARGET_ENTRIES_PER_SECOND)} entries/s`, met: entriesPerSecond >= MSGPACK_TARGET_ENTRIES_PER_SECOND }
        : { target: 'report (held against PostgreSQL below)' })
    },
    {
      scenario: `${label}: server RSS`,
      measured: `peak ${size(peakRss)} while streaming`,
      reference: `${size(idleRss)} before the stream`,
      ratio: times(peakRss / idleRss),
      target: `≤ ${size(RSS_LIMIT_BYTES)}`,
      met: peakRss <= RSS_LIMIT_BYTES
    }
  ]
}

/** Items per second over all rounds, and each round's on its own. */
function rates (items: number, reads: ReadonlyArray<{ seconds: number }>): { overall: number, rounds: number[] } {
  return {
    overall: items * reads.length / reads.reduce((sum, read) => sum + read.seconds, 0),
    rounds: reads.map(read => items / read.seconds)
  }
}

/** The NDJSON streams' entries/s against PostgreSQL's rows/s in each form, round by round. */
function postgresRow (entries: number, streams: readonly RecoveryRead[], copies: ReadonlyMap<CopyForm, readonly CopyRead[]>): Row {
  const ndjson = rates(entries, streams)
  const compared = COPY_FORMS.map(form => {
    const reads = copies.get(form) ?? []
    const copy = rates(entries, reads)
    const roundRatios = ndjson.rounds.map((perSecond, i) => perSecond / copy.rounds[i])
    const spread = roundRatios.length < 2 ? '' : ` (rounds ${times(Math.min(...roundRatios))}–${times(Math.max(...roundRatios))})`
    const meanSeconds = reads.reduce((sum, read) => sum + read.seconds, 0) / reads.length
    return {
      value: ndjson.overall / copy.overall,
      ratio: `${times(ndjson.overall / copy.overall)} ${form}${spread}`,
      reference: `${form} ${count(copy.overall)} rows/s (${seconds(meanSeconds)})`
    }
  })
  const meanSeconds = streams.reduce((sum, read) => sum + read.seconds, 0) / streams.length
  return {
    scenario: `P3 NDJSON vs PostgreSQL COPY, ${count(entries)} entries`,
    measured: `${count(ndjson.overall)} entries/s (${seconds(meanSeconds)} a stream, ${streams.length} streams)`,
    reference: `PostgreSQL 15 COPY TO STDOUT of the same rows: ${compared.map(c => c.reference).join('; ')}`,
    ratio: compared.map(c => c.ratio).join('; '),
    target: `≥ ${times(POSTGRES_TARGET_RATIO)} in each form`,
    met: compared.every(c => c.value >= POSTGRES_TARGET_RATIO)
  }
}

/** Starts the service on a big log, several times, against reading the log raw and starting on an empty one. */
export async function open (options: BenchOptions): Promise<Row[]> {
  const dataDir = makeTempDir('P4')
  const emptyDir = makeTempDir('P4-empty')
  try {
    const bytes = await fillLogToBytes(dataDir, options.openLogBytes, OPEN_ENTRIES_PER_RECORD)
    const opens: number[] = []
    const emptyStarts: number[] = []
    const rawReads: number[] = []
    // Interleaved, so that a burst of load from elsewhere on the machine touches all three alike.
    for (let i = 1; i <= options.openRepeats; i++) {
      rawReads.push((await rawSegmentReadRate(dataDir)).seconds)
      opens.push(await secondsToReady(`P4-open-${i}`, dataDir, options))
      emptyStarts.push(await secondsToReady(`P4-empty-${i}`, emptyDir, options))
    }
    const openSeconds = median(opens)
    const rawSeconds = median(rawReads)
    return [...await openWithKeys(options), {
      scenario: `P4 open, ${size(bytes)} log`,
      measured: `${seconds(openSeconds)} from spawn to ready (median of ${opens.length})`,
      reference: `raw read ${seconds(rawSeconds)}; start on an empty log ${seconds(median(emptyStarts))}`,
      ratio: `${times(openSeconds / rawSeconds)} the raw read's time`,
      target: `≤ ${OPEN_TARGET_SECONDS} s`,
      met: openSeconds <= OPEN_TARGET_SECONDS
    }]
  } finally {
    removeTempDir(dataDir)
    removeTempDir(emptyDir)
  }
}

/**
 * P4k: the open of a log whose every record carries an idempotency key (single-entry records, as
 * many as VECWAL_IDEMPOTENCY_MAX_KEYS holds by default) against the same records without keys:
 * what rebuilding the key index costs the open scan.
 */
async function openWithKeys (options: BenchOptions): Promise<Row[]> {
  const keyedDir = makeTempDir('P4k')
  const plainDir = makeTempDir('P4k-plain')
  try {
    const records = options.openKeyedRecords
    const keyedBytes = await fillLog(keyedDir, { entries: records, entriesPerRecord: 1, keyed: true })
    await fillLog(plainDir, { entries: records, entriesPerRecord: 1 })
    const keyed: number[] = []
    const plain: number[] = []
    for (let i = 1; i <= options.openRepeats; i++) {
      keyed.push(await secondsToReady(`P4k-open-${i}`, keyedDir, options))
      plain.push(await secondsToReady(`P4k-plain-${i}`, plainDir, options))
    }
    return [{
      scenario: `P4k open, ${count(records)} keyed records (${size(keyedBytes)})`,
      measured: `${seconds(median(keyed))} from spawn to ready (median of ${keyed.length})`,
      reference: `the same records without keys ${seconds(median(plain))}`,
      ratio: times(median(keyed) / median(plain)),
      target: 'report'
    }]
  } finally {
    removeTempDir(keyedDir)
    removeTempDir(plainDir)
  }
}

async function secondsToReady (label: string, dataDir: string, options: BenchOptions): Promise<number> {
  return await withServer(
    async () => await startService({ label, dataDir, profileDir: options.profileDir }),
    async server => server.readyMs / 1000
  )
}

function median (values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
