// P3 and P4: reading a log back, by streaming it (GET /v1/recovery) and by opening it (every CRC
// checked before /health/ready), each against a plain read of the same segment files.
import { rawSegmentReadRate } from './disk.js'
import { fillLog, fillLogToBytes } from './fill.js'
import type { BenchOptions } from './options.js'
import { BATCH_ENTRIES } from './payloads.js'
import { makeTempDir, removeTempDir, residentBytes, sampleResidentBytes } from './process.js'
import { readRecovery, type RecoveryForm } from './recovery-client.js'
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
const RECOVERY_TARGET_ENTRIES_PER_SECOND = 300_000
const OPEN_TARGET_SECONDS = 3

export const READ_NOTES = [
  `P3 and P4 logs are filled by the engine itself in the bench's process, durability none, as batch records of ${RECOVERY_ENTRIES_PER_RECORD} (P3) and ${OPEN_ENTRIES_PER_RECORD} (P4) entries; the service then runs on them with durability fsync.`,
  'Raw reads go through the page cache, like the service\'s reads: the log was just written.'
]

/** Streams the log at two sizes, the second grown from the first, in both forms: speed and the server's peak RSS. */
export async function recovery (options: BenchOptions): Promise<Row[]> {
  const dataDir = makeTempDir('P3')
  const rows: Row[] = []
  try {
    let filled = 0
    let records = 0
    for (const entries of options.recoveryEntries) {
      await fillLog(dataDir, { entries: entries - filled, entriesPerRecord: RECOVERY_ENTRIES_PER_RECORD, firstId: filled + 1 })
      records += Math.ceil((entries - filled) / RECOVERY_ENTRIES_PER_RECORD)
      filled = entries
      const raw = await rawSegmentReadRate(dataDir)
      for (const form of RECOVERY_FORMS) {
        const { read, idleRss, peakRss } = await withServer(
          async () => await startService({ label: `P3-${form}-${entries}`, dataDir, profileDir: options.profileDir }),
          async server => {
            const idleRss = residentBytes(server.pid) ?? 0
            const sampler = sampleResidentBytes(server.pid)
            const read = await readRecovery(server.url, form, RECOVERY_TIMEOUT_MS)
            return { read, idleRss, peakRss: sampler.stop() }
          }
        )
        if (read.records !== records) throw new Error(`P3: the ${form} recovery stream had ${read.records} records where ${records} were written`)
        const entriesPerSecond = entries / read.seconds
        const label = form === 'ndjson' ? `P3 recovery, ${count(entries)} entries` : `P3b recovery as msgpack, ${count(entries)} entries`
        rows.push(
          {
            scenario: label,
            measured: `${count(entriesPerSecond)} entries/s (${seconds(read.seconds)}, ${sizePerSecond(read.bytes / read.seconds)} of ${form === 'ndjson' ? 'NDJSON' : 'msgpack'})`,
            reference: `raw read of ${size(raw.bytes)}: ${seconds(raw.seconds)}`,
            ratio: `${times(read.seconds / raw.seconds)} the raw read's time`,
            target: `≥ ${count(RECOVERY_TARGET_ENTRIES_PER_SECOND)} entries/s`,
            met: entriesPerSecond >= RECOVERY_TARGET_ENTRIES_PER_SECOND
          },
          {
            scenario: `${label}: server RSS`,
            measured: `peak ${size(peakRss)} while streaming`,
            reference: `${size(idleRss)} before the stream`,
            ratio: times(peakRss / idleRss),
            target: `≤ ${size(RSS_LIMIT_BYTES)}`,
            met: peakRss <= RSS_LIMIT_BYTES
          }
        )
      }
    }
  } finally {
    removeTempDir(dataDir)
  }
  return rows
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
    return [{
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
