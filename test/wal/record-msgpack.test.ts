// The recovery stream's msgpack form: each record one map, {seq, ...its body, timestamp}, read back
// by msgpackr's plain unpack as the record itself; payloads that are not record bodies are refused.
import { setTimeout as sleep } from 'node:timers/promises'
import v8 from 'node:v8'
import vm from 'node:vm'
import t from 'tap'
import fc from 'fast-check'
import { Packr, unpack } from 'msgpackr'
import { RecordType, type RecordFrame } from '../../src/wal/format.js'
import type { LogRecord } from '../../src/log.js'
import { encodeBatch, encodeCheckpoint, encodeConsumer, encodeEntry, type EncodedPayload } from '../../src/payload/payload.js'
import { recordMsgpackBytes } from '../../src/records/record-msgpack.js'

const timestamp = 1764000000000

function frameOf (seq: number, { type, bytes }: EncodedPayload): RecordFrame {
  // Placed inside a larger buffer, as a reader's chunk holds it.
  const source = Buffer.concat([Buffer.from([0xc1, 0xc1]), bytes, Buffer.from([0xc1])])
  return { seq, timestamp, type, writeIndex: 0, source, payloadStart: 2, payloadEnd: 2 + bytes.length, size: bytes.length }
}

t.test('a record reads back as itself, seq first and timestamp last', async t => {
  const vector = Float32Array.from([0.1, -2, 3e-40])
  const cases: Array<[EncodedPayload, Record<string, unknown>]> = [
    [encodeEntry({ op: 'insert', id: 'a', vector, metadata: { k: 'v' } }), { op: 'insert', id: 'a', vector, metadata: { k: 'v' } }],
    [encodeEntry({ op: 'delete', id: 'b' }), { op: 'delete', id: 'b' }],
    [encodeBatch([{ op: 'update', id: 'c', vector }], 'tx-1'), { op: 'batch', entries: [{ op: 'update', id: 'c', vector }], txId: 'tx-1' }],
    [encodeCheckpoint(2 ** 40), { op: 'checkpoint', checkpoint: 2 ** 40 }],
    [encodeCheckpoint(9, 'replica-1'), { op: 'checkpoint', checkpoint: 9, consumer: 'replica-1' }],
    [encodeConsumer({ name: 'replica-1', event: 'carry', start: 2, checkpoint: 9, checkpointedAt: 1_764_000_000_000 }),
      { op: 'consumer', name: 'replica-1', event: 'carry', start: 2, checkpoint: 9, checkpointedAt: 1_764_000_000_000 }]
  ]
  for (const [payload, body] of cases) {
    const seq = 2 ** 33 + 7
    const bytes = recordMsgpackBytes(frameOf(seq, payload))
    if (bytes === undefined) throw new Error(`no map for ${String(body.op)}`)
    const read = unpack(bytes) as Record<string, unknown>
    t.same(read, { seq, ...body, timestamp }, String(body.op))
    t.same(Object.keys(read), ['seq', ...Object.keys(body), 'timestamp'], `${String(body.op)}: keys in order`)
    t.equal(typeof read.seq, 'number', 'seqs past 2^32 read back as numbers, not BigInts')
  }
})

t.test('random records read back as themselves', async t => {
  const text = fc.string({ maxLength: 12 })
  const vector = fc.float32Array({ noNaN: true, noDefaultInfinity: true, minLength: 1, maxLength: 16 })
  const entry = fc.oneof(
    fc.record({ op: fc.constantFrom('insert' as const, 'update' as const), id: text, vector }),
    fc.record({ op: fc.constant('delete' as const), id: text })
  )
  fc.assert(fc.property(fc.array(entry, { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (entries, seq) => {
    const bytes = recordMsgpackBytes(frameOf(seq, encodeBatch(entries)))
    if (bytes === undefined) throw new Error('no map')
    const read = new Packr({ moreTypes: true, useRecords: false }).unpack(bytes) as LogRecord
    if (read.op !== 'batch' || read.seq !== seq || read.timestamp !== timestamp) throw new Error(JSON.stringify(read))
    read.entries.forEach((e, i) => {
      const sent = entries[i]
      if (e.op !== sent.op || e.id !== sent.id) throw new Error(`entry ${i}`)
      if (e.op !== 'delete' && sent.op !== 'delete' && !Buffer.from(e.vector.buffer, e.vector.byteOffset, e.vector.byteLength).equals(Buffer.from(sent.vector.buffer, sent.vector.byteOffset, sent.vector.byteLength))) {
        throw new Error(`vector ${i}`)
      }
    })
  }), { numRuns: 300 })
  t.pass('300 batches')
})

t.test('payloads that are not record bodies of their type are refused', async t => {
  const packr = new Packr({ useRecords: false })
  const refused: Array<[string, EncodedPayload]> = [
    ['an array', { type: RecordType.delete, bytes: packr.pack(['delete', 'a']) }],
    ['an empty map', { type: RecordType.delete, bytes: packr.pack({}) }],
    ['op not first', { type: RecordType.delete, bytes: packr.pack({ id: 'a', op: 'delete' }) }],
    ['another type', { ...encodeEntry({ op: 'delete', id: 'a' }), type: RecordType.insert }],
    ['cut short', { type: RecordType.delete, bytes: Buffer.from([0xde, 0x00]) }]
  ]
  for (const [label, payload] of refused) t.equal(recordMsgpackBytes(frameOf(1, payload)), undefined, label)
})

t.test('a record longer than the kept buffer reads back, and its buffer is let go once dropped', async t => {
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  let collected = false
  const registry = new FinalizationRegistry(() => { collected = true })
  const vector = new Float32Array(65_536).map((_, i) => i / 3)
  const entries = Array.from({ length: 8 }, (_, i) => ({ op: 'insert' as const, id: `wide-${i}`, vector }))
  ;(() => {
    const bytes = recordMsgpackBytes(frameOf(1, encodeBatch(entries)))
    if (bytes === undefined || bytes.buffer.byteLength <= 1024 * 1024) throw new Error('the record should need a buffer of its own')
    const read = unpack(bytes) as LogRecord
    t.ok(read.op === 'batch' && read.entries.length === 8 && read.entries.every(e => e.op !== 'delete' && Buffer.from(e.vector.buffer, e.vector.byteOffset, e.vector.byteLength).equals(Buffer.from(vector.buffer))), 'all 8 wide entries read back')
    registry.register(bytes.buffer, 'the long record')
  })()
  const small = recordMsgpackBytes(frameOf(2, encodeEntry({ op: 'delete', id: 'b' })))
  t.same(small === undefined ? undefined : unpack(small), { seq: 2, op: 'delete', id: 'b', timestamp }, 'a short record after it')
  for (let i = 0; i < 20 && !collected; i++) {
    gc()
    await sleep(10)
  }
  t.ok(collected, 'the buffer of the long record was collected')
})
