// Disk faults. (1) The in-process service over a FileIO that fails a write or an fsync with EIO or
// ENOSPC: the requests of the batch in flight get 503 WAL_FAILED, the service reports not ready and
// refuses every later write, nothing is retried, and a restart on a healthy disk has every
// acknowledged entry. A new segment whose file cannot be created (EMFILE, ENOSPC) wrote nothing:
// only the records past the rotation are refused, with WAL_SEGMENT_UNAVAILABLE, and the next write
// creates it; its header's write failing is a write failure like any other. A keyed batch refused
// WAL_FAILED and retried with its key after a restart stands in the log once. (2) Damage in the middle of a sealed segment: the real CLI refuses to start,
// naming the file and the byte offset, and starts with --repair (or VECWAL_REPAIR=true), serving the
// valid prefix and keeping the rest in .broken files.
import fs from 'node:fs'
import path from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { loadConfig } from '../../src/config.js'
import type { EntryInput } from '../../src/entry.js'
import { startService, type Service } from '../../src/main.js'
import { readRecord, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES } from '../../src/wal/format.js'
import { encodeBatch, encodeEntry } from '../../src/payload/payload.js'
import { runToExit, startChild, type RunOptions } from '../helpers/child-service.js'
import { keyOf, randomEntry, recordDifference, seeded, type EntryJson, type SentRequest } from '../helpers/fault-ledger.js'
import { FaultIO } from '../helpers/fault-io.js'
import { ndjson, segmentLog } from '../helpers/http.js'
import { tempDir, type IoOp } from '../helpers/wal.js'

const silent = pino({ level: 'silent' })
const random = seeded(20251124)

async function start (dir: string, io?: FaultIO, env: Record<string, string> = {}): Promise<Service> {
  const config = loadConfig({ VECWAL_PORT: '0', VECWAL_DATA_DIR: dir, VECWAL_LOG_LEVEL: 'silent', ...env })
  return await startService(config, silent, io === undefined ? {} : { io })
}

interface Answer { status: number, headers: Headers, body: Record<string, unknown> }

