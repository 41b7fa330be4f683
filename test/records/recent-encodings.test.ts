// The read forms shared by followers: what the cache answers is byte for byte what the encoder
// gave for that seq, even after the encoder wrote over its buffer; it holds no more than its
// bytes, the newest records it was given; a record older than the newest held never goes in.
import fc from 'fast-check'
import t from 'tap'
import type { RecordBytes } from '../../src/records/record-bytes.js'
import { ENTRY_OVERHEAD_BYTES, RecentEncodings } from '../../src/records/recent-encodings.js'

const frame = (seq: number): RecordBytes => ({ seq, timestamp: 0 }) as RecordBytes
const lineList = fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 2, maxLength: 80 })

/** An encoder of `lines` (seq n is lines[n - 1]) that answers a view of one buffer it writes again, as the real ones do; counts its calls. */
function encoderOf (lines: Uint8Array[]): { encode: (f: RecordBytes) => Buffer, calls: () => number } {
  const scratch = Buffer.alloc(300)
  let calls = 0
  return {
    encode: f => {
      calls++
      const line = lines[f.seq - 1]
      scratch.set(line)
      return scratch.subarray(0, line.length)
    },
    calls: () => calls
  }
}

t.test('followers reading in any order get each record\'s own bytes, from a cache within its bound', async t => {
  let hits = 0
  fc.assert(fc.property(lineList, fc.array(fc.nat(), { minLength: 1, maxLength: 300 }), fc.integer({ min: 64, max: 4096 }), (lines, picks, maxBytes) => {
    const cache = new RecentEncodings(maxBytes)
    const inner = encoderOf(lines)
    const encode = cache.encoder(inner.encode)
    for (const pick of picks) {
      const seq = (pick % lines.length) + 1
      const before = inner.calls()
      const got = encode(frame(seq))
      if (got === undefined || !got.equals(lines[seq - 1])) throw new Error(`seq ${seq}: other bytes than its own`)
      if (inner.calls() === before) hits++
      if (cache.size.bytes > maxBytes) throw new Error(`${cache.size.bytes} bytes held, past ${maxBytes}`)
    }
    return true
  }), { numRuns: 300 })
  t.ok(hits > 0, `records were answered from the cache (${hits} times)`)
})

t.test('read in order, the cache holds the newest records; a record older than them is encoded again, and does not go in', async t => {
  fc.assert(fc.property(lineList, fc.integer({ min: 300 + ENTRY_OVERHEAD_BYTES, max: 4096 }), fc.nat(), (lines, maxBytes, pick) => {
    const cache = new RecentEncodings(maxBytes)
    const inner = encoderOf(lines)
    const encode = cache.encoder(inner.encode)
    for (let seq = 1; seq <= lines.length; seq++) encode(frame(seq))
    const held = cache.size
    // The newest stretch that fits: counted back from the last record, each with its overhead.
    let bytes = 0
    let records = 0
    for (let seq = lines.length; seq >= 1 && bytes + lines[seq - 1].length + ENTRY_OVERHEAD_BYTES <= maxBytes; seq--) {
      bytes += lines[seq - 1].length + ENTRY_OVERHEAD_BYTES
      records++
    }
    if (held.records !== records || held.bytes !== bytes) throw new Error(`holds ${held.records} records (${held.bytes} B), not the newest ${records} (${bytes} B)`)
    const older = (pick % (lines.length - records || 1)) + 1
    if (older > lines.length - records) return true
    const before = inner.calls()
    encode(frame(older))
    encode(frame(older))
    if (inner.calls() !== before + 2) throw new Error(`seq ${older}, older than every record held, went in`)
    if (cache.size.records !== held.records) throw new Error('the cache changed')
    return true
  }), { numRuns: 300 })
  t.pass('300 logs read in order, each holding exactly its newest records')
})

t.test('a record met again under a seq held, with another timestamp, is another record: encoded again', async t => {
  fc.assert(fc.property(lineList, fc.integer({ min: 1, max: 2 ** 40 }), fc.integer({ min: 1, max: 2 ** 40 }), (lines, first, second) => {
    fc.pre(first !== second)
    const cache = new RecentEncodings()
    const inner = encoderOf(lines)
    const encode = cache.encoder(inner.encode)
    const seq = lines.length
    encode({ seq, timestamp: first } as RecordBytes)
    encode({ seq, timestamp: first } as RecordBytes)
    if (inner.calls() !== 1) throw new Error('the same record was encoded twice')
    const other = lines[0]
    const swapped = cache.encoder((record: RecordBytes) => record.timestamp === second ? Buffer.from(other) : inner.encode(record))
    const got = swapped({ seq, timestamp: second } as RecordBytes)
    if (got === undefined || !got.equals(other)) throw new Error('the bytes of the record held under that seq came back for another')
    return true
  }), { numRuns: 200 })
  t.pass('200 seqs met again with another timestamp, each encoded again')
})
