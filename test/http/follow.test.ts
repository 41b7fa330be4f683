// GET /v1/recovery?follow=true over a real server: every record exactly once and in order in all
// three forms while writers post concurrently across segment rotation, and while retention deletes
// the segments behind them; heartbeats keep an idle follower past the idle timeout; long poll, which
// checkpoint and consumer records do not answer; the stream cap; shutdown and the failed state end
// followers each with their own last line; SSE's Last-Event-ID.
import { once } from 'node:events'
import http, { type IncomingMessage } from 'node:http'
import t from 'tap'
import fc from 'fast-check'
import { Packr, unpackMultiple } from 'msgpackr'
import { entry, entryBody, type Entry } from '../helpers/bodies.js'
import { assertError, failingIO, onJetStream, recoverAll, startTestService, type TestService } from '../helpers/http.js'
import { ACCEPT, holds, openStream, parseFollowed, type FollowForm } from '../helpers/follow.js'

const FORMS: readonly FollowForm[] = ['ndjson', 'msgpack', 'sse']
const keepOrder = (keys: string[]): string[] => keys

async function post (service: TestService, e: Entry): Promise<number> {
  const response = await service.call('POST', '/v1/entries', entryBody(e, 'json', keepOrder).toString())
  if (response.status !== 201) throw new Error(`the write answered ${response.status}: ${await response.text()}`)
  return ((await response.json()) as { seq: number }).seq
}

t.test('followers of each form get every record once, in order, across rotation, then a shutdown line', async t => {
  const service = await startTestService(t, { VECWAL_SEGMENT_BYTES: '4096', VECWAL_HEARTBEAT_MS: '20' })
  const generated = fc.sample(entry, { numRuns: 160, seed: 1212 })
  for (const e of generated.slice(0, 10)) await post(service, e)
  const followers = await Promise.all(FORMS.map(async form => await openStream(service.url, '/v1/recovery?after=2&follow=true', { accept: ACCEPT[form] })))
  for (const f of followers) t.equal(f.status, 200)
  // Four writers at once: their fsyncs are shared, their records interleave.
  await Promise.all([0, 1, 2, 3].map(async w => {
    for (let i = 10 + w; i < generated.length; i += 4) await post(service, generated[i])
  }))
  const expected = await recoverAll(service, 2)
  const last = expected.at(-1)?.seq as number
  if (!onJetStream()) t.ok((service.log.status().segments?.length ?? 0) > 5, 'several rotations happened while the followers read')
  await Promise.all(FORMS.map(async (form, i) => { await followers[i].until(holds(form, last)) }))
  await service.stop()
  for (const [i, form] of FORMS.entries()) {
    const got = parseFollowed(form, await followers[i].ended)
    t.same(got.records.map(r => r.seq), expected.map(r => r.seq), `${form}: every seq once, in order`)
    t.same(got.end, { end: 'shutdown' }, `${form}: the last line says the server stopped`)
    if (form === 'ndjson') t.same(got.records, expected, 'NDJSON: the lines a bounded read gives')
    if (form === 'sse') {
      t.same(got.ids, expected.map(r => String(r.seq)), 'SSE: each event\'s id is its seq')
      t.equal(got.retry, 1000, 'SSE: retry is set')
    }
  }
})

/**
 * The highest seq a follow stream of `form` has delivered whole. Each call reads on from where the
 * one before stopped, so that a test can ask often while the stream grows.
 */
function deliveredSeq (form: FollowForm): (bytes: Buffer) => number {
  let offset = 0
  let seq = 0
  const take = (value: unknown): void => {
    const found = (value as { seq?: unknown } | null | undefined)?.seq
    if (typeof found === 'number') seq = found
  }
  return bytes => {
    const rest = bytes.subarray(offset)
    if (form === 'msgpack') {
      let whole = 0
      try {
        unpackMultiple(rest, (value: unknown, _start?: number, end?: number) => {
          take(value)
          whole = end ?? whole
        })
      } catch {
        // The last value has not all come yet: the next call reads it.
      }
      offset += whole
    } else {
      const boundary = form === 'ndjson' ? '\n' : '\n\n'
      const cut = rest.lastIndexOf(boundary)
      if (cut >= 0) {
        take(parseFollowed(form, rest.subarray(0, cut + boundary.length)).records.at(-1))
        offset += cut + boundary.length
      }
    }
    return seq
  }
}

