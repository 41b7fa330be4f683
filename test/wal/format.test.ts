// The bytes on disk, field by field, as docs/format.md describes them.
import { crc32c } from '@node-rs/crc32'
import fc from 'fast-check'
import t from 'tap'
import {
  decodeSegmentHeader, encodeSegmentHeader, FORMAT_VERSION, MAX_PAYLOAD_BYTES, parseSegmentFileName, readRecord, readU64,
  RecordType, RECORD_HEADER_BYTES, segmentFileName, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, writeRecord, writeU64, type RecordTypeCode
} from '../../src/wal/format.js'
import { decodeBody } from '../../src/records/record-object.js'
import { encodeBatch, encodeCheckpoint, encodeConsumer, encodeEntry } from '../../src/payload/payload.js'
import { checkRecordBody } from '../../src/records/record-shape.js'

t.test('segment file names sort in seq order', async t => {
  const seqs = [1, 9, 10, 99, 100, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER]
  const names = seqs.map(segmentFileName)
  t.equal(names[0], '00000000000000000001.seg')
  t.same([...names].sort(), names, 'lexical order is seq order')
  t.same(names.map(parseSegmentFileName), seqs)
  for (const other of ['LOCK', '00000000000000000001.seg.broken', '00000000000000000001.seg.at-24.broken', '1.seg', '0000000000000000000a.seg']) {
    t.equal(parseSegmentFileName(other), undefined, `${other} is not a segment`)
  }
})

