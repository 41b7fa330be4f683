// The client against a real child service killed with SIGKILL and started again on the same port
// and data dir (on JetStream: the same stream, test/jetstream/client.test.ts): in the middle of a
// followed stream, the iterator resumes after the last seq it yielded, nothing lost or repeated;
// in the middle of keyed appends, batches and transactions, each write lands exactly once.
import fc from 'fast-check'
import t from 'tap'
import { VecwalClient, VecwalError, type Entry, type FollowedRecord } from '../../src/client/index.js'
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

/** One write of the mix: an append, a batch or a transaction, and the entries it carries. */
interface Write { kind: 'append' | 'batch' | 'transaction', entries: Entry[] }

/**
 * Sends `write` until it is answered: the client retries each with its key; a transaction whose
 * instance was killed (its stage unanswered, or its commit finding it gone) starts again, as the
 * README tells a client to. Resolves with the seq answered and how often it started again.
 */
async function send (client: VecwalClient, write: Write): Promise<{ seq: number, restarts: number }> {
  if (write.kind === 'append') return { seq: (await client.append(write.entries[0])).seq, restarts: 0 }
  if (write.kind === 'batch') return { seq: (await client.appendBatch(write.entries)).seq, restarts: 0 }
  for (let restarts = 0; ; restarts++) {
    try {
      const tx = await client.transaction()
      const half = Math.ceil(write.entries.length / 2)
      await tx.stage(write.entries.slice(0, half))
      await tx.stage(write.entries.slice(half))
      return { seq: (await tx.commit()).seq, restarts }
    } catch (err) {
      const gone = err instanceof VecwalError && (err.status === undefined || err.code === 'WAL_TX_NOT_FOUND')
      if (!gone || restarts >= 20) throw err
    }
  }
}

t.test('a kill -9 in the middle of keyed appends, batches and transaction commits: each write exactly once', async t => {
  const dataDir = tempDir(t)
  const env = backendEnv(t, dataDir)
  let child = await startChild({ dataDir, env })
  t.teardown(async () => { await child.kill9() })
  const client = new VecwalClient({ baseUrl: child.url, retry: PATIENT })
  const list = generated(100)
  const kinds = fc.sample(fc.constantFrom('append', 'batch', 'transaction'), 40) as Array<Write['kind']>
  const writes: Write[] = []
  for (let used = 0; writes.length < kinds.length; used += writes[writes.length - 1].entries.length) {
    const kind = kinds[writes.length]
    writes.push({ kind, entries: list.slice(used, used + (kind === 'append' ? 1 : 2)) })
  }
  const killAfter = fc.sample(fc.integer({ min: 1, max: 20 }), 1)[0]
  let answered = 0
  let restarted: Promise<void> | undefined
  const results = await Promise.all(writes.map(async write => {
    const result = await send(client, write)
    if (++answered === killAfter) restarted = killAndRestart(child, dataDir, env).then(c => { child = c })
    return result
  }))
  await restarted
  t.ok(restarted !== undefined, `killed after ${killAfter} answers; ${results.filter(r => r.restarts > 0).length} transactions started again`)
  const records = await ndjson(await fetch(`${child.url}/v1/recovery?after=0`))
  const idsOf = (record: Record<string, unknown>): string => JSON.stringify(record.op === 'batch' ? (record.entries as Array<{ id: string }>).map(e => e.id) : [record.id])
  t.equal(records.length, writes.length, 'one record a write')
  t.same(records.map(idsOf).sort(), writes.map(w => JSON.stringify(w.entries.map(e => e.id))).sort(), 'each write\'s entries exactly once, together')
  t.same(new Set(results.map(r => r.seq)).size, writes.length, 'each write answered its own seq')
  for (const [i, result] of results.entries()) {
    const record = records[result.seq - 1]
    t.equal(idsOf(record), JSON.stringify(writes[i].entries.map(e => e.id)), `write ${i} (${writes[i].kind}): its seq holds it`)
    t.equal(typeof record.txId === 'string', writes[i].kind === 'transaction', `write ${i}: a transaction's record names its txId, no other does`)
  }
})
