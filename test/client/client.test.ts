// The typed client (vecwal/client) against a real service on 127.0.0.1: appends, batches and
// transactions in JSON and msgpack come back as written; refusals with Retry-After and calls whose
// answer never came are tried again with one idempotency key, within the policy's bounds; a call
// that may not be repeated is not. A proxy between them refuses, drops or loses answers on purpose.
import http from 'node:http'
import { isDeepStrictEqual } from 'node:util'
import type { AddressInfo } from 'node:net'
import fc from 'fast-check'
import t from 'tap'
import { VecwalClient, VecwalError, type Entry } from '../../src/client/index.js'
import { entry as entryArbitrary, float32Bits } from '../helpers/bodies.js'
import { asStored, recoverAll, sampleEntry, startTestService, type TestService } from '../helpers/http.js'
import type { TeardownTarget } from '../helpers/wal.js'

/** What the proxy does with one request. */
type Fate = 'forward' | 'refuse' | 'drop' | 'lose-answer'

interface Proxy {
  url: string
  /** Each request seen: its path and idempotency key. */
  seen: Array<{ url: string, key: string | undefined }>
}

/** `value` with each -0 as 0 and its objects' members in JSON.parse's order: as JSON.stringify would have sent it. */
function withoutNegativeZero (value: unknown): unknown {
  if (typeof value === 'number') return Object.is(value, -0) ? 0 : value
  if (Array.isArray(value)) return value.map(withoutNegativeZero)
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutNegativeZero(v)]))
  return value
}

/**
 * A proxy to `service` on 127.0.0.1 that deals with the n-th request (from 0) as `fate(n)` says:
 * forwards it, refuses it with 503 WAL_QUEUE_FULL and Retry-After `retryAfter`, drops the connection
 * before forwarding it, or forwards it and drops the connection instead of answering.
 */
async function startProxy (t: TeardownTarget, service: TestService, fate: (n: number) => Fate, retryAfter = '0'): Promise<Proxy> {
  const seen: Proxy['seen'] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const key = req.headers['idempotency-key']
      seen.push({ url: req.url ?? '', key: typeof key === 'string' ? key : undefined })
      const what = fate(seen.length - 1)
      if (what === 'drop') {
        req.socket.destroy()
        return
      }
      if (what === 'refuse') {
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': retryAfter })
        res.end(JSON.stringify({ statusCode: 503, code: 'WAL_QUEUE_FULL', error: 'Service Unavailable', message: 'the write queue is full' }))
        return
      }
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => !['host', 'connection', 'content-length'].includes(name))) as Record<string, string>
      const body = chunks.length === 0 ? undefined : Buffer.concat(chunks)
      void fetch(service.url + (req.url ?? ''), { method: req.method, headers, body }).then(async answer => {
        const bytes = Buffer.from(await answer.arrayBuffer())
        if (what === 'lose-answer') {
          req.socket.destroy()
          return
        }
        res.writeHead(answer.status, Object.fromEntries([...answer.headers].filter(([name]) => !['content-length', 'transfer-encoding', 'connection', 'keep-alive'].includes(name))))
        res.end(bytes)
      }, () => { req.socket.destroy() })
    })
  })
  server.listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

/** Entries with random float32 vectors, seeded from `from`; `asFloat32` hands the vectors over as Float32Array. */
function entries (from: number, count: number, asFloat32: boolean): Entry[] {
  return Array.from({ length: count }, (_, i) => {
    const entry = sampleEntry(from + i, 8) as Entry
    return asFloat32 && 'vector' in entry ? { ...entry, vector: Float32Array.from(entry.vector) } : entry
  })
}

/** The entries as the recovery stream gives them back (vectors as float32 values, plain arrays). */
function stored (list: Entry[]): Array<Record<string, unknown>> {
  return list.map(entry => asStored('vector' in entry ? { ...entry, vector: Array.from(entry.vector) } : { ...entry }))
}

