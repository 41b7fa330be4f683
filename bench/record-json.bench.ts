// How fast the recovery stream can turn stored records into what it sends, per CPU second: NDJSON
// transcoded straight from the payload (src/records/record-json.ts), the same record as a msgpack map
// (src/records/record-msgpack.ts), and for reference, decoding the payload into objects and printing it with
// JSON.stringify (vectors widened to doubles: 17-digit values), the obvious way to do it.
// Records are batches of 100 128-dimension inserts, as P3's log holds them.
// Run: npx tsc -p tsconfig.json && node dist/bench/record-json.bench.js
import { recordLineBytes } from '../src/records/record-json.js'
import { recordMsgpackBytes } from '../src/records/record-msgpack.js'
import { decodeBody } from '../src/records/record-object.js'
import type { RecordFrame } from '../src/wal/format.js'
import { encodeBatch } from '../src/payload/payload.js'
import { BATCH_ENTRIES, fillEntries } from './payloads.js'

const RECORDS = 16
const ROUNDS = 3
const SECONDS_PER_ROUND = 0.5

const frames: RecordFrame[] = Array.from({ length: RECORDS }, (_, i) => {
  const { type, bytes } = encodeBatch([...fillEntries(BATCH_ENTRIES, i * BATCH_ENTRIES + 1)])
  return { seq: i + 1, timestamp: 1764000000000 + i, type, writeIndex: 0, source: bytes, payloadStart: 0, payloadEnd: bytes.length, size: bytes.length }
})

function decodeAndStringify (frame: RecordFrame): Buffer {
  const body = decodeBody(frame)
  if (body?.op !== 'batch') throw new Error('the bench only makes batches')
  const entries = body.entries.map(entry => entry.op === 'delete' ? entry : { ...entry, vector: Array.from(entry.vector) })
  return Buffer.from(JSON.stringify({ seq: frame.seq, ...body, entries, timestamp: frame.timestamp }) + '\n')
}

function cpuSeconds (since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since)
  return (used.user + used.system) / 1e6
}

// The best of a few short rounds after an untimed pass that lets V8 optimize: on a shared machine,
// wall-clock time would also count the time other processes had the CPU.
function measure (name: string, encode: (frame: RecordFrame) => Buffer | undefined): void {
  const bytes = encode(frames[0])?.length ?? 0
  let best = 0
  for (let round = 0; round < ROUNDS; round++) {
    let records = 0
    const started = process.cpuUsage()
    while (cpuSeconds(started) < SECONDS_PER_ROUND) {
      for (const frame of frames) encode(frame)
      records += frames.length
    }
    best = Math.max(best, records * BATCH_ENTRIES / cpuSeconds(started))
  }
  console.log(
    `${name.padEnd(34)} ${Math.round(best).toLocaleString('en').padStart(10)} entries/s ` +
    `${Math.round(bytes / BATCH_ENTRIES).toLocaleString('en').padStart(6)} bytes/entry`
  )
}

console.log(`batches of ${BATCH_ENTRIES} 128-dimension inserts, per CPU second, best of ${ROUNDS} rounds of ${SECONDS_PER_ROUND} s`)
measure('NDJSON, transcoded', recordLineBytes)
measure('msgpack map', recordMsgpackBytes)
measure('decode + JSON.stringify (17 digits)', decodeAndStringify)
