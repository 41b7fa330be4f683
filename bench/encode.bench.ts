// How much CPU the engine spends turning entries into a record payload, per entry: what P1 and P2
// pay on top of HTTP and JSON. Entries are 128-dimension inserts with two metadata keys, vectors as
// JSON gives them (number arrays) and as msgpack bodies give them (Float32Array). For P2b, also a
// msgpack body turned into its payload: the packer's one walk, against decoding it and encoding
// the objects (the long way, less its schema check).
// Run: npx tsc -p tsconfig.json && node dist/bench/encode.bench.js
import { encode as msgpackEncode } from '@msgpack/msgpack'
import { Packr } from 'msgpackr'
import { decodeMsgpackBody } from '../src/http/msgpack-body.js'
import { packBatchBody, type PackRules } from '../src/payload/batch-body-packer.js'
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

const rules: PackRules = { minVectorLength: 1, maxVectorLength: DIMENSIONS, binIsFloat32: false }
const stored = new Packr({ moreTypes: true, useRecords: false }).pack({ entries: typed })
// What a Python client sends: fixmaps, and vectors as float64 arrays.
const python = Buffer.from(msgpackEncode({ entries: plain }))
measure('packBatchBody, msgpackr body (P2b)', () => { packBatchBody(stored, rules) }, typed.length)
measure('packBatchBody, float64 arrays, fixmaps', () => { packBatchBody(python, rules) }, plain.length)
measure('decode + encodeBatch, msgpackr body', () => { encodeBatch((decodeMsgpackBody(stored) as { entries: EntryInput[] }).entries) }, typed.length)
