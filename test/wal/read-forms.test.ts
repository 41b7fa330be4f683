// The three forms a read hands out (decoded records, NDJSON, msgpack) agree record for record, and
// the byte forms' chunks, handed back once written, are filled again without changing a byte.
import t from 'tap'
import { unpackMultiple } from 'msgpackr'
import { Packr } from 'msgpackr'
import { ChunkPool, readMsgpack, readNdjson, readRecords, type LocatedFrame } from '../../src/wal/log-reader.js'
import { encodeEntry } from '../../src/payload/payload.js'
import type { WriteAheadLog } from '../../src/wal/log.js'
import { collect, entries, openLog, tempDir, type TeardownTarget } from '../helpers/wal.js'

const CHUNK_BYTES = 64 * 1024

async function filledLog (t: TeardownTarget): Promise<WriteAheadLog> {
  const log = await openLog(t, { dir: tempDir(t), segmentBytes: 256 * 1024 })
  // Batches of wide vectors: lines longer than a chunk, across several segments.
  const batch = entries(40).map(e => e.op === 'delete' ? e : { ...e, vector: new Array(256).fill(0).map((_, i) => i / 7) })
  for (let i = 0; i < 30; i++) await log.appendBatch(batch)
  await log.append(entries(1)[0])
  return log
}

t.test('NDJSON and msgpack hold the decoded records, in order', async t => {
  const log = await filledLog(t)
  const records = await collect(log.read({ after: 0 }).records)
  const ndjson = Buffer.concat(await collect(log.read({ after: 0 }).ndjson)).toString('utf8')
  const lines = ndjson.slice(0, -1).split('\n').map(line => JSON.parse(line) as { seq: number, op: string })
  t.same(lines.map(l => l.seq), records.map(r => r.seq), 'one line a record')
  const maps = unpackMultiple(Buffer.concat(await collect(log.read({ after: 0 }).msgpack))) as Array<{ seq: number, op: string }>
  t.same(maps.map(m => m.seq), records.map(r => r.seq), 'one map a record')
  t.same(maps.map(m => m.op), records.map(r => r.op))
})

for (const form of ['ndjson', 'msgpack'] as const) {
  t.test(`${form}: chunks are handed back and filled again, the bytes unchanged`, async t => {
    const log = await filledLog(t)
    const plain = Buffer.concat(await collect(log.read({ after: 0 })[form]))
    t.ok(plain.length > 4 * CHUNK_BYTES, `${plain.length} bytes: several chunks`)

    const read = log.read({ after: 0 })
    const copies: Buffer[] = []
    const seen = new Set<Buffer>()
    let reused = 0
    const sizes: number[] = []
    for await (const chunk of read[form]) {
      if (seen.has(chunk)) reused++
      seen.add(chunk)
      sizes.push(chunk.length)
      copies.push(Buffer.from(chunk))
      // Scribbled over as a socket never would: the stream must not read back what it wrote.
      read.recycle(chunk.fill(0x7e))
    }
    t.ok(Buffer.concat(copies).equals(plain), 'the same bytes as a read that hands nothing back')
    t.ok(reused > 0, `${reused} chunks were filled again`)
    t.ok(sizes.slice(0, -1).every(size => size === CHUNK_BYTES), 'every chunk but the last is full')
  })
}

t.test('a chunk pool refills only what it handed out, once', async t => {
  const pool = new ChunkPool()
  const a = pool.take()
  pool.give(a)
  pool.give(a)
  t.equal(pool.take(), a, 'a chunk handed back is handed out again')
  t.not(pool.take(), a, 'handed back twice, it is handed out once')
  const foreign = Buffer.alloc(CHUNK_BYTES)
  pool.give(foreign)
  t.not(pool.take(), foreign, 'a buffer it never handed out is not taken in')
})

t.test('two streams read in turns, long records and all, each give the bytes of a lone read', async t => {
  const log = await filledLog(t)
  for (const form of ['ndjson', 'msgpack'] as const) {
    const alone = Buffer.concat(await collect(log.read({ after: 0 })[form]))
    const streams = [log.read({ after: 0 })[form][Symbol.asyncIterator](), log.read({ after: 0 })[form][Symbol.asyncIterator]()]
    const got: Buffer[][] = [[], []]
    for (let done = 0; done < 2;) {
      done = 0
      for (const [i, stream] of streams.entries()) {
        const step = await stream.next()
        if (step.done === true) done++
        else got[i].push(Buffer.from(step.value))
      }
    }
    t.ok(got.every(chunks => Buffer.concat(chunks).equals(alone)), `${form}: both streams hold exactly the lone read's bytes`)
  }
})

t.test('every form refuses a CRC-valid record of the right type but another shape', async t => {
  const located = async function * (): AsyncGenerator<LocatedFrame> {
    const { type, bytes } = encodeEntry({ op: 'insert', id: 'a', vector: [1] })
    const good = { seq: 1, timestamp: 1, type, writeIndex: 0, source: bytes, payloadStart: 0, payloadEnd: bytes.length, size: bytes.length }
    yield { frame: good, segment: 'x.seg', offset: 24 }
    // The writer never adds a key: an extra one means the body is not what was written.
    const odd = new Packr({ moreTypes: true, useRecords: false }).pack({ op: 'insert', id: 'a', vector: Float32Array.from([1]), extra: 1 })
    yield { frame: { ...good, seq: 2, source: odd, payloadEnd: odd.length, size: odd.length }, segment: 'x.seg', offset: 100 }
  }
  const forms = { records: readRecords(located()), ndjson: readNdjson(located(), new ChunkPool()), msgpack: readMsgpack(located(), new ChunkPool()) }
  for (const [form, items] of Object.entries(forms)) {
    let served = 0
    await t.rejects((async () => { for await (const _ of items) served++ })(), { code: 'WAL_CORRUPT', file: 'x.seg', offset: 100 }, `${form}: refused`)
    t.equal(served, 1, `${form}: the good record before it was served`)
  }
})
