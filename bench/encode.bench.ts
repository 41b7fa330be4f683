// How much CPU the engine spends turning entries into a record payload, per entry: what P1 and P2
// pay on top of HTTP and JSON. Entries are 128-dimension inserts with two metadata keys, vectors as
// JSON gives them (number arrays) and as msgpack bodies give them (Float32Array).
// Run: npx tsc -p tsconfig.json && node dist/bench/encode.bench.js
import { encodeBatch, encodeEntry } from '../src/payload/payload.js'
import type { EntryInput } from '../src/entry.js'
import { BATCH_ENTRIES, DIMENSIONS } from './payloads.js'

const ROUNDS = 5
const SECONDS_PER_ROUND = 0.5

function entries (typed: boolean): EntryInput[] {
  return Array.from({ length: BATCH_ENTRIES }, (_, i) => {
    const values = Array.from({ length: DIMENSIONS }, () => Math.fround(Math.random() * 2 - 1))
    return { op: 'insert', id: `doc-${i}`, vector: typed ? Float32Array.from(values) : values, metadata: { source: 'bench', lang: 'en' } }
  })
}

function cpuSeconds (since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since)
  return (used.user + used.system) / 1e6
}

function measure (name: string, work: () => void, entriesPerCall: number): void {
  let best = Infinity
  for (let round = 0; round < ROUNDS; round++) {
    let calls = 0
    const started = process.cpuUsage()
    while (cpuSeconds(started) < SECONDS_PER_ROUND) {
      work()
      calls++
    }
    best = Math.min(best, cpuSeconds(started) * 1e6 / (calls * entriesPerCall))
  }
  console.log(`${name.padEnd(36)} ${best.toFixed(2).padStart(6)} µs/entry`)
}

const plain = entries(false)
const typed = entries(true)
console.log(`${DIMENSIONS}-dimension inserts, CPU per entry, best of ${ROUNDS} rounds of ${SECONDS_PER_ROUND} s`)
measure('encodeEntry, number array (P1)', () => { for (const e of plain) encodeEntry(e) }, plain.length)
measure('encodeBatch, number arrays (P2)', () => { encodeBatch(plain) }, plain.length)
measure('encodeBatch, Float32Array (P2b)', () => { encodeBatch(typed) }, typed.length)
