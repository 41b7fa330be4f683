// How fast the recovery stream can turn records into NDJSON: recordToJsonLine against a naive
// shortest-float loop (toPrecision until the value reads back) and against JSON.stringify of the
// vector widened to doubles, which is fast but prints 17-digit values.
// Run: npx tsc -p tsconfig.json && node dist/bench/record-json.bench.js
import { recordToJsonLine } from '../src/http/record-json.js'
import type { LogRecord } from '../src/wal/payload.js'

const DIMENSIONS = 128
const RECORDS = 4096
const SAMPLE_RECORDS = 256
const ROUNDS = 3
const SECONDS_PER_ROUND = 0.3

// Embedding-like values: mostly small, all different, so no number-to-string cache helps.
function randomRecord (seq: number): LogRecord {
  const vector = new Float32Array(DIMENSIONS)
  for (let i = 0; i < DIMENSIONS; i++) vector[i] = (Math.random() * 2 - 1) * 0.2
  return { seq, op: 'insert', id: `doc-${seq}`, vector, metadata: { source: 'bench' }, timestamp: 1764000000000 + seq }
}

const records = Array.from({ length: RECORDS }, (_, i) => randomRecord(i + 1))

function naiveFloat32 (value: number): string {
  for (let precision = 1; precision < 9; precision++) {
    const candidate = Number(value.toPrecision(precision))
    if (Math.fround(candidate) === value) return String(candidate)
  }
  return String(Number(value.toPrecision(9)))
}

function naiveLine (record: LogRecord): string {
  if (record.op !== 'insert') throw new Error('the bench only makes inserts')
  const vector = Array.from(record.vector, naiveFloat32).join(',')
  return `{"seq":${record.seq},"op":"insert","id":${JSON.stringify(record.id)},"vector":[${vector}],` +
    `"metadata":${JSON.stringify(record.metadata)},"timestamp":${record.timestamp}}\n`
}

function stringifyLine (record: LogRecord): string {
  if (record.op !== 'insert') throw new Error('the bench only makes inserts')
  return JSON.stringify({ ...record, vector: Array.from(record.vector) }) + '\n'
}

function cpuSeconds (since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since)
  return (used.user + used.system) / 1e6
}

// Rates are per CPU second, the best of a few short rounds after an untimed pass that lets V8
// optimize and counts the output's size: on a shared machine, wall-clock time would also count
// the time other processes had the CPU.
function measure (name: string, toLine: (record: LogRecord) => string): void {
  const sample = records.slice(0, SAMPLE_RECORDS)
  const chars = sample.reduce((sum, record) => sum + toLine(record).length, 0)
  let best = 0
  for (let round = 0; round < ROUNDS; round++) {
    let lines = 0
    const started = process.cpuUsage()
    while (cpuSeconds(started) < SECONDS_PER_ROUND) {
      for (let i = 0; i < 256; i++) toLine(records[(lines + i) % RECORDS])
      lines += 256
    }
    best = Math.max(best, lines / cpuSeconds(started))
  }
  console.log(
    `${name.padEnd(28)} ${Math.round(best).toLocaleString('en').padStart(9)} records/s ` +
    `${(best * DIMENSIONS / 1e6).toFixed(1).padStart(5)} M floats/s ` +
    `${Math.round(chars / SAMPLE_RECORDS).toString().padStart(5)} chars/line`
  )
}

console.log(`${DIMENSIONS}-dimension inserts, per CPU second, best of ${ROUNDS} rounds of ${SECONDS_PER_ROUND} s`)
measure('recordToJsonLine', recordToJsonLine)
measure('naive toPrecision loop', naiveLine)
measure('JSON.stringify (17 digits)', stringifyLine)
