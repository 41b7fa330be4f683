// What the fault suites share: a seeded PRNG (the engine's crash tests use it too), random entries,
// and the comparison of a record read back from the log with the request that sent it. Records are
// compared in their JSON form (the recovery stream's, or the engine's with Float32Arrays turned into
// arrays): vector values must be the same 32-bit floats, everything else exactly equal, and no field
// may be added.

export interface EntryJson {
  op: 'insert' | 'update' | 'delete'
  id: string
  vector?: number[]
  metadata?: Record<string, string>
}

export type RequestKind = 'entry' | 'batch' | 'tx'

/** One request that could put one record in the log, keyed by the id of its first entry. */
export interface SentRequest {
  key: string
  kind: RequestKind
  entries: EntryJson[]
  txId?: string
  /** The seq of its acknowledgement, if one came. */
  ackedSeq?: number
}

/** A small seeded PRNG (mulberry32) giving floats in [0, 1): a failing run replays from its seed. */
export function seeded (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
  }
}

/** An integer in [0, below). */
export function below (random: () => number, n: number): number {
  return Math.floor(random() * n)
}

/**
 * A random entry: deletes, inserts and updates, vectors of 4 to 31 values spread over many orders
 * of magnitude (so that float32 rounding shows), metadata sometimes, with non-ASCII text.
 */
export function randomEntry (random: () => number, id: string, tag: string): EntryJson {
  const roll = random()
  if (roll < 0.1) return { op: 'delete', id }
  const dims = 4 + below(random, 28)
  const vector = Array.from({ length: dims }, () => (random() - 0.5) * 10 ** (below(random, 8) - 3))
  const op = roll < 0.6 ? 'insert' : 'update'
  if (random() < 0.5) return { op, id, vector }
  const metadata: Record<string, string> = { tag }
  if (random() < 0.5) metadata['näme'] = `wert ${below(random, 1e6)} ✓`
  return { op, id, vector, metadata }
}

/** The key of the request a record came from: the id of its (first) entry. */
export function keyOf (record: Record<string, unknown>): string {
  if (record.op === 'batch') return String((record.entries as Array<{ id?: unknown }> | undefined)?.[0]?.id)
  return String(record.id)
}

function sameFloat32 (sent: number, got: unknown): boolean {
  return typeof got === 'number' && Math.fround(got) === Math.fround(sent)
}

/** Why a recovered entry differs from the one sent, or undefined when it is the same. */
export function entryDifference (sent: EntryJson, got: Record<string, unknown>): string | undefined {
  const allowed = sent.op === 'delete' ? ['op', 'id'] : ['op', 'id', 'vector', 'metadata']
  for (const key of Object.keys(got)) if (!allowed.includes(key)) return `unexpected field ${key}`
  if (got.op !== sent.op) return `op ${String(got.op)} instead of ${sent.op}`
  if (got.id !== sent.id) return `id ${String(got.id)} instead of ${sent.id}`
  if (sent.vector !== undefined) {
    const vector = got.vector
    if (!Array.isArray(vector) || vector.length !== sent.vector.length) return 'vector length differs'
    for (let i = 0; i < vector.length; i++) {
      if (!sameFloat32(sent.vector[i], vector[i])) return `vector[${i}] is ${String(vector[i])}, sent ${sent.vector[i]}`
    }
  }
  if (JSON.stringify(got.metadata) !== JSON.stringify(sent.metadata)) return 'metadata differs'
  return undefined
}

/** Why a record (with its seq and timestamp) differs from the request sent, or undefined. */
export function recordDifference (sent: SentRequest, record: Record<string, unknown>): string | undefined {
  if (typeof record.timestamp !== 'number') return 'no timestamp'
  if (sent.kind === 'entry') {
    const { seq: _seq, timestamp: _timestamp, ...entry } = record
    return entryDifference(sent.entries[0], entry)
  }
  if (record.op !== 'batch') return `op ${String(record.op)} where a batch was sent`
  for (const key of Object.keys(record)) {
    if (!['seq', 'timestamp', 'op', 'entries', 'txId'].includes(key)) return `unexpected field ${key}`
  }
  if (record.txId !== sent.txId) return `txId ${String(record.txId)} instead of ${String(sent.txId)}`
  const entries = record.entries
  if (!Array.isArray(entries) || entries.length !== sent.entries.length) return 'batch entry count differs'
  for (let i = 0; i < entries.length; i++) {
    const why = entryDifference(sent.entries[i], entries[i] as Record<string, unknown>)
    if (why !== undefined) return `entries[${i}]: ${why}`
  }
  return undefined
}
