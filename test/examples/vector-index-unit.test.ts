// The vector index example's parts without a service: applying records (against a plain replay),
// the save and what a load does with what an interrupted save left, and the query routes.
import fs from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import { pack, unpack } from 'msgpackr'
import t from 'tap'
import type { LogEntry, LogRecord } from '../../examples/vector-index/log-source.js'
import { startQueryServer } from '../../examples/vector-index/query-server.js'
import { VectorIndex, type IndexSettings } from '../../examples/vector-index/vector-index.js'
import { plainReplay } from '../helpers/vector-index-crash.js'
import { tempDir } from '../helpers/wal.js'

const DIMENSIONS = 4
const SETTINGS: IndexSettings = { dimensions: DIMENSIONS, connectivity: 8, expansionAdd: 32, expansionSearch: 64 }

const vector = fc.float32Array({ minLength: DIMENSIONS, maxLength: DIMENSIONS, noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 })
// Few ids, so that updates and deletes meet ids held and not held.
const id = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'é', '')
const entry: fc.Arbitrary<LogEntry> = fc.oneof(
  fc.record({ op: fc.constantFrom('insert' as const, 'update' as const), id, vector }),
  fc.record({ op: fc.constant('delete' as const), id })
)
/** Records with increasing seqs (gaps stand for checkpoint records, which the stream leaves out). */
const records: fc.Arbitrary<LogRecord[]> = fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), fc.oneof(entry, fc.array(entry, { minLength: 1, maxLength: 6 }))), { maxLength: 40 })
  .map(steps => {
    let seq = 0
    return steps.map(([gap, body]) => {
      seq += gap
      return Array.isArray(body) ? { seq, op: 'batch' as const, entries: body } : { seq, ...body }
    })
  })

t.test('applying records leaves what a plain replay leaves, and the exact search answers nearest first', async t => {
  fc.assert(fc.property(records, vector, (log, query) => {
    const index = VectorIndex.inMemory(SETTINGS)
    for (const record of log) index.apply(record)
    t.equal(index.digest(), plainReplay(log))
    t.equal(index.appliedSeq, log.length === 0 ? 0 : log[log.length - 1].seq)
    const exact = index.search(query, 3, true)
    t.equal(exact.length, Math.min(3, index.size))
    t.same(exact.map(n => n.distance), [...exact.map(n => n.distance)].sort((a, b) => a - b), 'nearest first')
  }), { numRuns: 100 })
})

t.test('many updates and deletes (the graph is built again once dead nodes outnumber live ones) leave what a plain replay leaves, through a save and load', async t => {
  const dir = tempDir(t, 'vecwal-vindex-unit-')
  // Few ids and thousands of entries: most of the graph's nodes die, again and again.
  const busy = fc.array(fc.oneof(
    fc.record({ op: fc.constantFrom('insert' as const, 'update' as const), id: fc.integer({ min: 0, max: 40 }).map(String), vector }),
    fc.record({ op: fc.constant('delete' as const), id: fc.integer({ min: 0, max: 40 }).map(String) })
  ), { minLength: 3000, maxLength: 4000 })
  await fc.assert(fc.asyncProperty(busy, busy, vector, async (first, second, query) => {
    fs.rmSync(dir, { recursive: true, force: true })
    const log: LogRecord[] = [{ seq: 1, op: 'batch', entries: first }, { seq: 2, op: 'batch', entries: second }]
    const index = VectorIndex.open(dir, SETTINGS)
    index.apply(log[0])
    index.save()
    index.close()
    const loaded = VectorIndex.open(dir, SETTINGS)
    loaded.apply(log[1])
    t.equal(loaded.digest(), plainReplay(log))
    t.same(loaded.search(query, loaded.size, false).map(n => n.id).sort(), loaded.ids(), 'the graph finds every id held, and no other')
    loaded.close()
  }), { numRuns: 5 })
})

t.test('a record at or before the applied seq is refused', async t => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 1e9 }), fc.integer({ min: 0, max: 1e9 }), vector, (seq, back, v) => {
    const index = VectorIndex.inMemory(SETTINGS)
    index.apply({ seq, op: 'insert', id: 'a', vector: v })
    t.throws(() => { index.apply({ seq: Math.max(0, seq - back), op: 'delete', id: 'a' }) }, new RegExp(`at or before the applied seq ${seq}`))
    t.equal(index.size, 1)
  }), { numRuns: 20 })
})

