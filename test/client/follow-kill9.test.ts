// The client against a real child service killed with SIGKILL and started again on the same port
// and data dir (on JetStream: the same stream, test/jetstream/client.test.ts): in the middle of a
// followed stream, the iterator resumes after the last seq it yielded, nothing lost or repeated;
// in the middle of keyed writes, each write lands exactly once.
import fc from 'fast-check'
import t from 'tap'
import { VecwalClient, type Entry, type FollowedRecord } from '../../src/client/index.js'
import { ChildService, startChild } from '../helpers/child-service.js'
import { checkRecord, generated, PATIENT } from '../helpers/client-follow.js'
import { backendEnv, ndjson } from '../helpers/http.js'
import { tempDir } from '../helpers/wal.js'

/** Kills the child with SIGKILL and starts the service again on the same port and data dir. */
async function killAndRestart (child: ChildService, dataDir: string, env: Record<string, string>): Promise<ChildService> {
  await child.kill9()
  const again = ChildService.spawn({ dataDir, env }, child.port)
  await again.ready(15_000)
  return again
}

for (const format of ['ndjson', 'msgpack', 'sse'] as const) {
  t.test(`${format}: a kill -9 of the service in the middle of a followed stream: the iterator resumes, nothing lost or repeated`, async t => {
    const dataDir = tempDir(t)
    const env = { ...backendEnv(t, dataDir), VECWAL_HEARTBEAT_MS: '50' }
    let child = await startChild({ dataDir, env })
    t.teardown(async () => { await child.kill9() })
    const client = new VecwalClient({ baseUrl: child.url, retry: PATIENT, encoding: format === 'msgpack' ? 'msgpack' : 'json' })
    const list = generated(40)
    const bySeq = new Map<number, Entry>()
    const killAt = fc.sample(fc.integer({ min: 5, max: 30 }), 1)[0]
    let restarted: Promise<void> | undefined
    const following = (async () => {
      const seen: FollowedRecord[] = []
      for await (const record of client.follow({ after: 0, format, limit: list.length })) {
        seen.push(record)
        if (seen.length === killAt) restarted = killAndRestart(child, dataDir, env).then(c => { child = c })
      }
      return seen
    })()
    // Awaited below; a writer's failure first must not leave this rejection unhandled.
    following.catch(() => {})
    for (const e of list) bySeq.set((await client.append(e)).seq, e)
    const seen = await following
    await restarted
    t.ok(restarted !== undefined, `killed after ${killAt} records`)
    t.same(seen.map(r => r.seq), list.map((_, i) => i + 1), 'seqs 1..n, each once, in order')
    for (const record of seen) checkRecord(t, record, bySeq.get(record.seq) as Entry, format)
  })
}

t.test('a kill -9 in the middle of a batch of keyed writes: each write exactly once', async t => {
  const dataDir = tempDir(t)
  const env = backendEnv(t, dataDir)
  let child = await startChild({ dataDir, env })
  t.teardown(async () => { await child.kill9() })
  const client = new VecwalClient({ baseUrl: child.url, retry: PATIENT })
  const list = generated(40)
  const killAfter = fc.sample(fc.integer({ min: 1, max: 20 }), 1)[0]
  let answered = 0
  let restarted: Promise<void> | undefined
  const results = await Promise.all(list.map(async e => {
    const result = await client.append(e)
    if (++answered === killAfter) restarted = killAndRestart(child, dataDir, env).then(c => { child = c })
    return result
  }))
  await restarted
  t.ok(restarted !== undefined, `killed after ${killAfter} answers`)
  const records = await ndjson(await fetch(`${child.url}/v1/recovery?after=0`))
  t.equal(records.length, list.length, 'one record a write')
  t.same(records.map(r => r.id).sort(), list.map(e => e.id).sort(), 'each id exactly once')
  t.same(new Set(results.map(r => r.seq)).size, list.length, 'each write answered its own seq')
  for (const [i, result] of results.entries()) t.equal(records[result.seq - 1].id, list[i].id, `write ${i}: its seq holds it`)
})