/**
 * A recovered record as entries compare: without seq and timestamp, vectors read back to float32
 * (NDJSON prints the shortest decimal that reads back to the same float32, not the float32 itself).
 */
function asEntry (record: Record<string, unknown>): Record<string, unknown> {
  const { seq: _seq, timestamp: _timestamp, ...rest } = record
  if (Array.isArray(rest.entries)) rest.entries = (rest.entries as Array<Record<string, unknown>>).map(asEntry)
  if (Array.isArray(rest.vector)) rest.vector = (rest.vector as number[]).map(Math.fround)
  return rest
}

for (const encoding of ['json', 'msgpack'] as const) {
  t.test(`${encoding}: appends, batches and a transaction come back as written; checkpoints`, async t => {
    const service = await startTestService(t)
    const client = new VecwalClient({ baseUrl: service.url, encoding })
    const asFloat32 = encoding === 'msgpack'
    const singles = entries(0, 5, asFloat32)
    for (const [i, entry] of singles.entries()) {
      t.match(await client.append(entry), { seq: i + 1, replayed: false, attempts: 1 })
    }
    const batch = entries(100, 7, asFloat32)
    t.match(await client.appendBatch(batch), { seq: 6, count: 7, replayed: false, attempts: 1 })
    const tx = await client.transaction()
    const staged = entries(200, 5, asFloat32)
    t.equal(await tx.stage(staged.slice(0, 3)), 3)
    t.equal(await tx.stage(staged[3]), 4, 'one entry stages too')
    t.equal(await tx.stage(staged.slice(4)), 5)
    t.match(await tx.commit(), { seq: 7, count: 5, replayed: false })
    const aborted = await client.transaction()
    await aborted.stage(entries(300, 2, asFloat32))
    await aborted.abort()

    const records = await recoverAll(service)
    t.same(records.slice(0, 5).map(asEntry), stored(singles), 'single entries')
    t.same(asEntry(records[5]).entries, stored(batch), 'the batch, one record')
    t.same(asEntry(records[6]).entries, stored(staged), 'the transaction, one record')
    t.equal(records[6].txId, tx.txId)
    t.equal(records.length, 7, 'the aborted transaction wrote nothing')

    t.match(await client.checkpoint(6), { checkpoint: 6, seq: 8, superseded: false })
    t.equal(await client.resumeAfter(), 6)
    t.match(await client.checkpoint(), { checkpoint: 8, superseded: false }, 'no seq: the last one')
    const refused = await client.checkpoint(3).catch((err: unknown) => err)
    t.match(refused, { name: 'VecwalError', status: 409, code: 'WAL_CHECKPOINT_BACKWARDS', attempts: 1 }, 'a first try going backwards is refused')
    t.match((await client.status()).lastSeq, 9)
  })
}

t.test('a vector comes back bit for bit in either encoding, negative zero included (JSON.stringify would send it as 0)', async t => {
  const service = await startTestService(t)
  const clients = { json: new VecwalClient({ baseUrl: service.url, encoding: 'json' }), msgpack: new VecwalClient({ baseUrl: service.url, encoding: 'msgpack' }) }
  const withNegativeZero = fc.tuple(fc.float32Array({ minLength: 1, maxLength: 16, noNaN: true, noDefaultInfinity: true }), fc.nat())
    .map(([values, at]) => Float32Array.from(values, (v, i) => i === at % values.length ? -0 : v))
  await fc.assert(fc.asyncProperty(withNegativeZero, fc.constantFrom('json' as const, 'msgpack' as const), fc.boolean(), async (vector, encoding, asArray) => {
    const { seq } = await clients[encoding].append({ op: 'insert', id: 'v', vector: asArray ? Array.from(vector) : vector })
    const [record] = await recoverAll(service, seq - 1)
    const got = float32Bits(record.vector as number[])
    if (got.join() !== float32Bits(vector).join()) throw new Error(`${encoding}: bits ${got.join()} for ${float32Bits(vector).join()}`)
    return true
  }), { numRuns: 30 })
  t.pass('held for 30 generated vectors')
})

