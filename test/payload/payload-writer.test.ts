// The payload writer (src/payload/payload-writer.ts) writes, byte for byte, what msgpackr's pack wrote
// for the same body (moreTypes, no records), so logs from before and after it are one format: on
// generated entries (any script, long strings, 64 metadata keys, vectors of any float32 as number
// arrays and Float32Arrays), batches with and without a txId, and checkpoints of every width.
// What cannot be stored as given is refused with WAL_INVALID_ENTRY, naming the value.
import fc from 'fast-check'
import { Packr } from 'msgpackr'
import t from 'tap'
import type { EntryInput } from '../../src/entry.js'
import { assertStorable, batchPayload, checkpointPayload, entryPayload } from '../../src/payload/payload-writer.js'
import { entry, float32 } from '../helpers/bodies.js'

const packr = new Packr({ moreTypes: true, useRecords: false })

/** The body as the engine stored it through msgpackr: vectors as Float32Array. */
function stored (e: EntryInput): unknown {
  if (e.op === 'delete') return { op: 'delete', id: e.id }
  const vector = Float32Array.from(e.vector)
  return e.metadata === undefined ? { op: e.op, id: e.id, vector } : { op: e.op, id: e.id, vector, metadata: e.metadata }
}

/** The entry as a client may hand it over: vectors as number arrays or as Float32Arrays. */
const input = fc.tuple(entry, fc.boolean()).map(([e, asArray]): EntryInput => e.op === 'delete' || !asArray ? e : { ...e, vector: Array.from(e.vector) })
const longString = fc.oneof(fc.string({ unit: 'binary', minLength: 200, maxLength: 400 }), fc.string({ unit: 'binary-ascii', minLength: 65_530, maxLength: 65_540 }))

t.test('entries, batches and checkpoints are written as msgpackr wrote them', async t => {
  let compared = 0
  fc.assert(fc.property(input, e => {
    compared++
    return entryPayload(e).equals(packr.pack(stored(e)))
  }), { numRuns: 2000 })
  fc.assert(fc.property(fc.array(input, { maxLength: 40 }), fc.option(fc.string({ unit: 'binary', maxLength: 40 }), { nil: undefined }), (entries, txId) => {
    compared++
    const body: Record<string, unknown> = { op: 'batch', entries: entries.map(stored) }
    if (txId !== undefined) body.txId = txId
    return batchPayload(entries, txId).equals(packr.pack(body))
  }), { numRuns: 300 })
  fc.assert(fc.property(longString, longString, (id, value) => {
    compared++
    const e: EntryInput = { op: 'update', id, vector: [1], metadata: { [Array.from(value).slice(0, 300).join('')]: value } }
    return entryPayload(e).equals(packr.pack(stored(e)))
  }), { numRuns: 40 })
  fc.assert(fc.property(fc.oneof(fc.nat(300), fc.nat(70_000), fc.maxSafeNat()), checkpoint => {
    compared++
    return checkpointPayload(checkpoint).equals(packr.pack({ op: 'checkpoint', checkpoint }))
  }), { numRuns: 500 })
  const big: EntryInput = { op: 'insert', id: 'big', vector: Float32Array.from({ length: 300_000 }, (_, i) => i / 7) }
  t.ok(entryPayload(big).equals(packr.pack(stored(big))), 'a vector past the kept scratch (ext 32)')
  t.equal(compared, 2840, 'every generated body compared equal')
})

t.test('an entry that would not read back as given is refused, naming the value, and writes nothing', async t => {
  await fc.assert(fc.property(fc.array(float32, { minLength: 1, maxLength: 300 }), fc.nat(), fc.constantFrom(NaN, Infinity, -Infinity, 3.5e38, -1e39), (values, pick, bad) => {
    const at = pick % values.length
    const vector = values.map((v, i) => i === at ? bad : v)
    for (const v of [vector, Float32Array.from(vector)]) {
      const e: EntryInput = { op: 'insert', id: 'a', vector: v }
      t.throws(() => entryPayload(e), { code: 'WAL_INVALID_ENTRY', message: new RegExp(`vector value ${at} is not a finite 32-bit float$`) })
      t.throws(() => { assertStorable(e) }, { code: 'WAL_INVALID_ENTRY' })
    }
    // The writer is left whole: the next payload is right.
    const good: EntryInput = { op: 'insert', id: 'b', vector: values }
    return entryPayload(good).equals(packr.pack(stored(good)))
  }), { numRuns: 200 })
  const lone = 'x\ud800y'
  t.throws(() => entryPayload({ op: 'delete', id: lone }), { code: 'WAL_INVALID_ENTRY', message: /id holds a lone surrogate/ })
  t.throws(() => entryPayload({ op: 'insert', id: 'a', vector: [1], metadata: { [lone]: 'v' } }), { code: 'WAL_INVALID_ENTRY', message: /a metadata key holds a lone surrogate/ })
  t.throws(() => entryPayload({ op: 'insert', id: 'a', vector: [1], metadata: { k: lone } }), { code: 'WAL_INVALID_ENTRY', message: /metadata value k holds a lone surrogate/ })
  t.throws(() => batchPayload([{ op: 'delete', id: 'a' }], lone), { code: 'WAL_INVALID_ENTRY', message: /txId holds a lone surrogate/ })
})
