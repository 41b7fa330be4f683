// What the client's follow tests share: generated entries with distinct ids, the check of a followed
// record against the entry written under its seq, and a retry policy that outlasts a restart.
import fc from 'fast-check'
import type { Test } from 'tap'
import type { Entry, FollowedRecord, FollowFormat } from '../../src/client/index.js'
import { entry as anyEntry, float32Bits } from './bodies.js'

/** Generated entries with distinct ids (the position first), so that each write can be told apart. */
export function generated (count: number): Entry[] {
  return fc.sample(anyEntry, count).map((e, i) => ({ ...e, id: `${i}:${Array.from(e.id).slice(0, 100).join('')}` }) as Entry)
}

/** A followed record holds the entry written under its seq: same id, same vector values (msgpack: the same float32 bits, as a Float32Array). */
export function checkRecord (t: Test, record: FollowedRecord, written: Entry, format: FollowFormat): void {
  t.equal(record.op, written.op, `seq ${record.seq}: its op`)
  if (record.op === 'batch') return
  t.equal(record.id, written.id, `seq ${record.seq}: its id`)
  if (!('vector' in written) || !('vector' in record)) return
  if (format === 'msgpack') {
    t.ok(record.vector instanceof Float32Array, 'msgpack: a Float32Array')
    t.same(float32Bits(record.vector as Float32Array), float32Bits(written.vector), `seq ${record.seq}: its vector's bits`)
  } else {
    t.same((record.vector as number[]).map(Math.fround), Array.from(written.vector), `seq ${record.seq}: its vector`)
  }
}

/** A retry policy patient enough to outlast a restart of the service. */
export const PATIENT = { attempts: 100, maxElapsedMs: 15_000, baseDelayMs: 20, maxDelayMs: 200 }