t.test('a JSON write body says what JSON.stringify would, -0 aside, whatever shape a caller hands over; the service answers it', async t => {
  const service = await startTestService(t)
  const bodies: string[] = []
  const client = new VecwalClient({
    baseUrl: service.url,
    retry: { attempts: 1 },
    fetch: async request => {
      bodies.push(await request.clone().text())
      return await fetch(request)
    }
  })
  // Entries as typed, and what a JavaScript caller may pass instead: members missing or undefined,
  // vectors with holes, undefined or non-numbers, bodies that are not entries at all.
  const loose = fc.oneof(
    entryArbitrary.map(e => e as unknown),
    fc.record({ op: fc.constantFrom('insert', 'delete', 'upsert'), id: fc.oneof(fc.string(), fc.constant(undefined)), vector: fc.oneof(fc.constant(undefined), fc.constant(null), fc.sparseArray(fc.oneof(fc.double(), fc.constant(undefined), fc.string()), { maxLength: 6 })), metadata: fc.anything() }, { requiredKeys: [] }),
    fc.object()
  )
  await fc.assert(fc.asyncProperty(fc.oneof(loose.map(e => ({ single: true, value: e })), fc.array(loose, { maxLength: 4 }).map(list => ({ single: false, value: list }))), async ({ single, value }) => {
    bodies.length = 0
    const answered = await (single ? client.append(value as Entry) : client.appendBatch(value as Entry[])).then(() => 201, (err: VecwalError) => err.status)
    if (bodies.length !== 1) throw new Error(`${bodies.length} requests`)
    const sent: unknown = JSON.parse(bodies[0])
    // The client sends a Float32Array vector as the array of its numbers.
    const asSent = (e: unknown): unknown => typeof e === 'object' && e !== null && (e as { vector?: unknown }).vector instanceof Float32Array ? { ...e, vector: Array.from((e as { vector: Float32Array }).vector) } : e
    const reference: unknown = JSON.parse(JSON.stringify(single ? asSent(value) : { entries: (value as unknown[]).map(asSent) }) ?? 'null')
    if (!isDeepStrictEqual(withoutNegativeZero(sent), reference)) throw new Error(`sent ${bodies[0]} for ${JSON.stringify(reference)}`)
    if (answered !== 201 && answered !== 400) throw new Error(`answered ${String(answered)}`)
    return true
  }), { numRuns: 100 })
  t.pass('held for 100 generated bodies')
})

t.test('a refusal with Retry-After is tried again with the same idempotency key; one record', async t => {
  const service = await startTestService(t)
  const proxy = await startProxy(t, service, n => n === 0 ? 'refuse' : 'forward', '1')
  const client = new VecwalClient({ baseUrl: proxy.url })
  const [entry] = entries(0, 1, false)
  t.match(await client.append(entry, { idempotencyKey: 'key-1' }), { seq: 1, attempts: 2 })
  t.same(proxy.seen.map(s => s.key), ['key-1', 'key-1'], 'both tries carried the key')
  t.same((await recoverAll(service)).map(asEntry), stored([entry]))
})

t.test('refusals past the tries or the time allowed: the client gives up', async t => {
  const service = await startTestService(t)
  const always = await startProxy(t, service, () => 'refuse', '0')
  const client = new VecwalClient({ baseUrl: always.url, retry: { attempts: 3 } })
  const err = await client.appendBatch(entries(0, 2, false)).catch((e: unknown) => e)
  t.ok(err instanceof VecwalError)
  t.match(err, { status: 503, code: 'WAL_QUEUE_FULL', attempts: 3 })
  t.equal(always.seen.length, 3, 'three tries, no more')
  t.equal(new Set(always.seen.map(s => s.key)).size, 1, 'one key for all of them')

  const later = await startProxy(t, service, () => 'refuse', '3600')
  const patient = new VecwalClient({ baseUrl: later.url, retry: { attempts: 10, maxElapsedMs: 5000 } })
  t.match(await patient.append(entries(0, 1, false)[0]).catch((e: unknown) => e), { status: 503, attempts: 1 }, 'a wait past maxElapsedMs is not started')
  t.equal(later.seen.length, 1)
  t.equal((await recoverAll(service)).length, 0, 'nothing was written')
})

