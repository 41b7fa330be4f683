// The shape check's answer, held to the body it walked: for generated records, encoded as the
// writer encodes them and placed inside a larger buffer, every part the check notes (ids, vectors,
// metadata maps, a transaction's id, a checkpoint) lies where the decoded body says it is; and a
// batch past the parts kept between walks does not stay held by the next walk.
import t from 'tap'
import fc from 'fast-check'
import type { EntryInput } from '../../src/entry.js'
import { recordTypeName, type RecordBytes } from '../../src/records/record-bytes.js'
import { decodeItem } from '../../src/records/record-object.js'
import { checkRecordBody, ENTRY_SLOTS, EntrySlot, NO_PART, type RecordShape } from '../../src/records/record-shape.js'
import { encodeBatch, encodeCheckpoint, encodeEntry, type EncodedPayload } from '../../src/payload/payload.js'
import { entry, id } from '../helpers/bodies.js'

/** The payload at `offset` in a buffer of bytes that are no msgpack (0xc1), as a reader's chunk holds it. */
function recordOf ({ type, bytes }: EncodedPayload, offset: number): RecordBytes {
  const source = Buffer.alloc(offset + bytes.length + 7, 0xc1)
  bytes.copy(source, offset)
  return { seq: 1, timestamp: 1764000000000, type, source, payloadStart: offset, payloadEnd: offset + bytes.length }
}

/** Why entry `index` of the shape is not `entry`, or undefined if it is. */
function entryProblem (shape: RecordShape, source: Buffer, index: number, entry: EntryInput): string | undefined {
  const at = (slot: number): number => shape.parts[index * ENTRY_SLOTS + slot]
  if (recordTypeName(at(EntrySlot.op)) !== entry.op) return `op ${at(EntrySlot.op)}`
  if (decodeItem(source, at(EntrySlot.idItem), at(EntrySlot.idEnd)) !== entry.id) return 'id item'
  if (source.toString('utf8', at(EntrySlot.idStart), at(EntrySlot.idEnd)) !== entry.id) return 'id bytes'
  if (entry.op === 'delete') return at(EntrySlot.vectorStart) === NO_PART && at(EntrySlot.metadataStart) === NO_PART ? undefined : 'parts of a delete'
  const start = at(EntrySlot.vectorStart)
  const values = Buffer.from(source.subarray(start, start + at(EntrySlot.vectorCount) * 4))
  const vector = new Float32Array(values.buffer, values.byteOffset, at(EntrySlot.vectorCount))
  if (!Buffer.from(Float32Array.from(entry.vector).buffer).equals(Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength))) return 'vector'
  if (entry.metadata === undefined) return at(EntrySlot.metadataStart) === NO_PART ? undefined : 'metadata where there is none'
  const metadata = decodeItem(source, at(EntrySlot.metadataStart), at(EntrySlot.metadataEnd))
  return JSON.stringify(metadata) === JSON.stringify(entry.metadata) ? undefined : 'metadata'
}

t.test('checkRecordBody: every part it notes lies where the decoded body has it', async t => {
  const offset = fc.nat(9)
  const single = fc.tuple(entry, offset).map(([entry, offset]) => ({ payload: encodeEntry(entry), entries: [entry as EntryInput], offset }))
  const batch = fc.tuple(fc.array(entry, { maxLength: 150 }), fc.option(id, { nil: undefined }), offset)
    .map(([entries, txId, offset]) => ({ payload: encodeBatch(entries, txId), entries: entries as EntryInput[], txId, offset }))
  fc.assert(fc.property(fc.oneof(single, batch), ({ payload, entries, offset, ...rest }) => {
    const record = recordOf(payload, offset)
    const shape = checkRecordBody(record)
    if (shape === undefined) throw new Error('a body the writer wrote is refused')
    if (shape.entries !== entries.length) throw new Error(`${shape.entries} entries, not ${entries.length}`)
    entries.forEach((entry, i) => {
      const problem = entryProblem(shape, record.source, i, entry)
      if (problem !== undefined) throw new Error(`entry ${i}: ${problem}`)
    })
    if ('txId' in rest) {
      const txId = shape.txIdItem === NO_PART ? undefined : decodeItem(record.source, shape.txIdItem, shape.txIdEnd)
      if (txId !== rest.txId) throw new Error('txId')
      if (rest.txId !== undefined && record.source.toString('utf8', shape.txIdStart, shape.txIdEnd) !== rest.txId) throw new Error('txId bytes')
    }
  }), { numRuns: 300 })
  t.pass('300 records')
})

t.test('checkRecordBody: a checkpoint record notes its checkpoint', async t => {
  fc.assert(fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.nat(9), (checkpoint, offset) => {
    const shape = checkRecordBody(recordOf(encodeCheckpoint(checkpoint), offset))
    if (shape?.op !== 'checkpoint' || shape.entries !== 0 || shape.checkpoint !== checkpoint) throw new Error(`checkpoint ${checkpoint}`)
  }), { numRuns: 300 })
  t.pass('300 checkpoints')
})

t.test('checkRecordBody: the parts of a batch past the kept array are let go at the next walk', async t => {
  const deletes = 40_000
  const record = recordOf(encodeBatch(Array.from({ length: deletes }, (_, i) => ({ op: 'delete', id: `d${i}` }))), 0)
  const big = checkRecordBody(record)
  t.equal(big?.entries, deletes)
  const bigParts = big?.parts
  t.ok(bigParts !== undefined && bigParts.length >= deletes * ENTRY_SLOTS, 'the batch got parts of its own')
  const last = (deletes - 1) * ENTRY_SLOTS
  t.equal(recordTypeName(bigParts?.[last + EntrySlot.op] ?? 0), 'delete', 'the last entry is a delete')
  t.equal(decodeItem(record.source, bigParts?.[last + EntrySlot.idItem] ?? 0, bigParts?.[last + EntrySlot.idEnd] ?? 0), `d${deletes - 1}`, 'its id')
  const small = checkRecordBody(recordOf(encodeEntry({ op: 'delete', id: 'x' }), 0))
  t.ok(small !== undefined && small.parts !== bigParts && small.parts.length < deletes * ENTRY_SLOTS, 'the next walk writes into the kept array')
})
