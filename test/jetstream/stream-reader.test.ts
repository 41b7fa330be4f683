// The JetStream reader (src/jetstream/stream-reader.ts) against a stream whose server starts a
// consumer before the seq it was asked for, as nats-server 2.9 does under load when it puts the
// read's R1 consumer on a replica that has not yet applied the stream's messages (it starts at that
// replica's first: seen in CI, a read after seq 1 was given seq 1 and refused it as damage). A real
// cluster does it too rarely to test, so the stream here is a small stand-in that hands out its
// messages from where it chooses, in fetches of at most 100, as the client does.
import fc from 'fast-check'
import t from 'tap'
import type { JetStreamClient } from '@nats-io/jetstream'
import { encodeEntry } from '../../src/payload/payload.js'
import { readStream, TYPE_HEADER, type StreamItem, type StreamSource } from '../../src/jetstream/stream-reader.js'

const FETCH_MESSAGES = 100

interface StoredMessage { seq: number, type: number, data: Uint8Array }

/** A stream of `count` entry records whose consumers start where `startOf` says, given the seq asked for. */
function streamSource (messages: StoredMessage[], startOf: (asked: number) => number): StreamSource {
  const consumers = {
    get: async (_stream: string, options: { opt_start_seq?: number }) => {
      let cursor = startOf(options.opt_start_seq ?? 1)
      return {
        fetch: async () => {
          const batch = messages.filter(m => m.seq >= cursor).slice(0, FETCH_MESSAGES)
          cursor = (batch.at(-1)?.seq ?? cursor - 1) + 1
          return Object.assign((async function * () {
            for (const m of batch) yield { seq: m.seq, time: new Date(1_700_000_000_000 + m.seq), headers: { get: (name: string) => name === TYPE_HEADER ? String(m.type) : undefined }, data: m.data }
          })(), { close: async () => {} })
        },
        delete: async () => true,
        info: async () => ({ num_pending: messages.filter(m => m.seq >= cursor).length })
      }
    }
  }
  return { js: { consumers } as unknown as JetStreamClient, stream: 'stand-in', fetchBytes: 1 << 20, timeoutMs: 1000 }
}

function entryMessages (count: number): StoredMessage[] {
  return Array.from({ length: count }, (_, i) => {
    const payload = encodeEntry({ op: 'delete', id: `e${i + 1}` })
    return { seq: i + 1, type: payload.type, data: payload.bytes }
  })
}

async function seqsOf (items: AsyncIterable<StreamItem>): Promise<number[]> {
  const seqs: number[] = []
  for await (const item of items) if (typeof item !== 'symbol') seqs.push(item.seq)
  return seqs
}

t.test('a consumer that starts early: the read passes over what lies before its start and gives exactly the range', async t => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 320 }), fc.nat(), fc.nat(), fc.option(fc.integer({ min: 1, max: 150 }), { nil: undefined }), async (count, afterPick, earlyPick, limit) => {
    const after = afterPick % count
    // Anywhere from the stream's first message to the seq asked for.
    const source = streamSource(entryMessages(count), asked => 1 + (earlyPick % asked))
    const got = await seqsOf(readStream(source, { from: after + 1, to: count, limit: limit ?? Number.POSITIVE_INFINITY, includeCheckpoints: false }))
    const want = Array.from({ length: Math.min(count - after, limit ?? count) }, (_, i) => after + 1 + i)
    if (got.join() !== want.join()) throw new Error(`after ${after} of ${count}: ${got.join()}`)
    return true
  }), { numRuns: 200 })
  t.pass('held for 200 generated streams and starts')
})

t.test('what is not before the start is never passed over: a start past the seq asked for is a range gone, a missing message damage', async t => {
  const range = { from: 4, to: 10, limit: Number.POSITIVE_INFINITY, includeCheckpoints: false }
  await t.rejects(seqsOf(readStream(streamSource(entryMessages(10), asked => asked + 2), range)), { code: 'WAL_RANGE_GONE' }, 'started past the seq asked for')
  const holed = entryMessages(10).filter(m => m.seq !== 6)
  await t.rejects(seqsOf(readStream(streamSource(holed, () => 1), range)), { code: 'WAL_CORRUPT' }, 'a message missing after the start')
})
