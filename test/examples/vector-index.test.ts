// The vector index example kept by a real service, both killed -9 at random moments while 50,000
// vectors are written through the typed client: at the end the log holds every request once, and the
// index holds, and answers, what one built from the final log without any crash holds (see
// test/helpers/vector-index-crash.ts for what is compared).
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import fc from 'fast-check'
import t from 'tap'
import { VectorIndex } from '../../examples/vector-index/vector-index.js'
import { startChild } from '../helpers/child-service.js'
import { IndexProcess, runVectorIndexCrash, vectorIndexFailures, type VectorIndexCrashOptions } from '../helpers/vector-index-crash.js'
import { tempDir } from '../helpers/wal.js'

t.test('the vector index survives kill -9 of itself and of the service, and answers as an index built without crashes', async t => {
  const root = tempDir(t, 'vecwal-vindex-')
  const options: VectorIndexCrashOptions = {
    root,
    entries: 50_000,
    dimensions: 16,
    kills: 5,
    catchUpKills: 2,
    queries: 50,
    seed: Math.floor(Math.random() * 2 ** 31),
    deadline: Date.now() + 150_000
  }
  const result = await runVectorIndexCrash(options)
  t.comment(JSON.stringify(result))
  t.same(vectorIndexFailures(result, options), [], `seed ${options.seed}: every check passed`)
})

t.test('the index program stops, its save kept, when the log ends before its saved seq (not the log it was built from)', async t => {
  const root = tempDir(t, 'vecwal-vindex-')
  const dimensions = 4
  const settings = { dimensions, connectivity: 8, expansionAdd: 16, expansionSearch: 16 }
  const saved = VectorIndex.open(path.join(root, 'index'), settings)
  const [vector] = fc.sample(fc.float32Array({ minLength: dimensions, maxLength: dimensions, noNaN: true, noDefaultInfinity: true }), 1)
  saved.apply({ seq: 7, op: 'insert', id: 'a', vector })
  saved.save()
  saved.close()
  const service = await startChild({ dataDir: path.join(root, 'log') })
  t.teardown(async () => { await service.kill9() })
  const program = new IndexProcess(['--log', service.url, '--dir', path.join(root, 'index'), '--dimensions', String(dimensions), '--port', '0'])
  t.teardown(async () => { await program.kill9() })
  // A timer that does not keep the test alive once the program has exited.
  const gaveUp = new AbortController()
  const exit = await Promise.race([program.exited, delay(60_000, undefined, { signal: gaveUp.signal, ref: false }).catch(() => undefined)])
  gaveUp.abort()
  t.same(exit, { code: 1, signal: null }, 'it exits with 1')
  t.match(program.output, /"event":"log gone","message":"following after 7: 416 WAL_RANGE_AHEAD"/)
  const reopened = VectorIndex.open(path.join(root, 'index'), settings)
  t.teardown(() => { reopened.close() })
  t.equal(reopened.savedSeq, 7, 'the save is as it was')
  t.same(reopened.ids(), ['a'])
})
