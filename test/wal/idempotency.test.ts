// Idempotency keys and conditional appends in the segment engine: the keyed payload's bytes (the
// digest, the read forms leaving the keys out, the open scan reading them back from the payload's
// end), replays, reuse, the window, the cap, retention, reopen, a key in flight, and conditional
// writers racing for one seq. Entries and keys are generated.
import { createHash } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import type { EntryInput } from '../../src/entry.js'
import { RecordType, type RecordBytes, type RecordTypeCode } from '../../src/records/record-bytes.js'
import { recordMsgpackBytes } from '../../src/records/record-msgpack.js'
import { checkRecordBody, readTrailingKeys } from '../../src/records/record-shape.js'
import { recordLineBytes } from '../../src/records/record-json.js'
import { decodeBody } from '../../src/records/record-object.js'
import { KeyIndex, type KeyedWrite } from '../../src/wal/idempotency.js'
import { WriteAheadLog } from '../../src/wal/log.js'
import { encodeBatch, encodeEntry } from '../../src/payload/payload.js'
import { entry as generatedEntry } from '../helpers/bodies.js'
import { collect, entries, entry, openLog, plain, tempDir } from '../helpers/wal.js'

/** 1 to 255 printable ASCII characters, all lengths (fixstr and both str8 forms) and every character. */
const idempotencyKey = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map(c => String.fromCharCode(c)), minLength: 1, maxLength: 255 })
const someEntries = fc.array(generatedEntry, { minLength: 1, maxLength: 5 }) as fc.Arbitrary<EntryInput[]>

function asRecord (type: RecordTypeCode, bytes: Buffer): RecordBytes {
  return { type, source: bytes, payloadStart: 0, payloadEnd: bytes.length, seq: 7, timestamp: 1234 } as RecordBytes
}

t.test('a keyed payload is the unkeyed one, its map head counting two more, then the key and the first 16 bytes of its SHA-256; every read form leaves both out', async t => {
  await fc.assert(fc.property(someEntries, idempotencyKey, fc.option(fc.uuid(), { nil: undefined }), fc.boolean(), (sent, key, txId, single) => {
    const plainPayload = single ? encodeEntry(sent[0]) : encodeBatch(sent, txId)
    const keyed = single ? encodeEntry(sent[0], key) : encodeBatch(sent, txId, key)
    const digest = createHash('sha256').update(plainPayload.bytes).digest().subarray(0, 16)
    const expectedHead = Buffer.from(plainPayload.bytes.subarray(0, 3))
    expectedHead.writeUInt16BE(expectedHead.readUInt16BE(1) + 2, 1)
    if (!keyed.bytes.subarray(0, 3).equals(expectedHead)) throw new Error('the map head does not count the keys')
    if (!keyed.bytes.subarray(3, plainPayload.bytes.length).equals(plainPayload.bytes.subarray(3))) throw new Error('the body before the keys differs')
    if (!keyed.bytes.subarray(-16).equals(digest)) throw new Error('the digest is not the unkeyed payload\'s')
    const record = asRecord(keyed.type, keyed.bytes)
    const unkeyed = asRecord(plainPayload.type, plainPayload.bytes)
    const found = readTrailingKeys(record)
    if (found?.idempotencyKey !== key || found.contentDigest !== digest.toString('latin1')) throw new Error(`the trailing keys read back as ${JSON.stringify(found)}`)
    if (readTrailingKeys(unkeyed) !== undefined) throw new Error('an unkeyed payload read as keyed')
    if (checkRecordBody(record) === undefined) throw new Error('the grammar refuses a keyed body')
    if (!Buffer.from(recordLineBytes(record) as Buffer).equals(Buffer.from(recordLineBytes(unkeyed) as Buffer))) throw new Error('the NDJSON line shows the keys')
    if (!Buffer.from(recordMsgpackBytes(record) as Buffer).equals(Buffer.from(recordMsgpackBytes(unkeyed) as Buffer))) throw new Error('the msgpack form shows the keys')
    if (JSON.stringify(plain(decodeBody(record) as object)) !== JSON.stringify(plain(decodeBody(unkeyed) as object))) throw new Error('the decoded form shows the keys')
    return true
  }), { numRuns: 300 })
  t.pass('held for 300 generated cases')
})

