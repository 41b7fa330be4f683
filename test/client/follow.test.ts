// The client's follow iterator and named consumers against the real service on 127.0.0.1: every
// record once and in order while writers post (NDJSON, msgpack and SSE, heartbeats between them); a
// consumer's create, checkpoint and state, and a follow from its checkpoint. Entries are generated.
import t from 'tap'
import { VecwalClient, type Entry, type FollowedRecord } from '../../src/client/index.js'
import { checkRecord, generated } from '../helpers/client-follow.js'
import { startTestService } from '../helpers/http.js'

for (const format of ['ndjson', 'msgpack', 'sse'] as const) {
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
