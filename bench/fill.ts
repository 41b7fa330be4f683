// Builds the logs P3 and P4 read, fast: the engine itself, in the bench's process, with durability
// none and batch records. The bytes are those the service writes (the same engine and encoder);
// going through HTTP would only make the fill slower.
import fs from 'node:fs'
import path from 'node:path'
import type { EntryInput } from '../src/entry.js'
import { WriteAheadLog } from '../src/wal/log.js'
import { fillEntries } from './payloads.js'

/** Batches in flight at once: enough for group commit to write several per call. */
const BATCHES_IN_FLIGHT = 8

export interface FillPlan {
  /** Entries to append, as batch records of `entriesPerRecord`. */
  entries: number
  entriesPerRecord: number
  /** The id of the first entry, so that a log filled twice keeps ids distinct. */
  firstId?: number
  /** Each record written with an idempotency key of its own (P4k: the open rebuilds their index). */
  keyed?: boolean
}

/** Appends to the log in `dir` (creating it if need be) and closes it; returns the bytes of its segment files. */
export async function fillLog (dir: string, plan: FillPlan): Promise<number> {
  const log = await WriteAheadLog.open({ dir, durability: 'none' })
  const inFlight: Array<Promise<unknown>> = []
  let records = 0
  try {
    let batch: EntryInput[] = []
    for (const entry of fillEntries(plan.entries, plan.firstId)) {
      batch.push(entry)
      if (batch.length < plan.entriesPerRecord) continue
      inFlight.push(plan.keyed === true ? log.appendBatchWith(batch, { idempotencyKey: `fill-${plan.firstId ?? 1}-${records++}` }) : log.appendBatch(batch))
      batch = []
      // Appends complete in order: waiting for the oldest keeps the window full.
      if (inFlight.length >= BATCHES_IN_FLIGHT) await inFlight.shift()
    }
    if (batch.length > 0) inFlight.push(log.appendBatch(batch))
    await Promise.all(inFlight)
  } finally {
    // After a failure the appends still in flight fail too: settle them before closing.
    await Promise.allSettled(inFlight)
    await log.close()
  }
  return segmentBytes(dir)
}

/** Appends batches of `entriesPerRecord` until the log's segment files hold at least `bytes`. */
export async function fillLogToBytes (dir: string, bytes: number, entriesPerRecord: number): Promise<number> {
  const probeEntries = entriesPerRecord * 4
  let size = await fillLog(dir, { entries: probeEntries, entriesPerRecord })
  const bytesPerEntry = size / probeEntries
  let appended = probeEntries
  while (size < bytes) {
    const entries = Math.ceil((bytes - size) / bytesPerEntry / entriesPerRecord) * entriesPerRecord
    size = await fillLog(dir, { entries, entriesPerRecord, firstId: appended + 1 })
    appended += entries
  }
  return size
}

function segmentBytes (dir: string): number {
  return fs.readdirSync(dir)
    .filter(name => name.endsWith('.seg'))
    .reduce((sum, name) => sum + fs.statSync(path.join(dir, name)).size, 0)
}