t.test('no answer: a write is tried again, a stage is not', async t => {
  const service = await startTestService(t)
  const proxy = await startProxy(t, service, n => n === 0 || n === 3 ? 'drop' : 'forward')
  const client = new VecwalClient({ baseUrl: proxy.url, encoding: 'msgpack' })
  const list = entries(0, 3, true)
  t.match(await client.appendBatch(list), { seq: 1, count: 3, attempts: 2 }, 'the dropped try was repeated')
  const tx = await client.transaction()
  const err = await tx.stage(entries(10, 2, true)).catch((e: unknown) => e)
  t.match(err, { name: 'VecwalError', status: undefined, attempts: 1 }, 'staging twice would commit twice: not repeated')
  t.equal(proxy.seen.filter(s => s.url.endsWith('/entries')).length, 1, 'one try of the stage')
  const records = await recoverAll(service)
  t.equal(records.length, 1)
  t.same(asEntry(records[0]).entries, stored(list))
})

t.test('retry delays: Retry-After plus at most a fifth; backoff within its doubling cap', async t => {
  const { retryDelayMs, DEFAULT_RETRY } = await import('../../src/client/retry.js')
  fc.assert(fc.property(fc.integer({ min: 0, max: 600 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.integer({ min: 1, max: 20 }), (seconds, random, tries) => {
    const told = retryDelayMs(DEFAULT_RETRY, tries, String(seconds), () => random)
    const backoff = retryDelayMs(DEFAULT_RETRY, tries, null, () => random)
    const cap = Math.min(DEFAULT_RETRY.maxDelayMs, DEFAULT_RETRY.baseDelayMs * 2 ** (tries - 1))
    return told >= seconds * 1000 && told <= seconds * 1200 && backoff >= 0 && backoff <= cap
  }))
  const date = new Date(Date.now() + 60_000).toUTCString()
  const untilDate = retryDelayMs(DEFAULT_RETRY, 1, date, () => 0)
  t.ok(untilDate > 55_000 && untilDate <= 60_000, `an HTTP date: ${untilDate} ms`)
  t.equal(retryDelayMs(DEFAULT_RETRY, 1, 'soon', () => 0.5), 50, 'an unreadable Retry-After: backoff')
})

/** Whether the service answers a repeated Idempotency-Key with Idempotent-Replayed (the idempotency keys feature). */
t.test('a lost answer: the retry is answered from the first write, nothing written twice', async t => {
  const service = await startTestService(t)
  // Requests: 0 append, 1 its retry, 2 batch, 3 its retry, 4 open, 5 stage, 6 commit, 7 its retry.
  const proxy = await startProxy(t, service, n => n === 0 || n === 2 || n === 6 ? 'lose-answer' : 'forward')
  const client = new VecwalClient({ baseUrl: proxy.url })
  const single = entries(0, 1, false)
  t.match(await client.append(single[0]), { seq: 1, replayed: true, attempts: 2 })
  const batch = entries(10, 4, false)
  t.match(await client.appendBatch(batch), { seq: 2, count: 4, replayed: true, attempts: 2 })
  const tx = await client.transaction()
  const staged = entries(20, 3, false)
  await tx.stage(staged)
  t.match(await tx.commit(), { seq: 3, count: 3, replayed: true, attempts: 2 })
  const records = await recoverAll(service)
  t.equal(records.length, 3, 'exactly one record for each retried key')
  t.same(records.map(asEntry), [stored(single)[0], { op: 'batch', entries: stored(batch) }, { op: 'batch', entries: stored(staged), txId: tx.txId }])
})