t.test('a vector of another length is not held, and counted', async t => {
  const otherLength = fc.float32Array({ minLength: 1, maxLength: 3 * DIMENSIONS, noNaN: true, noDefaultInfinity: true }).filter(v => v.length !== DIMENSIONS)
  fc.assert(fc.property(vector, otherLength, (v, other) => {
    const index = VectorIndex.inMemory(SETTINGS)
    index.apply({ seq: 1, op: 'insert', id: 'a', vector: v })
    index.apply({ seq: 2, op: 'update', id: 'a', vector: other })
    t.equal(index.size, 0)
    t.equal(index.wrongLengthEntries, 1)
  }), { numRuns: 20 })
})

t.test('a save loads back whole; what an unfinished save left is removed', async t => {
  const dir = tempDir(t, 'vecwal-vindex-unit-')
  await fc.assert(fc.asyncProperty(records, records, async (first, second) => {
    fs.rmSync(dir, { recursive: true, force: true })
    const index = VectorIndex.open(dir, SETTINGS)
    for (const record of first) index.apply(record)
    const savedSeq = index.save()
    const saved = { digest: index.digest(), ids: index.ids() }
    t.throws(() => VectorIndex.open(dir, SETTINGS), /another program holds/, 'one program at a time')
    // An unfinished save: a temporary state, never committed.
    const offset = savedSeq
    for (const record of second) index.apply({ ...record, seq: record.seq + offset })
    fs.writeFileSync(path.join(dir, 'state.msgpack.tmp'), 'partial')
    index.close()

    const loaded = VectorIndex.open(dir, SETTINGS)
    t.equal(loaded.savedSeq, savedSeq)
    t.equal(loaded.appliedSeq, savedSeq)
    t.equal(loaded.digest(), saved.digest)
    t.same(loaded.ids(), saved.ids)
    t.same(fs.readdirSync(dir).sort(), ['LOCK', 'state.msgpack'])
    // The loaded index goes on as the one that was never saved does.
    for (const record of second) loaded.apply({ ...record, seq: record.seq + offset })
    t.equal(loaded.digest(), index.digest())
    for (const held of loaded.ids()) t.ok(loaded.search(new Float32Array(DIMENSIONS), loaded.size, false).some(n => n.id === held), `${held} found by the graph`)
    loaded.close()
  }), { numRuns: 20 })
})

t.test('a graph saved, loaded and extended answers every HNSW search as one built in one go', async t => {
  const dir = tempDir(t, 'vecwal-vindex-unit-')
  // A sparse graph searched with few candidates: small enough to be quick, yet its approximate
  // answers depend on how the graph was built (when a load read usearch's own graph file and went
  // on from it, 9 of 10 runs of this property found answers that differ).
  const settings: IndexSettings = { dimensions: 8, connectivity: 4, expansionAdd: 32, expansionSearch: 4 }
  const wide = fc.float32Array({ minLength: 8, maxLength: 8, noNaN: true, noDefaultInfinity: true, min: -1, max: 1 })
  const ids = fc.integer({ min: 0, max: 499 }).map(String)
  const batch = fc.array(fc.oneof(
    { weight: 8, arbitrary: fc.record({ op: fc.constantFrom('insert' as const, 'update' as const), id: ids, vector: wide }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), id: ids }) }
  ), { minLength: 1, maxLength: 60 })
  const log = fc.array(batch, { minLength: 20, maxLength: 30 }).map(batches => batches.map((entries, i): LogRecord => ({ seq: i + 1, op: 'batch', entries })))
  await fc.assert(fc.asyncProperty(log, fc.array(fc.nat(), { minLength: 1, maxLength: 3 }), fc.array(wide, { minLength: 50, maxLength: 50 }), async (records, cuts, queries) => {
    fs.rmSync(dir, { recursive: true, force: true })
    const reference = VectorIndex.inMemory(settings)
    for (const record of records) reference.apply(record)
    // Saved and loaded again after each cut, as a program killed there and started again would be.
    const saveAfter = new Set(cuts.map(cut => cut % records.length))
    let index = VectorIndex.open(dir, settings)
    records.forEach((record, i) => {
      index.apply(record)
      if (!saveAfter.has(i)) return
      index.save()
      index.close()
      index = VectorIndex.open(dir, settings)
    })
    t.equal(index.digest(), reference.digest())
    const answers = (of: VectorIndex): string[][] => queries.map(query => of.search(query, 10, false).map(n => n.id))
    t.same(answers(index), answers(reference), 'the same ids, in the same order, for every query')
    index.close()
  }), { numRuns: 10 })
})

