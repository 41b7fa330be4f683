// What the bench sends and stores: 128-dimension inserts with two metadata keys, as single JSON
// entries (P1), JSON batches (P2), msgpack batches with Float32Array vectors (P2b), and the same
// entries as the engine takes them for filling logs (P3, P4).
import { Packr } from 'msgpackr'
import type { EntryInput } from '../src/entry.js'
import { RECORD_HEADER_BYTES } from '../src/wal/format.js'
import { encodeBatch } from '../src/payload/payload.js'

export const DIMENSIONS = 128
export const BATCH_ENTRIES = 100

// Plain msgpack maps (no msgpackr records), so the body is one any msgpack library could write;
// moreTypes writes a Float32Array as msgpackr's typed-array extension rather than raw bytes.
const packr = new Packr({ moreTypes: true, useRecords: false })

// Embedding-like values, all different: float32 values printed with 7 significant digits, as a
// client holding float32 vectors prints them.
function randomVector (): Float32Array {
  const vector = new Float32Array(DIMENSIONS)
  for (let i = 0; i < DIMENSIONS; i++) vector[i] = Number(Math.fround((Math.random() * 2 - 1) * 0.2).toPrecision(7))
  return vector
}

function insert (n: number, vector: Float32Array): EntryInput {
  return { op: 'insert', id: `doc-${n}`, vector, metadata: { source: 'bench', lang: 'en' } }
}

function withPlainVector (entry: EntryInput): EntryInput {
  return entry.op === 'delete' ? entry : { ...entry, vector: Array.from(entry.vector) }
}

export interface RequestBodies {
  /** One entry as JSON: the body of POST /v1/entries. */
  entryJson: Buffer
  /** {entries} of BATCH_ENTRIES as JSON: the body of POST /v1/batch. */
  batchJson: Buffer
  /** The same batch as msgpack, vectors as Float32Array. */
  batchMsgpack: Buffer
  /** The bytes the batch takes in the log as one record, framing included. */
  batchRecordBytes: number
}

export function requestBodies (): RequestBodies {
  const entries = Array.from({ length: BATCH_ENTRIES }, (_, i) => insert(i + 1, randomVector()))
  return {
    entryJson: Buffer.from(JSON.stringify(withPlainVector(entries[0]))),
    batchJson: Buffer.from(JSON.stringify({ entries: entries.map(withPlainVector) })),
    batchMsgpack: packr.pack({ entries }),
    batchRecordBytes: RECORD_HEADER_BYTES + encodeBatch(entries).bytes.length
  }
}

/**
 * Entries with distinct ids for filling a log. Vectors come from a small pool: generating a
 * million random vectors would cost more than the fill itself, and no cost measured depends on
 * vectors being unique.
 */
export function * fillEntries (count: number, firstId = 1): Generator<EntryInput> {
  const pool = Array.from({ length: 256 }, randomVector)
  for (let i = 0; i < count; i++) yield insert(firstId + i, pool[i % pool.length])
}