t.test('the grammar refuses a key that is not printable ASCII or a digest that is not 16 bytes', async t => {
  const good = encodeEntry({ op: 'delete', id: 'x' }, 'key').bytes
  const badKey = Buffer.from(good)
  badKey[badKey.indexOf('key', 0, 'latin1')] = 0x07
  t.equal(checkRecordBody(asRecord(RecordType.delete, badKey)), undefined, 'a control character in the key')
  const shortDigest = Buffer.from(good)
  shortDigest[shortDigest.length - 17] = 15
  t.equal(checkRecordBody(asRecord(RecordType.delete, shortDigest.subarray(0, shortDigest.length - 1))), undefined, 'a 15-byte digest')
})

t.test('a repeat with the same key and content is answered from the first write and writes nothing; other content is refused naming the key', async t => {
  await fc.assert(fc.asyncProperty(someEntries, idempotencyKey, async (sent, key) => {
    const log = await openLog(t, { dir: tempDir(t), durability: 'none' })
    const first = await log.appendBatchWith(sent, { idempotencyKey: key })
    const again = await log.appendBatchWith(sent, { idempotencyKey: key })
    if (JSON.stringify(again) !== JSON.stringify({ ...first, replayed: true })) throw new Error(`${JSON.stringify(again)} after ${JSON.stringify(first)}`)
    await t.rejects(log.appendBatchWith([...sent, { op: 'delete', id: 'more' }], { idempotencyKey: key }), { code: 'WAL_IDEMPOTENCY_KEY_REUSED', message: new RegExp(JSON.stringify(key).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) })
    await t.rejects(log.appendWith(sent[0], { idempotencyKey: key }), { code: 'WAL_IDEMPOTENCY_KEY_REUSED' }, 'a single entry is other content than a batch of it')
    if (log.lastSeq !== 1) throw new Error(`${log.lastSeq} records written`)
    await log.close()
    return true
  }), { numRuns: 20 })
})

t.test('keys survive a reopen, are rebuilt from the records alone, and a retry after it gets the original seq', async t => {
  const dir = tempDir(t)
  let log = await openLog(t, { dir, durability: 'none', segmentBytes: 4096 })
  const keyed = entries(40).map((e, i) => ({ e, key: `k-${i}-${'x'.repeat(i * 6)}` }))
  const seqs: number[] = []
  for (const { e, key } of keyed) {
    seqs.push((await log.appendWith(e, { idempotencyKey: key })).seq)
    await log.append(entry(1000 + seqs.length))
  }
  await log.close()
  log = await openLog(t, { dir, durability: 'none', segmentBytes: 4096 })
  t.equal(log.status().idempotencyKeys, keyed.length, 'every key rebuilt')
  t.ok(log.status().segments.length > 3, 'over several segments')
  for (const [i, { e, key }] of keyed.entries()) t.same(await log.appendWith(e, { idempotencyKey: key }), { seq: seqs[i], replayed: true })
  t.equal(log.lastSeq, 2 * keyed.length, 'nothing written')
})

t.test('the window: a key is forgotten once its write is older than it, also after a reopen (by the record\'s timestamp)', async t => {
  const dir = tempDir(t)
  let now = 1_000_000
  const options = { dir, durability: 'none' as const, idempotency: { windowMs: 60_000 }, now: () => now }
  let log = await openLog(t, options)
  const e = entry(1)
  t.equal((await log.appendWith(e, { idempotencyKey: 'k' })).seq, 1)
  now += 59_999
  t.same(await log.appendWith(e, { idempotencyKey: 'k' }), { seq: 1, replayed: true }, 'inside the window: a replay')
  now += 1
  t.same(await log.appendWith(e, { idempotencyKey: 'k' }), { seq: 2, replayed: false }, 'past it: written again')
  t.equal(log.status().idempotencyKeys, 1)
  await log.close()
  // The record's timestamp is the real clock's: a window counted from it.
  now = Date.now()
  log = await openLog(t, options)
  t.equal(log.status().idempotencyKeys, 1, 'inside the window at the reopen')
  await log.close()
  now = Date.now() + 120_000
  log = await openLog(t, options)
  t.equal(log.status().idempotencyKeys, 0, 'past it, the reopen forgets it')
  t.same(await log.appendWith(e, { idempotencyKey: 'k' }), { seq: 3, replayed: false })
})