async function post (service: Service, route: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(service.url + route, {
    method: 'POST',
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: res.status, headers: res.headers, body: await res.json() as Record<string, unknown> }
}

async function get (service: Service, route: string): Promise<Response> {
  return await fetch(service.url + route)
}

/** The records framed in a buffer of whole records (what one group-commit write carries). */
function framesIn (buf: Buffer): number {
  let frames = 0
  for (let offset = 0; offset < buf.length; frames++) {
    const result = readRecord(buf, offset)
    if (result.kind !== 'record') throw new Error(`not a whole record at ${offset}`)
    offset += result.frame.size
  }
  return frames
}

/** Bytes a request puts in the write queue: the framed record the engine makes of it. */
function queuedSize (request: SentRequest): number {
  const payload = request.kind === 'entry'
    ? encodeEntry(request.entries[0] as EntryInput)
    : encodeBatch(request.entries as EntryInput[], request.txId)
  return RECORD_HEADER_BYTES + payload.bytes.length
}

function isErrorBody (body: Record<string, unknown>, statusCode: number, code: string): boolean {
  return body.statusCode === statusCode && body.code === code && typeof body.error === 'string' && typeof body.message === 'string'
}

/** Checks the recovery stream against the ledger: acknowledged at their seqs, nothing else but `mayAppear`. */
async function checkRecovery (t: Test, service: Service, acked: SentRequest[], mayAppear: SentRequest[]): Promise<number> {
  const res = await get(service, '/v1/recovery?after=0')
  t.equal(res.status, 200, 'the recovery stream opens')
  const records = await ndjson(res)
  const sent = new Map([...acked, ...mayAppear].map(r => [r.key, r]))
  const problems: string[] = []
  records.forEach((record, i) => {
    if (record.seq !== i + 1) problems.push(`seq ${String(record.seq)} at line ${i + 1}`)
    const request = sent.get(keyOf(record))
    const why = request === undefined ? 'never sent' : recordDifference(request, record)
    if (why !== undefined) problems.push(`seq ${String(record.seq)}: ${why}`)
    else if (request?.ackedSeq !== undefined && request.ackedSeq !== record.seq) problems.push(`${request.key} acknowledged as ${request.ackedSeq}, found at ${String(record.seq)}`)
  })
  const found = new Set(records.map(r => keyOf(r)))
  for (const request of acked) if (!found.has(request.key)) problems.push(`acknowledged ${request.key} (seq ${String(request.ackedSeq)}) is missing`)
  t.same(problems, [], `every acknowledged entry is there, exactly, and nothing unsent (${records.length} records)`)
  return records.filter(r => !acked.some(a => a.key === keyOf(r))).length
}

function entryRequest (key: string): SentRequest {
  return { key, kind: 'entry', entries: [randomEntry(random, key, 'disk-faults')] }
}

function batchRequest (key: string, count: number): SentRequest {
  return { key, kind: 'batch', entries: Array.from({ length: count }, (_, j) => randomEntry(random, j === 0 ? key : `${key}.${j}`, 'disk-faults')) }
}

/** Sends a request the way its kind is sent; a transaction is begun and staged first. */
async function send (service: Service, request: SentRequest): Promise<Answer> {
  if (request.kind === 'entry') return await post(service, '/v1/entries', request.entries[0])
  if (request.kind === 'batch') return await post(service, '/v1/batch', { entries: request.entries })
  const txId = request.txId as string
  return await post(service, `/v1/transactions/${txId}/commit`)
}

async function openTransaction (service: Service, key: string, t: Test): Promise<SentRequest> {
  const opened = await post(service, '/v1/transactions')
  t.equal(opened.status, 201, 'a transaction opens')
  const txId = opened.body.txId as string
  const entries: EntryJson[] = [randomEntry(random, key, 'tx'), randomEntry(random, `${key}.1`, 'tx')]
  const staged = await post(service, `/v1/transactions/${txId}/entries`, { entries })
  t.equal(staged.status, 202, 'entries are staged')
  return { key, kind: 'tx', entries, txId }
}

async function waitFor (what: string, condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

const faults: Array<[IoOp, string]> = [['writeAll', 'EIO'], ['writeAll', 'ENOSPC'], ['fdatasync', 'EIO'], ['fdatasync', 'ENOSPC']]

for (const [op, code] of faults) {
  t.test(`${op} failing with ${code}: the batch gets 503, the service refuses writes, a restart has every acknowledged entry`, async t => {
    const dir = tempDir(t, 'vecwal-faults-')
    const io = new FaultIO()
    const service = await start(dir, io)
    let stopped = false
    t.teardown(async () => { if (!stopped) await service.stop() })

    const acked: SentRequest[] = []
    for (let i = 0; i < 6; i++) {
      const request = i % 3 === 2 ? batchRequest(`before.${i}`, 4) : entryRequest(`before.${i}`)
      const answer = await send(service, request)
      t.equal(answer.status, 201, `write ${i} before the fault is acknowledged`)
      request.ackedSeq = answer.body.seq as number
      acked.push(request)
    }

    // The batch before the faulty one is held in its fsync, so that every request below queues up
    // and goes into the one batch whose write or fsync fails.
    const laterTx = await openTransaction(service, 'later.tx', t)
    const held = io.hold('fdatasync', /\.seg$/)
    const first = entryRequest('first')
    const firstAnswer = send(service, first)
    await held.reached
    const failing = io.fail(op, code, /\.seg$/)
    const inFlight = [
      ...Array.from({ length: 8 }, (_, i) => entryRequest(`failed.${i}`)),
      batchRequest('failed.batch.a', 5),
      batchRequest('failed.batch.b', 1),
      await openTransaction(service, 'failed.tx', t)
    ]
    const answers = inFlight.map(async request => await send(service, request))
    const expectedQueue = [first, ...inFlight].reduce((sum, r) => sum + queuedSize(r), 0)
    await waitFor('every request to queue', () => service.log.status().queuedBytes === expectedQueue)
    const syncsBefore = io.count('fdatasync')
    held.release()
    await failing.reached

    const firstResult = await firstAnswer
    t.equal(firstResult.status, 201, 'the batch before the fault is acknowledged')
    first.ackedSeq = firstResult.body.seq as number
    acked.push(first)
    t.equal(framesIn(io.lastWrite ?? Buffer.alloc(0)), inFlight.length, `all ${inFlight.length} queued requests went into the failing batch`)
    const results = await Promise.all(answers)
    t.same(results.map(r => r.status), inFlight.map(() => 503), 'every request of the failed batch gets 503')
    t.ok(results.every(r => isErrorBody(r.body, 503, 'WAL_FAILED')), 'with the error body and code WAL_FAILED')
    t.equal(io.injected, 1, 'one fault was injected')
    const syncs = io.count('fdatasync')
    const writes = io.count('writeAll')
    t.equal(syncs, syncsBefore + (op === 'fdatasync' ? 1 : 0), op === 'fdatasync' ? 'the failed fsync was called once' : 'no fsync follows the failed write')

    const ready = await get(service, '/health/ready')
    t.equal(ready.status, 503, '/health/ready turns 503')
    t.same(await ready.json(), { status: 'failed' }, 'and says failed')
    t.equal((await get(service, '/health/live')).status, 200, 'the process is still live')
    const status = await (await get(service, '/v1/status')).json() as { state: string }
    t.equal(status.state, 'failed', '/v1/status says failed')
    const metrics = await (await get(service, '/metrics')).text()
    t.match(metrics, /^vecwal_failed 1$/m, 'vecwal_failed is 1')

    const later = [
      await send(service, entryRequest('later.entry')),
      await send(service, batchRequest('later.batch', 3)),
      await send(service, laterTx),
      await post(service, '/v1/checkpoints', {})
    ]
    t.same(later.map(r => r.status), [503, 503, 503, 503], 'every later write (entry, batch, commit, checkpoint) gets 503')
    t.ok(later.every(r => isErrorBody(r.body, 503, 'WAL_FAILED')), 'with code WAL_FAILED')
    await new Promise(resolve => setTimeout(resolve, 200))
    t.equal(io.count('fdatasync'), syncs, 'no fdatasync after the failure: nothing retried')
    t.equal(io.count('writeAll'), writes, 'no write after the failure')

    await service.stop()
    stopped = true

    const healthy = await start(dir)
    t.teardown(async () => { await healthy.stop() })
    t.equal((await get(healthy, '/health/ready')).status, 200, 'a restart on a healthy disk is ready')
    const unacknowledged = await checkRecovery(t, healthy, acked, inFlight)
    // A failed write or fsync's batch is cut from the file before the log fails (best effort: a
    // truncation that fails too would leave it, whole): WAL_FAILED means "not known to be durable".
    t.ok(unacknowledged === 0 || unacknowledged === inFlight.length, 'the failed batch is in the log whole or not at all')
    t.equal(unacknowledged, 0, 'here the truncation worked: nothing of the failed batch is in the log')
    const after = await post(healthy, '/v1/entries', { op: 'delete', id: 'after-restart' })
    t.equal(after.status, 201, 'the restarted service accepts writes')
    t.equal(after.body.seq, first.ackedSeq + unacknowledged + 1, 'with seqs continuing after the last record on disk')
  })
}

for (const op of ['writeAll', 'fdatasync'] as const) {
  t.test(`a keyed batch refused 503 WAL_FAILED by a failed ${op}, retried with its key after a restart: in the log exactly once`, async t => {
    const dir = tempDir(t, 'vecwal-faults-')
    const io = new FaultIO()
    const service = await start(dir, io)
    let stopped = false
    t.teardown(async () => { if (!stopped) await service.stop() })
    const keyed = async (target: Service, request: SentRequest): Promise<Answer> =>
      await post(target, '/v1/batch', { entries: request.entries }, { 'idempotency-key': request.key })
    const before = batchRequest('keyed.before', 2)
    before.ackedSeq = (await keyed(service, before)).body.seq as number
    const batch = batchRequest('keyed.failed', 1 + Math.floor(random() * 6))
    io.fail(op, 'EIO', /\.seg$/)
    const refused = await keyed(service, batch)
    t.ok(refused.status === 503 && isErrorBody(refused.body, 503, 'WAL_FAILED'), 'the batch gets 503 WAL_FAILED')
    t.equal(io.injected, 1, 'one fault was injected')
    await service.stop()
    stopped = true

    const healthy = await start(dir)
    t.teardown(async () => { await healthy.stop() })
    const retried = await keyed(healthy, batch)
    t.equal(retried.status, 201, 'the retry with the same key is acknowledged')
    const seq = retried.body.seq as number
    t.equal(seq, before.ackedSeq + 1, 'at the seq after the last acknowledged one')
    // The refused batch was cut from the file before the log failed (a failed fsync's too, whose
    // pages the kernel may have marked clean): the retry writes it.
    t.equal(retried.headers.get('idempotent-replayed'), null, 'written by the retry')
    const again = await keyed(healthy, batch)
    t.same([again.status, again.body.seq, again.headers.get('idempotent-replayed')], [201, seq, 'true'], 'a second retry is answered from the same record')
    batch.ackedSeq = seq
    t.equal(await checkRecovery(t, healthy, [before, batch], []), 0, 'the log holds the batch once, at that seq, and nothing else')
  })
}

/** Segment files but the first: the segments rotation creates. */
const LATER_SEGMENT = /^(?!0{19}1\.seg)\d{20}\.seg$/

for (const code of ['EMFILE', 'ENOSPC']) {
  t.test(`${code} creating the next segment: that batch gets 503 WAL_SEGMENT_UNAVAILABLE, the log stays open and creates it on the next write`, async t => {
    const dir = tempDir(t, 'vecwal-faults-')
    const io = new FaultIO()
    const service = await start(dir, io, { VECWAL_SEGMENT_BYTES: '4096' })
    let stopped = false
    t.teardown(async () => { if (!stopped) await service.stop() })
    io.fail('create', code, LATER_SEGMENT)
    const acked: SentRequest[] = []
    const refusedRequests: SentRequest[] = []
    let refused: Answer | undefined
    for (let i = 0; i < 200 && refused === undefined; i++) {
      const request = batchRequest(`r.${i}`, 3)
      const answer = await send(service, request)
      if (answer.status === 201) {
        request.ackedSeq = answer.body.seq as number
        acked.push(request)
      } else {
        refused = answer
        refusedRequests.push(request)
      }
    }
    t.ok(acked.length > 0, `${acked.length} batches fit in the first segment`)
    t.equal(refused?.status, 503, 'the batch that needed a new segment gets 503')
    t.ok(refused !== undefined && isErrorBody(refused.body, 503, 'WAL_SEGMENT_UNAVAILABLE'), 'with code WAL_SEGMENT_UNAVAILABLE')
    t.equal(refused?.headers.get('retry-after'), '1', 'and Retry-After: 1')
    t.match(refused?.body.message, code, 'naming the errno')
    t.equal(io.injected, 1, 'one fault was injected')
    t.equal((await get(service, '/health/ready')).status, 200, 'the log is still ready')
    // Larger than the refused batch, so that it needs the new segment too.
    const opened = await post(service, '/v1/transactions')
    const txEntries = Array.from({ length: 12 }, (_, i) => randomEntry(random, i === 0 ? 'tx' : `tx.${i}`, 'tx'))
    t.equal((await post(service, `/v1/transactions/${opened.body.txId as string}/entries`, { entries: txEntries })).status, 202, 'a transaction is staged')
    const tx: SentRequest = { key: 'tx', kind: 'tx', entries: txEntries, txId: opened.body.txId as string }
    io.fail('create', code, LATER_SEGMENT)
    const commitRefused = await send(service, tx)
    t.ok(commitRefused.status === 503 && isErrorBody(commitRefused.body, 503, 'WAL_SEGMENT_UNAVAILABLE'), 'a transaction commit needing the segment is refused the same way')
    const creates = io.count('create')
    const retried = refusedRequests[0]
    const again = await send(service, retried)
    t.equal(again.status, 201, 'the same batch sent again is acknowledged')
    t.equal(again.body.seq, (acked.at(-1)?.ackedSeq ?? 0) + 1, 'at the seq after the last acknowledged one: nothing was skipped')
    retried.ackedSeq = again.body.seq as number
    acked.push(retried)
    t.equal(io.count('create'), creates + 1, 'the segment creation was tried again')
    t.equal(segmentLog(service).status().segments.length, 2, 'and the log has its second segment')
    const committed = await send(service, tx)
    t.equal(committed.status, 201, 'the refused transaction is still open: its commit sent again is acknowledged')
    tx.ackedSeq = committed.body.seq as number
    acked.push(tx)
    await service.stop()
    stopped = true
    const healthy = await start(dir, undefined, { VECWAL_SEGMENT_BYTES: '4096' })
    t.teardown(async () => { await healthy.stop() })
    t.equal(await checkRecovery(t, healthy, acked, []), 0, 'every acknowledged batch is in the log, and nothing else')
  })
}

t.test('a segment creation failing in the middle of a batch: the records before it are acknowledged, the rest refused, none lost', async t => {
  const dir = tempDir(t, 'vecwal-faults-')
  const io = new FaultIO()
  const service = await start(dir, io, { VECWAL_SEGMENT_BYTES: '8192' })
  let stopped = false
  t.teardown(async () => { if (!stopped) await service.stop() })
  const acked: SentRequest[] = []
  const first = entryRequest('first')
  const firstAnswer = await send(service, first)
  first.ackedSeq = firstAnswer.body.seq as number
  acked.push(first)

  // One held fsync lets a batch form that is larger than the room left in the first segment.
  const held = io.hold('fdatasync', /\.seg$/)
  const blocker = entryRequest('blocker')
  const blockerAnswer = send(service, blocker)
  await held.reached
  const failing = io.fail('create', 'EMFILE', LATER_SEGMENT)
  const queued = Array.from({ length: 100 }, (_, i) => entryRequest(`queued.${i}`))
  const room = 8192 - service.log.status().bytes - queuedSize(blocker)
  const queuedBytes = queued.reduce((sum, r) => sum + queuedSize(r), 0)
  t.ok(queuedBytes > room, `the batch (${queuedBytes} bytes) is larger than the room left (${room})`)
  const answers = queued.map(async request => await send(service, request))
  await waitFor('every request to queue', () => service.log.status().queuedBytes === queuedSize(blocker) + queuedBytes)
  held.release()
  await failing.reached
  const blocked = await blockerAnswer
  blocker.ackedSeq = blocked.body.seq as number
  acked.push(blocker)
  const results = await Promise.all(answers)
  const statuses = results.map(r => r.status)
  const written = statuses.indexOf(503)
  t.ok(written > 0, `the first ${written} records of the batch went in before the rotation`)
  t.same(statuses, queued.map((_, i) => i < written ? 201 : 503), 'they are acknowledged and every one after them gets 503')
  t.same(results.slice(0, written).map(r => r.body.seq), queued.slice(0, written).map((_, i) => (blocker.ackedSeq as number) + 1 + i), 'at consecutive seqs')
  t.ok(results.slice(written).every(r => isErrorBody(r.body, 503, 'WAL_SEGMENT_UNAVAILABLE')), 'the refused ones with WAL_SEGMENT_UNAVAILABLE')
  queued.slice(0, written).forEach((request, i) => { request.ackedSeq = results[i].body.seq as number })
  acked.push(...queued.slice(0, written))
  const after = entryRequest('after')
  const afterAnswer = await send(service, after)
  t.equal(afterAnswer.status, 201, 'the next write is acknowledged, in a new segment')
  t.equal(afterAnswer.body.seq, (blocker.ackedSeq as number) + written + 1, 'at the next seq')
  after.ackedSeq = afterAnswer.body.seq as number
  acked.push(after)
  await service.stop()
  stopped = true
  const healthy = await start(dir, undefined, { VECWAL_SEGMENT_BYTES: '8192' })
  t.teardown(async () => { await healthy.stop() })
  t.equal(await checkRecovery(t, healthy, acked, []), 0, 'the log holds exactly the acknowledged records')
})

t.test('the header write of a new segment failing: a write failure, so the log fails as for any other', async t => {
  const dir = tempDir(t, 'vecwal-faults-')
  const io = new FaultIO()
  const service = await start(dir, io, { VECWAL_SEGMENT_BYTES: '4096' })
  t.teardown(async () => { await service.stop() })
  io.fail('writeAll', 'EIO', LATER_SEGMENT)
  let refused: Answer | undefined
  for (let i = 0; i < 200 && refused === undefined; i++) {
    const answer = await send(service, batchRequest(`r.${i}`, 3))
    if (answer.status !== 201) refused = answer
  }
  t.ok(refused !== undefined && isErrorBody(refused.body, 503, 'WAL_FAILED'), 'the batch that rotated gets 503 WAL_FAILED')
  t.equal(io.injected, 1, 'one fault was injected')
  t.equal((await get(service, '/health/ready')).status, 503, 'the log is failed')
  const creates = io.count('create')
  t.equal((await send(service, entryRequest('later'))).status, 503, 'a later write gets 503')
  t.equal(io.count('create'), creates, 'and no segment creation is tried again')
})

/** Record offsets of a segment file. */
function recordOffsets (file: string): number[] {
  const buf = fs.readFileSync(file)
  const offsets: number[] = []
  for (let offset = SEGMENT_HEADER_BYTES; offset < buf.length;) {
    const result = readRecord(buf, offset)
    if (result.kind !== 'record') throw new Error(`${file}: not a record at ${offset}`)
    offsets.push(offset)
    offset += result.frame.size
  }
  return offsets
}

/** The log's files and their bytes; LOCK aside, which names whichever process took the lock last. */
function files (dir: string): Map<string, Buffer> {
  return new Map(fs.readdirSync(dir).filter(name => name !== 'LOCK').map(name => [name, fs.readFileSync(path.join(dir, name))]))
}

t.test('damage in the middle of a sealed segment: refused with file and offset, served up to it with repair', async t => {
  const dir = tempDir(t, 'vecwal-faults-')
  const env = { VECWAL_SEGMENT_BYTES: '16384' }
  const child = await startChild({ dataDir: dir, env })
  t.teardown(async () => { await child.kill9() })
  const acked: SentRequest[] = []
  for (let i = 0; i < 60; i++) {
    const request = batchRequest(`b.${i}`, 8)
    const res = await fetch(`${child.url}/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ entries: request.entries }) })
    t.equal(res.status, 201)
    request.ackedSeq = (await res.json() as { seq: number }).seq
    acked.push(request)
  }
  t.equal((await child.stop()).code, 0, 'the service stops gracefully')
  const segments = fs.readdirSync(dir).filter(n => n.endsWith('.seg')).sort()
  t.ok(segments.length >= 3, `the log has ${segments.length} segments`)

  // A byte in the payload of a record in the middle of the second segment (sealed, not the last).
  const damaged = segments[1]
  const offsets = recordOffsets(path.join(dir, damaged))
  const damagedIndex = Math.floor(offsets.length / 2)
  const damagedOffset = offsets[damagedIndex]
  const firstSeqOfDamaged = Number(damaged.slice(0, 20))
  const damagedSeq = firstSeqOfDamaged + damagedIndex
  const fd = fs.openSync(path.join(dir, damaged), 'r+')
  const byte = Buffer.alloc(1)
  fs.readSync(fd, byte, 0, 1, damagedOffset + RECORD_HEADER_BYTES + 3)
  byte[0] ^= 0x10
  fs.writeSync(fd, byte, 0, 1, damagedOffset + RECORD_HEADER_BYTES + 3)
  fs.closeSync(fd)
  const before = files(dir)

  const refused = await runToExit({ dataDir: dir, env })
  t.not(refused.exit.code, 0, `the service refuses to start (exit ${String(refused.exit.code)})`)
  t.equal(refused.exit.signal, null, 'it exits by itself')
  t.match(refused.stderr, damaged, 'the message names the damaged file')
  t.match(refused.stderr, `at byte ${damagedOffset}`, 'and the byte offset of the damaged record')
  t.match(refused.stderr, '--repair', 'and says how to start anyway')
  t.same(files(dir), before, 'a refusal changes no file')

  const copy = tempDir(t, 'vecwal-faults-')
  for (const [name, bytes] of before) fs.writeFileSync(path.join(copy, name), bytes)

  const ways: Array<[string, RunOptions]> = [
    ['--repair', { dataDir: dir, env, args: ['serve', '--repair'] }],
    ['VECWAL_REPAIR=true', { dataDir: copy, env: { ...env, VECWAL_REPAIR: 'true' } }]
  ]
  for (const [how, options] of ways) {
    const { dataDir } = options
    const repaired = await startChild(options)
    t.teardown(async () => { await repaired.kill9() })
    const res = await fetch(`${repaired.url}/v1/recovery?after=0`)
    t.equal(res.headers.get('x-vecwal-last-seq'), String(damagedSeq - 1), `${how}: the log ends before the damaged record`)
    const records = await ndjson(res)
    t.equal(records.length, damagedSeq - 1, `${how}: the valid prefix is served`)
    const problems = records.flatMap((record, i) => {
      const request = acked[i]
      const why = record.seq === i + 1 && request.ackedSeq === i + 1 ? recordDifference(request, record) : `seq ${String(record.seq)} at ${i + 1}`
      return why === undefined ? [] : [why]
    })
    t.same(problems, [], `${how}: exactly as posted`)
    const broken = fs.readdirSync(dataDir).filter(n => n.endsWith('.broken')).sort()
    const cut = `${damaged}.at-${damagedOffset}.broken`
    t.same(broken, [cut, ...segments.slice(2).map(s => `${s}.broken`)].sort(), `${how}: the rest is set aside in .broken files`)
    t.same(fs.readFileSync(path.join(dataDir, cut)), (before.get(damaged) as Buffer).subarray(damagedOffset), `${how}: the cut bytes are kept`)
    for (const later of segments.slice(2)) {
      t.same(fs.readFileSync(path.join(dataDir, `${later}.broken`)), before.get(later), `${how}: ${later} is kept whole`)
    }
    const write = await fetch(`${repaired.url}/v1/entries`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ op: 'delete', id: 'after-repair' }) })
    t.same(await write.json(), { seq: damagedSeq }, `${how}: writes go on from the damaged seq`)
    t.equal((await repaired.stop()).code, 0, `${how}: stops gracefully`)
  }
})