t.test('followers from seq 0 get every record once, in order, while retention deletes the segments behind them', async t => {
  const service = await startTestService(t, { VECWAL_SEGMENT_BYTES: '4096', VECWAL_HEARTBEAT_MS: '20' })
  const generated = fc.sample(entry, { numRuns: 168, seed: 1213 })
  const written: number[] = []
  for (const e of generated.slice(0, 8)) written.push(await post(service, e))
  t.equal((await service.call('PUT', '/v1/consumers/reader', {})).status, 201, 'a consumer, at the start of the log')
  const followers = await Promise.all(FORMS.map(async form => await openStream(service.url, '/v1/recovery?after=0&follow=true', { accept: ACCEPT[form] })))
  for (const f of followers) t.equal(f.status, 200)
  const delivered = FORMS.map(form => deliveredSeq(form))
  const slowest = (): number => Math.min(...followers.map((f, i) => delivered[i](f.bytes())))
  // The consumer checkpoints what every follower has got, as it goes: retention deletes segments
  // behind the followers while they read, never ahead of them (that would rightly end them "gone").
  let writing = true
  let deletedSegments = 0
  const checkpointing = (async () => {
    const deadline = Date.now() + 60_000
    for (let at = 0; (writing || at < Math.max(...written)) && Date.now() < deadline;) {
      const seen = slowest()
      if (seen > at) {
        const response = await service.call('POST', '/v1/consumers/reader/checkpoint', { seq: seen })
        if (response.status !== 201) throw new Error(`the checkpoint answered ${response.status}: ${await response.text()}`)
        deletedSegments += ((await response.json()) as { deletedSegments: number }).deletedSegments
        at = seen
      } else {
        await new Promise(resolve => setTimeout(resolve, 20))
      }
    }
  })()
  // Four writers at once: their fsyncs are shared, their records interleave.
  await Promise.all([0, 1, 2, 3].map(async w => {
    for (let i = 8 + w; i < generated.length; i += 4) written.push(await post(service, generated[i]))
  }))
  writing = false
  await checkpointing
  const expected = [...written].sort((a, b) => a - b)
  const last = expected.at(-1) as number
  await Promise.all(FORMS.map(async (form, i) => { await followers[i].until(holds(form, last)) }))
  t.ok(deletedSegments > 0, `retention deleted ${deletedSegments} ${onJetStream() ? 'messages' : 'segments'} behind the followers`)
  if (!onJetStream()) t.ok((service.log.status().segments?.[0].firstSeq ?? 0) > expected[0], 'the first records are gone from the log')
  await service.stop()
  for (const [i, form] of FORMS.entries()) {
    const got = parseFollowed(form, await followers[i].ended)
    t.same(got.records.map(r => r.seq), expected, `${form}: every seq once, in order`)
    t.same(got.end, { end: 'shutdown' }, `${form}: the last line says the server stopped`)
  }
})