t.test('a save made for other dimensions is refused', async t => {
  const dir = tempDir(t, 'vecwal-vindex-unit-')
  const index = VectorIndex.open(dir, SETTINGS)
  index.save()
  index.close()
  t.throws(() => VectorIndex.open(dir, { ...SETTINGS, dimensions: DIMENSIONS + 1 }), /holds 4-dimensional vectors, not 5/)
})

t.test('a save of the older form (no graph nodes) is refused, saying what to do', async t => {
  const dir = tempDir(t, 'vecwal-vindex-unit-')
  const index = VectorIndex.open(dir, SETTINGS)
  index.save()
  index.close()
  const file = path.join(dir, 'state.msgpack')
  const { nodeKeys: _keys, nodeVectors: _vectors, ...older } = unpack(fs.readFileSync(file)) as Record<string, unknown>
  fs.writeFileSync(file, pack(older))
  t.throws(() => VectorIndex.open(dir, SETTINGS), /a save of an older form \(no graph nodes\)/)
})

t.test('the query routes answer, and refuse bad input naming the field', async t => {
  // Small values, so that a vector shifted by 1000 in every value is the far one.
  const small = fc.float32Array({ minLength: DIMENSIONS, maxLength: DIMENSIONS, noNaN: true, noDefaultInfinity: true, min: -100, max: 100 })
  await fc.assert(fc.asyncProperty(small, async near => {
    const far = near.map(x => x + 1000)
    const index = VectorIndex.inMemory(SETTINGS)
    index.apply({ seq: 1, op: 'batch', entries: [{ op: 'insert', id: 'near', vector: near }, { op: 'insert', id: 'far', vector: far }] })
    const { server, url } = await startQueryServer(index, { checkpointedSeq: 0 }, 0)
    try {
      const get = async (route: string): Promise<{ status: number, body: Record<string, any> }> => {
        const res = await fetch(`${url}${route}`)
        return { status: res.status, body: await res.json() as Record<string, any> }
      }
      for (const exact of ['true', 'false']) {
        const knn = await get(`/knn?vector=${Array.from(near).join(',')}&k=2&exact=${exact}`)
        t.equal(knn.status, 200)
        t.same(knn.body.neighbours.map((n: { id: string }) => n.id), ['near', 'far'], `exact=${exact}`)
        t.equal(knn.body.neighbours[0].distance, 0, 'the query is the near vector itself')
      }
      t.same((await get('/state')).body, { appliedSeq: 1, savedSeq: 0, checkpointedSeq: 0, size: 2, wrongLengthEntries: 0 })
      t.same((await get('/digest')).body, { appliedSeq: 1, digest: index.digest() })
      t.same((await get('/ids')).body, ['far', 'near'])
      const good = Array.from(near).join(',')
      const short = Array.from(near.subarray(1)).join(',')
      for (const [query, field] of [['', 'vector'], [`vector=${short}`, 'vector'], [`vector=${short},x`, 'vector'], [`vector=${short},1e39`, 'vector'], [`vector=${good}&k=0`, 'k'], [`vector=${good}&k=1.5`, 'k'], [`vector=${good}&exact=yes`, 'exact']]) {
        const answer = await get(`/knn?${query}`)
        t.equal(answer.status, 400, query)
        t.match(answer.body.error, new RegExp(`^${field}:`), query)
      }
      t.equal((await get('/nothing')).status, 404)
    } finally {
      server.close()
    }
  }), { numRuns: 10 })
})
