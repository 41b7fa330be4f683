// The client's follow iterator and named consumers against the real service on 127.0.0.1: every
// record once and in order while writers post (NDJSON and msgpack); across a kill -9 and restart of
// the service in the middle of a followed stream, nothing lost or repeated; across a kill -9 in the
// middle of keyed writes, each write exactly once. Entries are generated (fast-check).
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { VecwalClient, type Entry, type FollowedRecord, type FollowFormat } from '../../src/client/index.js'
import { entry as anyEntry, float32Bits } from '../helpers/bodies.js'
import { ChildService, startChild } from '../helpers/child-service.js'
import { ndjson, startTestService } from '../helpers/http.js'
import { tempDir } from '../helpers/wal.js'

/** Generated entries with distinct ids (the position first), so that each write can be told apart. */
function generated (count: number): Entry[] {
  return fc.sample(anyEntry, count).map((e, i) => ({ ...e, id: `${i}:${Array.from(e.id).slice(0, 100).join('')}` }) as Entry)
}

/** A followed record holds the entry written under its seq: same id, same vector values (msgpack: the same float32 bits, as a Float32Array). */
function checkRecord (t: Test, record: FollowedRecord, written: Entry, format: FollowFormat): void {
  t.equal(record.id, written.id, `seq ${record.seq}: its id`)
  if (!('vector' in written)) return
  if (format === 'msgpack') {
    t.ok(record.vector instanceof Float32Array, 'msgpack: a Float32Array')
    t.same(float32Bits(record.vector as Float32Array), float32Bits(written.vector), `seq ${record.seq}: its vector's bits`)
  } else {
    t.same((record.vector as number[]).map(Math.fround), Array.from(written.vector), `seq ${record.seq}: its vector`)
  }
}

/** A retry policy patient enough to outlast a restart of the service. */
const PATIENT = { attempts: 100, maxElapsedMs: 15_000, baseDelayMs: 20, maxDelayMs: 200 }

for (const format of ['ndjson', 'msgpack'] as const) {
  t.test(`${format}: follow yields every record once, in order, while writers post`, async t => {
    const service = await startTestService(t, { VECWAL_HEARTBEAT_MS: '20' })
    const client = new VecwalClient({ baseUrl: service.url, encoding: format === 'msgpack' ? 'msgpack' : 'json' })
    const list = generated(60)
    const bySeq = new Map<number, Entry>()
    const following = (async () => {
      const seen: FollowedRecord[] = []
      for await (const record of client.follow({ after: 0, format, limit: list.length })) seen.push(record)
      return seen
    })()
    // Awaited below; a writer's failure first must not leave this rejection unhandled.
    following.catch(() => {})
    // Three writers at once, each with its share; a pause now and then lets heartbeats go out.
    await Promise.all([0, 1, 2].map(async w => {
      for (let i = w; i < list.length; i += 3) {
        bySeq.set((await client.append(list[i])).seq, list[i])
        if (i % 10 === w) await new Promise(resolve => setTimeout(resolve, 50))
      }
    }))
    const seen = await following
    t.same(seen.map(r => r.seq), list.map((_, i) => i + 1), 'seqs 1..n, each once, in order')
    for (const record of seen) checkRecord(t, record, bySeq.get(record.seq) as Entry, format)
  })
}

t.test('named consumers: create, checkpoint, read; follow starts after its checkpoint', async t => {
  const service = await startTestService(t)
  const client = new VecwalClient({ baseUrl: service.url })
  const list = generated(6)
  for (const e of list) await client.append(e)
  const consumer = client.consumer('idx-1')
  t.match(await consumer.create(2), { name: 'idx-1', checkpoint: 2, start: 2, lagSeqs: 4 })
  t.match(await consumer.create(2), { checkpoint: 2 }, 'created again at its start: changes nothing')
  t.match(await consumer.checkpoint(4), { checkpoint: 4, superseded: false })
  t.match(await consumer.get(), { checkpoint: 4, lagSeqs: 2 })
  const seen: number[] = []
  for await (const record of client.follow({ consumer: 'idx-1', limit: 2 })) seen.push(record.seq)
  t.same(seen, [5, 6], 'after its checkpoint')
  t.match(await consumer.checkpoint(1).catch((err: unknown) => err), { status: 409, code: 'WAL_CHECKPOINT_BACKWARDS' })
  t.match(await client.consumer('none').get().catch((err: unknown) => err), { status: 404, code: 'WAL_CONSUMER_NOT_FOUND' })
})

/** Kills the child with SIGKILL and starts the service again on the same port and data dir. */
async function killAndRestart (child: ChildService, dataDir: string, env: Record<string, string>): Promise<ChildService> {
  await child.kill9()
  const again = ChildService.spawn({ dataDir, env }, child.port)
  await again.ready(15_000)
  return again
}

for (const format of ['ndjson', 'msgpack'] as const) {
  t.test(`${format}: a kill -9 of the service in the middle of a followed stream: the iterator resumes, nothing lost or repeated`, async t => {
    const dataDir = tempDir(t)
    const env = { VECWAL_HEARTBEAT_MS: '50' }
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
  let child = await startChild({ dataDir })
  t.teardown(async () => { await child.kill9() })
  const client = new VecwalClient({ baseUrl: child.url, retry: PATIENT })
  const list = generated(40)
  const killAfter = fc.sample(fc.integer({ min: 1, max: 20 }), 1)[0]
  let answered = 0
  let restarted: Promise<void> | undefined
  const results = await Promise.all(list.map(async e => {
    const result = await client.append(e)
    if (++answered === killAfter) restarted = killAndRestart(child, dataDir, {}).then(c => { child = c })
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