t.test('past the cap the oldest keys are evicted, counted and warned of once; the evicted key writes again', async t => {
  const evicted: number[] = []
  const warnings: string[] = []
  const logger = { info () {}, error () {}, warn (_fields: object, message: string) { if (message.includes('idempotency')) warnings.push(message) } }
  const log = await openLog(t, { dir: tempDir(t), durability: 'none', idempotency: { maxKeys: 5 }, logger, observer: { keysEvicted: n => evicted.push(n) } })
  for (let i = 0; i < 8; i++) await log.appendWith(entry(i), { idempotencyKey: `k${i}` })
  t.equal(log.status().idempotencyKeys, 5)
  t.equal(evicted.reduce((a, b) => a + b, 0), 3, 'three evicted')
  t.equal(warnings.length, 1, 'one warning, not one a write')
  t.same(await log.appendWith(entry(7), { idempotencyKey: 'k7' }), { seq: 8, replayed: true }, 'a recent key is kept')
  t.same(await log.appendWith(entry(0), { idempotencyKey: 'k0' }), { seq: 9, replayed: false }, 'the oldest was evicted')
})

t.test('keys go with their segments when retention deletes them, at a checkpoint and at open', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir, durability: 'none', segmentBytes: 4096 })
  for (let i = 0; i < 60; i++) await log.appendWith(entry(i), { idempotencyKey: `k${i}` })
  const { deletedSegments } = await log.checkpoint(50)
  t.ok(deletedSegments > 0)
  const oldest = log.status().segments[0].firstSeq
  t.equal(log.status().idempotencyKeys, 60 - (oldest - 1), 'the keys of deleted records are forgotten')
  t.same(await log.appendWith(entry(0), { idempotencyKey: 'k0' }), { seq: 62, replayed: false }, 'a deleted record\'s key writes again')
  t.same(await log.appendWith(entry(59), { idempotencyKey: 'k59' }), { seq: 60, replayed: true })
})

t.test('retention at the checkpoints keeps the last entry record, so the seq conditions hold on survives a reopen; past the byte cap, a reopen refuses any expectation below it', async t => {
  for (const retainMaxBytes of [0, 2048]) {
    const dir = tempDir(t)
    const options = { dir, durability: 'none' as const, segmentBytes: 1024, retainMaxBytes }
    const log = await WriteAheadLog.open(options)
    const written = fc.sample(generatedEntry, 200) as EntryInput[]
    while (log.status().segments.length < 3) await log.append(written[log.lastSeq])
    const lastEntrySeq = log.lastSeq
    // Only checkpoints from here on (8 KiB of them): each moves the lowest checkpoint to the log's last seq.
    for (let i = 0; i < 200; i++) await log.checkpoint()
    const { segments } = log.status()
    t.ok(segments[0].firstSeq > 1, `retainMaxBytes ${retainMaxBytes}: retention deleted the records before seq ${segments[0].firstSeq}`)
    const kept = segments[0].firstSeq <= lastEntrySeq
    t.equal(kept, retainMaxBytes === 0, retainMaxBytes === 0 ? 'the oldest segment held is the one holding the last entry record' : 'past the byte cap, that segment went too')
    await log.close()
    const reopened = await openLog(t, options)
    const next = written[lastEntrySeq]
    const refusal = await reopened.appendWith(next, { expectedLastSeq: 0 }).catch((err: unknown) => err) as { code?: string, lastSeq?: number }
    t.equal(refusal.code, 'WAL_SEQ_MISMATCH', 'reopened, a writer expecting an empty log is refused')
    if (kept) {
      t.equal(refusal.lastSeq, lastEntrySeq, 'with the last entry seq')
      const seq = reopened.lastSeq + 1
      t.same(await reopened.appendWith(next, { expectedLastSeq: lastEntrySeq }), { seq, replayed: false }, 'the writer expecting it writes')
    } else {
      t.ok((refusal.lastSeq ?? 0) >= lastEntrySeq && refusal.lastSeq === segments[0].firstSeq - 1, `with the seq before the oldest held (${String(refusal.lastSeq)}), no less than the last entry seq (${lastEntrySeq})`)
    }
  }
})

t.test('a repeat while the first is in flight waits for it and gets its answer; other content is refused at once', async t => {
  const log = await openLog(t, { dir: tempDir(t) })
  const e = entry(3)
  const [a, b] = await Promise.all([log.appendWith(e, { idempotencyKey: 'k' }), log.appendWith(e, { idempotencyKey: 'k' })])
  t.same([a, b], [{ seq: 1, replayed: false }, { seq: 1, replayed: true }])
  const first = log.appendWith(entry(4), { idempotencyKey: 'j' })
  await t.rejects(log.appendWith(entry(5), { idempotencyKey: 'j' }), { code: 'WAL_IDEMPOTENCY_KEY_REUSED' })
  t.same(await first, { seq: 2, replayed: false })
  t.equal(log.lastSeq, 2)
})

