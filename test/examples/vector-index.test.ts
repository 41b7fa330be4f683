// The vector index example kept by a real service, both killed -9 at random moments while 50,000
// vectors are written: at the end the index holds what one built from the final log without any
// crash holds (see test/helpers/vector-index-crash.ts for what is compared, and why).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { runVectorIndexCrash, vectorIndexFailures, type VectorIndexCrashOptions } from '../helpers/vector-index-crash.js'

t.test('the vector index survives kill -9 of itself and of the service, and answers as an index built without crashes', async t => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vecwal-vindex-'))
  t.teardown(() => { fs.rmSync(root, { recursive: true, force: true }) })
  const options: VectorIndexCrashOptions = {
    root,
    entries: 50_000,
    dimensions: 16,
    kills: 8,
    catchUpKills: 2,
    queries: 50,
    seed: Math.floor(Math.random() * 2 ** 31),
    deadline: Date.now() + 150_000
  }
  const result = await runVectorIndexCrash(options)
  t.comment(JSON.stringify(result))
  t.same(vectorIndexFailures(result, options), [], `seed ${options.seed}: every check passed`)
})