t.test('u64 fields are little-endian', async t => {
  const buf = Buffer.alloc(8)
  for (const value of [0, 1, 2 ** 32 - 1, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
    writeU64(buf, value, 0)
    t.equal(buf.readBigUInt64LE(0), BigInt(value))
    t.equal(readU64(buf, 0), value)
  }
})

t.test('segment header', async t => {
  const header = encodeSegmentHeader(2 ** 32 + 7)
  t.equal(header.length, SEGMENT_HEADER_BYTES)
  t.equal(header.subarray(0, 4).toString('latin1'), 'VWAL', 'the magic reads "VWAL"')
  t.equal(header.readUInt32LE(0), SEGMENT_MAGIC)
  t.equal(header.readUInt16LE(4), FORMAT_VERSION)
  t.equal(FORMAT_VERSION, 3)
  t.equal(header.readUInt16LE(6), 0, 'flags')
  t.equal(header.readBigUInt64LE(8), BigInt(2 ** 32 + 7), 'base seq')
  t.equal(header.readUInt32LE(16), crc32c(header.subarray(0, 16)), 'CRC32C of bytes 0-15')
  t.equal(header.readUInt32LE(20), 0, 'reserved')
  t.same(decodeSegmentHeader(header), { ok: true, baseSeq: 2 ** 32 + 7, version: 3 })

  const undetected: number[] = []
  for (let bit = 0; bit < 20 * 8; bit++) {
    const damaged = Buffer.from(header)
    damaged[bit >> 3] ^= 1 << (bit & 7)
    if (decodeSegmentHeader(damaged).ok) undetected.push(bit)
  }
  t.same(undetected, [], 'every flipped bit of bytes 0-19 is detected')
  t.match(decodeSegmentHeader(header.subarray(0, 23)), { ok: false, reason: /cut short/ })

  const withVersion = (version: number): Buffer => {
    const other = Buffer.from(header)
    other.writeUInt16LE(version, 4)
    other.writeUInt32LE(crc32c(other.subarray(0, 16)), 16)
    return other
  }
  t.same(decodeSegmentHeader(withVersion(1)), { ok: true, baseSeq: 2 ** 32 + 7, version: 1 }, 'version 1 is still read')
  t.same(decodeSegmentHeader(withVersion(2)), { ok: true, baseSeq: 2 ** 32 + 7, version: 2 }, 'version 2 is still read')
  t.match(decodeSegmentHeader(withVersion(4)), { ok: false, reason: /unsupported format version 4/ })
  t.match(decodeSegmentHeader(withVersion(0)), { ok: false, reason: /unsupported format version 0/ })
})

t.test('record frame', async t => {
  const payload = encodeEntry({ op: 'insert', id: 'a', vector: [1, 2, 3], metadata: { k: 'v' } })
  const size = RECORD_HEADER_BYTES + payload.bytes.length
  const buf = Buffer.alloc(size + 10)
  const writeIndex = 0xabcdef
  t.equal(writeRecord(buf, 10, 2 ** 33, 1_700_000_000_123, payload.type, payload.bytes, writeIndex), 10 + size)
  const frame = buf.subarray(10)
  t.equal(frame.readUInt32LE(0), crc32c(frame.subarray(4, size)), 'CRC32C of everything after the CRC field')
  t.equal(frame.readUInt32LE(4), payload.bytes.length, 'payload length')
  t.equal(frame.readBigUInt64LE(8), BigInt(2 ** 33), 'seq')
  t.equal(frame.readBigUInt64LE(16), 1_700_000_000_123n, 'timestamp in ms')
  t.equal(frame[24], RecordType.insert, 'type')
  t.same([...frame.subarray(25, 28)], [0xef, 0xcd, 0xab], 'write index, a little-endian u24')
  t.ok(frame.subarray(28, size).equals(payload.bytes), 'payload')
  t.same(RecordType, { insert: 1, update: 2, delete: 3, batch: 4, checkpoint: 5, consumer: 6 })

  const decoded = readRecord(buf, 10, 10 + size)
  t.match(decoded, { kind: 'record', frame: { seq: 2 ** 33, timestamp: 1_700_000_000_123, type: RecordType.insert, writeIndex, size } })
  t.throws(() => writeRecord(buf, 10, 1, 1, payload.type, payload.bytes, 2 ** 24), RangeError, 'a write index past a u24 is refused')

  const wrong: number[] = []
  for (let bit = 0; bit < size * 8; bit++) {
    const damaged = Buffer.from(frame.subarray(0, size))
    damaged[bit >> 3] ^= 1 << (bit & 7)
    if (readRecord(damaged, 0).kind === 'record') wrong.push(bit)
  }
  t.same(wrong, [], `none of the ${size * 8} single-bit flips of a record reads as a record`)

  t.same(readRecord(frame, 0, RECORD_HEADER_BYTES - 1), { kind: 'short', needed: RECORD_HEADER_BYTES })
  t.same(readRecord(frame, 0, size - 1), { kind: 'short', needed: size }, 'a frame cut short asks for its full size')
  const badType = Buffer.from(frame.subarray(0, size))
  badType[24] = 9
  t.match(readRecord(badType, 0), { kind: 'bad', reason: /unknown record type 9/ })
  const badLength = Buffer.from(frame.subarray(0, size))
  badLength.writeUInt32LE(MAX_PAYLOAD_BYTES + 1, 4)
  t.match(readRecord(badLength, 0), { kind: 'bad', reason: /past the maximum/ })
})

/** A frame-shaped view of an encoded payload on its own, for decodeBody. */
const asFrame = (type: RecordTypeCode, bytes: Buffer) => ({ type, source: bytes, payloadStart: 0, payloadEnd: bytes.length })

t.test('payloads: msgpack, vectors as float32 typed arrays', async t => {
  const entry = encodeEntry({ op: 'update', id: 'x', vector: [1.1, -2] })
  const floats = Buffer.alloc(8)
  floats.writeFloatLE(1.1, 0)
  floats.writeFloatLE(-2, 4)
  // msgpack ext 8 (0xc7), length 9, ext type 0x74, typed-array code 7 (Float32Array), the floats.
  const ext = Buffer.concat([Buffer.from([0xc7, 9, 0x74, 7]), floats])
  t.ok(entry.bytes.includes(ext), 'the vector is a typed-array extension holding little-endian float32 values')
  const body = decodeBody(asFrame(entry.type, entry.bytes))
  t.type(body !== undefined && 'vector' in body ? body.vector : undefined, Float32Array)
  t.same(body, { op: 'update', id: 'x', vector: Float32Array.from([1.1, -2]) })

  const batch = encodeBatch([{ op: 'delete', id: 'y' }], 'tx-1')
  t.equal(batch.type, RecordType.batch)
  t.same(decodeBody(asFrame(batch.type, batch.bytes)), { op: 'batch', entries: [{ op: 'delete', id: 'y' }], txId: 'tx-1' })
  const checkpoint = encodeCheckpoint(42)
  t.same(decodeBody(asFrame(checkpoint.type, checkpoint.bytes)), { op: 'checkpoint', checkpoint: 42 })
  t.equal(decodeBody(asFrame(RecordType.insert, checkpoint.bytes)), undefined, 'a body that does not match its record type is refused')
})

/** msgpack fixstr bytes of ASCII `text`. */
const fixstr = (text: string): number[] => [0xa0 | text.length, ...Buffer.from(text, 'latin1')]

t.test('checkpoint and consumer payloads (version 3), byte by byte', async t => {
  // Below 0x7f, so that seq + 1 is still a positive fixint (one byte).
  await fc.assert(fc.property(fc.stringMatching(/^[A-Za-z0-9._-]{1,31}$/), fc.integer({ min: 0, max: 0x7e }), (name, seq) => {
    t.same([...encodeCheckpoint(seq).bytes], [0xde, 0, 2, ...fixstr('op'), ...fixstr('checkpoint'), ...fixstr('checkpoint'), seq],
      'the consumer default\'s checkpoint is the version 1 and 2 record, byte for byte')
    const named = encodeCheckpoint(seq, name)
    t.equal(named.type, RecordType.checkpoint)
    t.same([...named.bytes], [0xde, 0, 3, ...fixstr('op'), ...fixstr('checkpoint'), ...fixstr('checkpoint'), seq, ...fixstr('consumer'), ...fixstr(name)])
    t.same(decodeBody(asFrame(named.type, named.bytes)), { op: 'checkpoint', checkpoint: seq, consumer: name })
    for (const event of ['create', 'delete', 'carry'] as const) {
      const record = { name, event, start: seq, checkpoint: seq + 1, checkpointedAt: 0x7e }
      const consumer = encodeConsumer(record)
      t.equal(consumer.type, RecordType.consumer)
      t.same([...consumer.bytes], [
        0xde, 0, 6, ...fixstr('op'), ...fixstr('consumer'), ...fixstr('name'), ...fixstr(name), ...fixstr('event'), ...fixstr(event),
        ...fixstr('start'), seq, ...fixstr('checkpoint'), seq + 1, ...fixstr('checkpointedAt'), 0x7e
      ])
      t.same(decodeBody(asFrame(consumer.type, consumer.bytes)), { op: 'consumer', ...record })
      t.not(checkRecordBody(asFrame(consumer.type, consumer.bytes)), undefined, 'the consumer record has the shape its type asks for')
    }
  }), { numRuns: 20 })
  const unknownEvent = Buffer.from([0xde, 0, 6, ...fixstr('op'), ...fixstr('consumer'), ...fixstr('name'), ...fixstr('x'), ...fixstr('event'), ...fixstr('moved'),
    ...fixstr('start'), 0, ...fixstr('checkpoint'), 0, ...fixstr('checkpointedAt'), 0])
  t.equal(checkRecordBody(asFrame(RecordType.consumer, unknownEvent)), undefined, 'an event other than create, delete or carry is refused')
})