t.test('conditional appends racing for each seq: exactly one wins each, the others learn the last seq', async t => {
  const log = await openLog(t, { dir: tempDir(t), durability: 'none' })
  await fc.assert(fc.asyncProperty(fc.integer({ min: 2, max: 12 }), async writers => {
    const expected = log.lastSeq
    const results = await Promise.allSettled(Array.from({ length: writers }, async (_, w) => await log.appendWith(entry(w), { expectedLastSeq: expected })))
    const won = results.filter(r => r.status === 'fulfilled')
    if (won.length !== 1 || won[0].value.seq !== expected + 1) throw new Error(`${won.length} won seq ${expected + 1}`)
    for (const r of results) {
      if (r.status === 'rejected' && !(r.reason.code === 'WAL_SEQ_MISMATCH' && r.reason.lastSeq >= expected + 1)) throw new Error(String(r.reason))
    }
    if (log.lastSeq !== expected + 1) throw new Error('a loser wrote')
    return true
  }), { numRuns: 30 })
  t.pass('held for 30 generated cases')
})

t.test('a replay is answered even when its condition no longer holds; a condition still refuses a new write', async t => {
  const log = await openLog(t, { dir: tempDir(t), durability: 'none' })
  t.same(await log.appendWith(entry(1), { idempotencyKey: 'k', expectedLastSeq: 0 }), { seq: 1, replayed: false })
  await log.append(entry(2))
  t.same(await log.appendWith(entry(1), { idempotencyKey: 'k', expectedLastSeq: 0 }), { seq: 1, replayed: true })
  await t.rejects(log.appendWith(entry(3), { idempotencyKey: 'new', expectedLastSeq: 0 }), { code: 'WAL_SEQ_MISMATCH', lastSeq: 2 })
  t.same(await log.appendWith(entry(3), { idempotencyKey: 'new', expectedLastSeq: 2 }), { seq: 3, replayed: false }, 'the refused key was not remembered')
})

t.test('a commit retried with its key after the transaction is gone: answered as the commit was; another transaction\'s key is refused', async t => {
  const dir = tempDir(t)
  let log = await openLog(t, { dir, durability: 'none' })
  const tx = log.transactions.begin()
  log.transactions.stage(tx, entries(3))
  t.same(await log.transactions.commit(tx, { idempotencyKey: 'c' }), { seq: 1, count: 3, replayed: false })
  t.same(await log.transactions.commit(tx, { idempotencyKey: 'c' }), { seq: 1, count: 3, replayed: true })
  const other = log.transactions.begin()
  log.transactions.stage(other, entries(1))
  await t.rejects(log.transactions.commit(other, { idempotencyKey: 'c' }), { code: 'WAL_IDEMPOTENCY_KEY_REUSED' })
  t.equal(log.transactions.count, 1, 'the refused transaction stays open for a commit with its own key')
  await t.rejects(log.transactions.commit('gone', { idempotencyKey: 'c' }), { code: 'WAL_IDEMPOTENCY_KEY_REUSED' }, 'a transaction the key was not for')
  await t.rejects(log.transactions.commit('gone', { idempotencyKey: 'unknown' }), { code: 'WAL_TX_NOT_FOUND' })
  await log.close()
  log = await openLog(t, { dir, durability: 'none' })
  t.same(await log.transactions.commit(tx, { idempotencyKey: 'c' }), { seq: 1, count: 3, replayed: true }, 'after a reopen too')
})