t.test('an idle follower gets heartbeats and outlives the idle timeout', async t => {
  const service = await startTestService(t, { VECWAL_IDLE_TIMEOUT_MS: '400', VECWAL_HEARTBEAT_MS: '100' })
  const [one, two] = fc.sample(entry, { numRuns: 2, seed: 4 })
  await post(service, one)
  const followers = await Promise.all(FORMS.map(async form => await openStream(service.url, '/v1/recovery?after=0&follow=true', { accept: ACCEPT[form] })))
  // Several idle timeouts go by with no record.
  for (const [i, form] of FORMS.entries()) await followers[i].until(bytes => parseFollowed(form, bytes).heartbeats >= 8)
  const seq = await post(service, two)
  for (const [i, form] of FORMS.entries()) {
    await followers[i].until(holds(form, seq))
    const got = parseFollowed(form, followers[i].bytes())
    t.same(got.records.map(r => r.seq), [1, 2], `${form}: both records, heartbeats between them taken for none`)
    t.ok(got.heartbeats >= 8, `${form}: ${got.heartbeats} heartbeats`)
  }
  const raw = followers[0].bytes().toString()
  t.match(raw, /^\{"seq":1,[^\n]*\n\n+\{"seq":2,/, 'an NDJSON heartbeat is an empty line')
  t.match(followers[2].bytes().toString(), /\n: heartbeat\n\n/, 'an SSE heartbeat is a comment')
  t.ok(followers[1].bytes().includes(Buffer.from([0xc0, 0xc0])), 'a msgpack heartbeat is nil (0xc0)')
  for (const f of followers) f.close()
})

t.test('long poll: answers once a record comes, or empty when the time is up', async t => {
  const service = await startTestService(t)
  const [one, two] = fc.sample(entry, { numRuns: 2, seed: 6 })
  await post(service, one)
  const polling = service.call('GET', '/v1/recovery?after=1&wait=30')
  const seq = await post(service, two)
  const response = await polling
  t.equal(response.status, 200)
  t.same((await response.text()).split('\n').filter(l => l !== '').map(l => (JSON.parse(l) as { seq: number }).seq), [seq], 'the new record, long before 30 s')
  const empty = await service.call('GET', `/v1/recovery?after=${seq}&wait=1`)
  t.equal(empty.status, 200)
  t.equal(await empty.text(), '', 'nothing new within a second: an empty answer')
  await assertError(t, await service.call('GET', '/v1/recovery?wait=61'), 400, 'HTTP_INVALID_REQUEST', /wait/)
  await assertError(t, await service.call('GET', '/v1/recovery?wait=1&follow=true'), 400, 'HTTP_INVALID_REQUEST', /wait/)
  await assertError(t, await service.call('GET', '/v1/recovery?follow=yes'), 400, 'HTTP_INVALID_REQUEST', /follow/)
})

t.test('long poll: a checkpoint or consumer record does not answer it; an entry written during the wait does', async t => {
  const service = await startTestService(t)
  const [one, two] = fc.sample(entry, { numRuns: 2, seed: 14 })
  const first = await post(service, one)
  const seconds = 1
  const started = performance.now()
  const timedOut = service.call('GET', `/v1/recovery?after=${first}&wait=${seconds}`)
  t.equal((await service.call('POST', '/v1/checkpoints', { seq: first })).status, 201, 'a checkpoint during the wait')
  t.equal((await service.call('PUT', '/v1/consumers/reader', {})).status, 201, 'a consumer made during the wait')
  const empty = await timedOut
  const waited = performance.now() - started
  t.equal(empty.status, 200)
  t.equal(await empty.text(), '', 'an empty answer')
  t.ok(waited >= seconds * 1000 - 50, `it came when the ${seconds} s were up (${Math.round(waited)} ms), not at the checkpoint or the consumer`)

  let answered = false
  const polling = service.call('GET', `/v1/recovery?after=${first}&wait=30`).then(response => {
    answered = true
    return response
  })
  t.equal((await service.call('POST', '/v1/consumers/reader/checkpoint', { seq: first })).status, 201, 'a consumer\'s checkpoint during the wait')
  t.equal((await service.call('PUT', '/v1/consumers/another', {})).status, 201, 'another consumer made during the wait')
  await new Promise(resolve => setTimeout(resolve, 100))
  t.notOk(answered, 'they leave it waiting')
  const seq = await post(service, two)
  const response = await polling
  t.equal(response.status, 200)
  t.same((await response.text()).split('\n').filter(l => l !== '').map(l => (JSON.parse(l) as { seq: number }).seq), [seq], 'the entry answers it, alone')
})

t.test('followers count against VECWAL_MAX_STREAMS and show in vecwal_follow_streams', async t => {
  const service = await startTestService(t, { VECWAL_MAX_STREAMS: '2' })
  const followers = await Promise.all([0, 1].map(async () => await openStream(service.url, '/v1/recovery?after=0&follow=true')))
  const refused = await service.call('GET', '/v1/recovery?after=0&follow=true')
  await assertError(t, refused, 503, 'HTTP_TOO_MANY_STREAMS')
  t.equal(refused.headers.get('retry-after'), '1')
  t.match(await (await service.call('GET', '/metrics')).text(), /\nvecwal_follow_streams 2\n/)
  for (const f of followers) f.close()
  await Promise.all(followers.map(async f => await f.ended))
  // The route lets a follower go once its read has ended, just after the connection closed.
  let metrics = ''
  for (let tries = 0; tries < 100 && !/\nvecwal_follow_streams 0\n/.test(metrics); tries++) {
    metrics = await (await service.call('GET', '/metrics')).text()
  }
  t.match(metrics, /\nvecwal_follow_streams 0\n/, 'followers that left are counted no more')
})

t.test('long polls whose clients left take no stream slot: the cap\'s worth of followers still get in', async t => {
  const service = await startTestService(t, { VECWAL_MAX_STREAMS: '2' })
  // Three long polls, each left by its client while it waits.
  await Promise.all([0, 1, 2].map(async () => {
    const left = new AbortController()
    const poll = fetch(`${service.url}/v1/recovery?after=0&wait=30`, { signal: left.signal }).catch(() => undefined)
    await new Promise(resolve => setTimeout(resolve, 200))
    left.abort()
    await poll
  }))
  await service.call('POST', '/v1/entries', fc.sample(entry, 1)[0])
  const followers = await Promise.all([0, 1].map(async () => await openStream(service.url, '/v1/recovery?after=0&follow=true')))
  t.same(followers.map(f => f.status), [200, 200], 'the cap\'s worth of followers got in after the polls whose clients left')
  await assertError(t, await service.call('GET', '/v1/recovery?after=0&follow=true'), 503, 'HTTP_TOO_MANY_STREAMS')
  for (const f of followers) f.close()
  await Promise.all(followers.map(async f => await f.ended))
})

t.test('a follower with a limit ends after that many records with a limit line', async t => {
  const service = await startTestService(t)
  const generated = fc.sample(entry, { numRuns: 3, seed: 11 })
  await post(service, generated[0])
  const followers = await Promise.all(FORMS.map(async form => await openStream(service.url, '/v1/recovery?after=0&follow=true&limit=2', { accept: ACCEPT[form] })))
  await post(service, generated[1])
  await post(service, generated[2])
  for (const [i, form] of FORMS.entries()) {
    const got = parseFollowed(form, await followers[i].ended)
    t.same(got.records.map(r => r.seq), [1, 2], `${form}: two records`)
    t.same(got.end, { end: 'limit' }, `${form}: then the limit line`)
  }
})

t.test('a failed log ends followers with a failed line, after every durable record', { skip: onJetStream() ? 'the JetStream backend has no failed state (test/jetstream/faults.test.ts)' : false }, async t => {
  const { io, fail } = failingIO()
  const service = await startTestService(t, {}, undefined, { io })
  const [one, two] = fc.sample(entry, { numRuns: 2, seed: 8 })
  await post(service, one)
  const followers = await Promise.all(FORMS.map(async form => await openStream(service.url, '/v1/recovery?after=0&follow=true', { accept: ACCEPT[form] })))
  for (const [i, form] of FORMS.entries()) await followers[i].until(holds(form, 1))
  fail()
  const refused = await service.call('POST', '/v1/entries', entryBody(two, 'json', keepOrder).toString())
  t.equal(refused.status, 503)
  for (const [i, form] of FORMS.entries()) {
    const got = parseFollowed(form, await followers[i].ended)
    t.same(got.records.map(r => r.seq), [1], `${form}: the durable record only`)
    t.match(got.end, { end: 'failed', code: 'WAL_FAILED' }, `${form}: the last line says the log failed`)
  }
})

t.test('SSE: Last-Event-ID wins over after; a bounded read ends with a complete event', async t => {
  const service = await startTestService(t)
  for (const e of fc.sample(entry, { numRuns: 5, seed: 10 })) await post(service, e)
  const stream = await openStream(service.url, '/v1/recovery?after=0', { accept: ACCEPT.sse, 'last-event-id': '3' })
  const got = parseFollowed('sse', await stream.ended)
  t.same(got.ids, ['4', '5'], 'resumed after the Last-Event-ID')
  t.same(got.end, { end: 'complete' })
  await assertError(t, await service.call('GET', '/v1/recovery', undefined, { accept: ACCEPT.sse, 'last-event-id': 'x1' }), 400, 'HTTP_INVALID_REQUEST', /Last-Event-ID/)
})

t.test('a follower that retention passes (VECWAL_RETAIN_MAX_BYTES) ends with a gone line naming the oldest seq held', { skip: onJetStream() ? 'VECWAL_RETAIN_MAX_BYTES is the segment backend\'s (refused with jetstream at start)' : false }, async t => {
  const service = await startTestService(t, { VECWAL_SEGMENT_BYTES: '4096', VECWAL_RETAIN_MAX_BYTES: '65536', VECWAL_DIMENSIONS: '4096' })
  const vectors = fc.sample(fc.float32Array({ minLength: 4096, maxLength: 4096, noNaN: true, noDefaultInfinity: true }), { numRuns: 10, seed: 77 })
  const batch = new Packr({ moreTypes: true }).pack({ entries: vectors.map((vector, i) => ({ op: 'insert', id: `v${i}`, vector })) })
  const write = async (): Promise<void> => {
    const response = await service.call('POST', '/v1/batch', batch, { 'content-type': 'application/msgpack' })
    t.equal(response.status, 201, await response.text())
  }
  await write()
  // A follower that reads its first bytes, then stops reading: the socket's buffers fill, and the
  // server waits for them while the log grows and retention deletes what it has not reached.
  const { response, body } = await new Promise<{ response: IncomingMessage, body: Buffer[] }>((resolve, reject) => {
    http.get(`${service.url}/v1/recovery?after=0&follow=true`, response => {
      const body: Buffer[] = []
      response.on('data', (chunk: Buffer) => { body.push(chunk) })
      response.once('data', () => {
        response.pause()
        resolve({ response, body })
      })
    }).on('error', reject)
  })
  // 40 batches of 160 KiB on disk are some 16 MiB of NDJSON: more than loopback's buffers hold.
  for (let i = 0; i < 40; i++) await write()
  const oldest = service.log.status().segments?.[0].firstSeq as number
  t.ok(oldest > 2, `retention deleted up to seq ${oldest - 1}`)
  const ended = once(response, 'end')
  response.resume()
  await ended
  const lines = Buffer.concat(body).toString().split('\n').filter(line => line !== '')
  const last = JSON.parse(lines.at(-1) as string) as { end: string, code: string, message: string }
  t.match(last, { end: 'gone', code: 'WAL_RANGE_GONE' }, 'the last line says retention passed it')
  // Retention may have gone on since (it runs as each segment starts): the line names what was held then.
  const named = Number(/oldest retained seq is (\d+)/.exec(last.message)?.[1])
  t.ok(named >= oldest && named <= (service.log.status().segments?.[0].firstSeq as number), `it names the oldest seq held, ${named}`)
  const seqs = lines.slice(0, -1).map(line => (JSON.parse(line) as { seq: number }).seq)
  t.same(seqs, seqs.map((_, i) => i + 1), `the ${seqs.length} records before it came in order, none skipped`)
})