t.test('a commit repeated while the first is in flight and refused is tried again on the reopened transaction, not answered 404', async t => {
  await fc.assert(fc.asyncProperty(someEntries, fc.uniqueArray(idempotencyKey, { minLength: 2, maxLength: 2 }), fc.integer({ min: 1, max: 4 }), async (staged, [key, nextKey], repeats) => {
    const log = await openLog(t, { dir: tempDir(t), durability: 'none' })
    await log.append(entry(0))
    const tx = log.transactions.begin()
    log.transactions.stage(tx, staged)
    const stale = { idempotencyKey: key, expectedLastSeq: 0 }
    const all = await Promise.allSettled(Array.from({ length: 1 + repeats }, async () => await log.transactions.commit(tx, stale)))
    const codes = all.map(outcome => outcome.status === 'rejected' ? (outcome.reason as { code: string }).code : 'committed')
    if (codes.some(code => code !== 'WAL_SEQ_MISMATCH')) throw new Error(`the stale commit and its repeats answered ${codes.join(', ')}`)
    if (log.transactions.count !== 1) throw new Error('the refused transaction is not open')
    // A repeat in flight whose own condition holds commits the transaction the first's refusal reopened.
    const [refused, repeated] = await Promise.allSettled([log.transactions.commit(tx, stale), log.transactions.commit(tx, { idempotencyKey: key, expectedLastSeq: 1 })])
    if (refused.status !== 'rejected' || repeated.status !== 'fulfilled') throw new Error(`answered ${refused.status}, ${repeated.status}`)
    if (JSON.stringify(repeated.value) !== JSON.stringify({ seq: 2, count: staged.length, replayed: false })) throw new Error(`the repeat answered ${JSON.stringify(repeated.value)}`)
    // Repeats in flight with a commit that succeeds get its answer replayed by the key.
    const next = log.transactions.begin()
    log.transactions.stage(next, staged)
    const answers = await Promise.all(Array.from({ length: 1 + repeats }, async () => await log.transactions.commit(next, { idempotencyKey: nextKey })))
    if (answers.some(answer => answer.seq !== 3) || answers.filter(answer => !answer.replayed).length !== 1) throw new Error(`answered ${JSON.stringify(answers)}`)
    if (log.lastSeq !== 3) throw new Error(`${log.lastSeq - 1} records written for two commits`)
    await log.close()
  }), { numRuns: 20 })
  t.pass('held for 20 generated cases')
})

t.test('conditions are checked: a key of the wrong characters or length, an expected seq that is not one', async t => {
  const log = await openLog(t, { dir: tempDir(t), durability: 'none' })
  for (const bad of ['', 'x'.repeat(256), 'tab\there', 'é']) await t.rejects(log.appendWith(entry(1), { idempotencyKey: bad }), { code: 'WAL_INVALID_ARGUMENT' }, JSON.stringify(bad))
  for (const bad of [-1, 1.5]) await t.rejects(log.appendWith(entry(1), { expectedLastSeq: bad }), { code: 'WAL_INVALID_ARGUMENT' }, String(bad))
  t.equal(log.lastSeq, 0)
  t.same((await collect(log.read({ after: 0 }).records)).length, 0)
})

t.test('the key index answers as a plain model of it does, through any mix of writes, expiry, retention and eviction', async t => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('remember' as const), key: fc.integer({ min: 0, max: 40 }), digest: fc.integer({ min: 0, max: 2 }) }),
    fc.record({ kind: fc.constant('find' as const), key: fc.integer({ min: 0, max: 40 }) }),
    fc.record({ kind: fc.constant('retain' as const), by: fc.integer({ min: 0, max: 10 }) }),
    fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 400 }) })
  )
  await fc.assert(fc.property(fc.array(op, { maxLength: 300 }), fc.integer({ min: 1, max: 30 }), (ops, maxKeys) => {
    let now = 0
    const windowMs = 1000
    const index = new KeyIndex({ windowMs, maxKeys }, () => now, { info () {}, warn () {}, error () {} }, () => {})
    // The model: keys in the order written, each with its write.
    const model = new Map<string, KeyedWrite>()
    let seq = 0
    let oldest = 1
    for (const step of ops) {
      if (step.kind === 'tick') now += step.ms
      if (step.kind === 'retain') {
        oldest = Math.min(seq + 1, oldest + step.by)
        index.forgetBefore(oldest)
        for (const [key, write] of model) if (write.seq < oldest) model.delete(key)
      }
      if (step.kind === 'remember') {
        const write = { seq: ++seq, contentDigest: `d${step.digest}`, writtenAt: now }
        index.remember(`k${step.key}`, write)
        model.delete(`k${step.key}`)
        model.set(`k${step.key}`, write)
        for (const [key, w] of model) if (w.writtenAt + windowMs <= now) model.delete(key)
        while (model.size > maxKeys) model.delete(model.keys().next().value as string)
      }
      if (step.kind === 'find') {
        const want = model.get(`k${step.key}`)
        const live = want !== undefined && want.seq >= oldest && want.writtenAt + windowMs > now ? want : undefined
        const got = index.find(`k${step.key}`, oldest)
        if (JSON.stringify(got) !== JSON.stringify(live)) throw new Error(`k${step.key}: ${JSON.stringify(got)} where the model has ${JSON.stringify(live)}`)
      }
      if (index.size > maxKeys) throw new Error(`${index.size} keys held, past the cap of ${maxKeys}`)
    }
    return true
  }), { numRuns: 300 })
  t.pass('held for 300 generated cases')
})
