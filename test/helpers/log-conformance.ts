// What every backend behind the `Log` interface (src/log.ts) must do, written once: seqs strictly
// increasing, gap-free and in the order reads give back; batches atomic under one seq; checkpoint
// rules; read ranges and their errors; transactions; the failed state; close. A backend's test
// calls `logConformance` with a factory that opens a fresh log of its kind. Entries are generated
// (test/helpers/bodies.ts): any script, float32 vectors of any bits.
import fc from 'fast-check'
import type { Test } from 'tap'
import type { Log, LogRecord } from '../../src/log.js'
import type { EntryInput } from '../../src/entry.js'
import { entry, float32Bits, type Entry } from './bodies.js'

export interface LogUnderTest {
  log: Log
  /** From now on every write fails as a failed fsync does; undefined for a backend that cannot be made to. */
  failWrites?: () => void
}

/** Opens a fresh, empty log of the backend under test; the factory closes and removes it at teardown. */
export type LogFactory = (t: Test) => Promise<LogUnderTest>

export interface BackendTraits {
  /** The factory's logs come with `failWrites`. */
  canFailWrites: boolean
}

async function records (log: Log, after = 0, includeCheckpoints = false): Promise<LogRecord[]> {
  const out: LogRecord[] = []
  for await (const record of log.read({ after, includeCheckpoints }).records) out.push(record)
  return out
}

async function collectSeqs (records: AsyncIterable<LogRecord>): Promise<number[]> {
  const seqs: number[] = []
  for await (const record of records) seqs.push(record.seq)
  return seqs
}

/** Why a record's entry is not `sent`, or undefined; vectors compared as float32 bits. */
function differs (got: unknown, sent: Entry): string | undefined {
  const e = got as Record<string, unknown>
  if (e.op !== sent.op || e.id !== sent.id) return `${String(e.op)} ${String(e.id)} for ${sent.op} ${sent.id}`
  if (sent.op === 'delete') return undefined
  const bits = float32Bits(e.vector as Float32Array)
  const want = float32Bits(sent.vector)
  if (bits.length !== want.length || bits.some((b, i) => b !== want[i])) return `the vector of ${sent.id}`
  if (JSON.stringify(e.metadata ?? null) !== JSON.stringify(sent.metadata ?? null)) return `the metadata of ${sent.id}`
  return undefined
}

async function rejectsWith (t: Test, promise: Promise<unknown>, code: string, what: string): Promise<void> {
  await t.rejects(promise, { code }, what)
}

function throwsWith (t: Test, fn: () => unknown, code: string, what: string): void {
  t.throws(fn, { code }, what)
}

const entries = (min: number, max: number): fc.Arbitrary<Entry[]> => fc.array(entry, { minLength: min, maxLength: max })

export function logConformance (t: Test, open: LogFactory, traits: BackendTraits): void {
  t.test('concurrent appends get strictly increasing, gap-free seqs, and reads give every entry back at its seq', async t => {
    await fc.assert(fc.asyncProperty(entries(1, 30), async sent => {
      const { log } = await open(t)
      const seqs = await Promise.all(sent.map(async e => await log.append(e as EntryInput)))
      const sorted = [...seqs].sort((a, b) => a - b)
      if (sorted.some((seq, i) => seq !== i + 1)) throw new Error(`seqs ${sorted.join()} are not 1..${sent.length}`)
      const read = await records(log)
      if (read.map(r => r.seq).join() !== sorted.join()) throw new Error('reads do not give the seqs in order')
      for (const record of read) {
        const why = differs(record, sent[seqs.indexOf(record.seq)])
        if (why !== undefined) throw new Error(`seq ${record.seq}: ${why}`)
      }
      if (log.lastSeq !== sent.length || log.status().lastSeq !== sent.length) throw new Error('lastSeq is not the last seq given')
      return true
    }), { numRuns: 15 })
    t.pass('held for 15 generated cases')
  })

  t.test('a batch is one record under one seq, all its entries in order, its txId kept', async t => {
    await fc.assert(fc.asyncProperty(entries(1, 20), fc.option(fc.string({ minLength: 1, maxLength: 20 }), { nil: undefined }), async (sent, txId) => {
      const { log } = await open(t)
      const before = await log.append({ op: 'delete', id: 'before' })
      const seq = await log.appendBatch(sent as EntryInput[], txId)
      if (seq !== before + 1) throw new Error(`batch seq ${seq} after ${before}`)
      const [record] = await records(log, before)
      if (record?.op !== 'batch' || record.seq !== seq) throw new Error('no batch record at its seq')
      if (record.txId !== txId) throw new Error(`txId ${String(record.txId)} for ${String(txId)}`)
      if (record.entries.length !== sent.length) throw new Error(`${record.entries.length} entries for ${sent.length}`)
      record.entries.forEach((got, i) => {
        const why = differs(got, sent[i])
        if (why !== undefined) throw new Error(why)
      })
      return true
    }), { numRuns: 10 })
    t.pass('held for 10 generated cases')
  })

  t.test('checkpoints: never backwards, never ahead, the last seq by default; reads start after the checkpoint and leave checkpoint records out', async t => {
    const { log } = await open(t)
    for (let i = 0; i < 5; i++) await log.append({ op: 'delete', id: `d${i}` })
    await rejectsWith(t, log.checkpoint(6), 'WAL_CHECKPOINT_AHEAD', 'a checkpoint past the last seq')
    const first = await log.checkpoint(3)
    t.same(first, { checkpoint: 3, seq: 6, deletedSegments: first.deletedSegments }, 'the checkpoint record takes the next seq')
    await rejectsWith(t, log.checkpoint(2), 'WAL_CHECKPOINT_BACKWARDS', 'a checkpoint below the current one')
    t.equal(log.status().checkpoint, 3)
    t.same((await records(log, 3)).map(r => r.seq), [4, 5], 'the checkpoint record is left out of reads')
    t.same((await records(log, 3, true)).map(r => r.seq), [4, 5, 6], 'unless asked for')
    const read = log.read()
    t.equal(read.checkpoint, 3, 'a read starts after the checkpoint by default')
    const defaulted = await log.checkpoint()
    t.equal(defaulted.checkpoint, 6, 'the default checkpoint is the last seq')
    t.equal(log.lastSeq, 7)
  })

  t.test('reads: a range past the last seq or of a bad number is refused; limit; a read ends where the log was when it began', async t => {
    const { log } = await open(t)
    for (let i = 0; i < 6; i++) await log.append({ op: 'delete', id: `d${i}` })
    throwsWith(t, () => log.read({ after: 7 }), 'WAL_RANGE_AHEAD', 'after past the last seq')
    for (const bad of [-1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 2]) throwsWith(t, () => log.read({ after: bad }), 'WAL_INVALID_ARGUMENT', `after ${bad}`)
    for (const bad of [0, -3, 2.5]) throwsWith(t, () => log.read({ after: 0, limit: bad }), 'WAL_INVALID_ARGUMENT', `limit ${bad}`)
    t.same((await records(log, 6)).length, 0, 'after the last seq: nothing')
    const limited: number[] = []
    for await (const r of log.read({ after: 1, limit: 3 }).records) limited.push(r.seq)
    t.same(limited, [2, 3, 4])
    const read = log.read({ after: 0 })
    t.equal(read.lastSeq, 6)
    await log.append({ op: 'delete', id: 'later' })
    const seen: number[] = []
    for await (const r of read.records) seen.push(r.seq)
    t.same(seen, [1, 2, 3, 4, 5, 6], 'an append after the read began is not in it')
  })

  t.test('consumers: created at a start, listed by name, each with its own checkpoint (never back, never ahead), deleted; default is the checkpoint\'s', async t => {
    const { log } = await open(t)
    for (let i = 0; i < 6; i++) await log.append({ op: 'delete', id: `d${i}` })
    t.same(log.consumers.list(), [], 'no consumer before any is made or any checkpoint taken')
    const made = await log.consumers.create('index-a', 2)
    t.match(made, { created: true, consumer: { name: 'index-a', checkpoint: 2, start: 2, lagSeqs: 4, checkpointedAt: null, passedByRetention: false } })
    t.match(await log.consumers.create('index-a', 2), { created: false, consumer: { checkpoint: 2 } }, 'again at the same start: no change')
    t.match(await log.consumers.create('index-a'), { created: false }, 'again with no start: no change')
    await rejectsWith(t, log.consumers.create('index-a', 3), 'WAL_CONSUMER_EXISTS', 'again at another start')
    await rejectsWith(t, log.consumers.create('late', 99), 'WAL_RANGE_AHEAD', 'a start past the last seq')
    for (const bad of ['', 'has space', 'x'.repeat(65), 'a/b']) await rejectsWith(t, log.consumers.create(bad), 'WAL_INVALID_ARGUMENT', `name ${JSON.stringify(bad)}`)
    t.match((await log.consumers.create('fresh')).consumer, { checkpoint: 0, start: 0 }, 'by default it starts before the oldest record')
    await rejectsWith(t, log.consumers.checkpoint('index-a', 1), 'WAL_CHECKPOINT_BACKWARDS', 'a checkpoint below its own')
    await rejectsWith(t, log.consumers.checkpoint('index-a', log.lastSeq + 1), 'WAL_CHECKPOINT_AHEAD', 'a checkpoint past the last seq')
    await rejectsWith(t, log.consumers.checkpoint('nobody', 1), 'WAL_CONSUMER_NOT_FOUND', 'an unknown consumer')
    const moved = await log.consumers.checkpoint('index-a', 4)
    t.match(moved, { checkpoint: 4 })
    const status = log.consumers.get('index-a')
    t.match(status, { checkpoint: 4, start: 2, lagSeqs: 2 }, 'lag runs to the last entry record, 6, the consumer records after it aside')
    t.ok(status.checkpointedAt !== null && !Number.isNaN(Date.parse(status.checkpointedAt)), 'its checkpoint time is RFC 3339')
    t.equal(log.status().checkpoint, 0, 'the checkpoint of the log is the consumer default\'s, untouched')
    await log.checkpoint(3)
    t.same(log.consumers.list().map(c => [c.name, c.checkpoint]), [['default', 3], ['fresh', 0], ['index-a', 4]], 'default appears at its first checkpoint; names in order')
    t.equal(log.read({ consumer: 'index-a' }).checkpoint, 4, 'a read for a consumer starts after its checkpoint')
    t.same((await collectSeqs(log.read({ consumer: 'index-a' }).records)), [5, 6], 'and gives the entries after it (consumer and checkpoint records left out)')
    throwsWith(t, () => log.read({ consumer: 'nobody' }), 'WAL_CONSUMER_NOT_FOUND', 'a read for an unknown consumer')
    await log.consumers.delete('index-a')
    await rejectsWith(t, log.consumers.delete('index-a'), 'WAL_CONSUMER_NOT_FOUND', 'a consumer deleted twice')
    throwsWith(t, () => log.consumers.get('index-a'), 'WAL_CONSUMER_NOT_FOUND', 'a deleted consumer')
    t.same(log.consumers.list().map(c => c.name), ['default', 'fresh'])
  })

  t.test('since: a read gives exactly the records stamped at or after a moment, whatever the moment', async t => {
    const { log } = await open(t)
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: -2, max: 2 }), async (writes, pick, shift) => {
      for (let i = 0; i < writes; i++) {
        await Promise.all([log.append({ op: 'delete', id: `w${i}` }), log.append({ op: 'delete', id: `x${i}` })])
      }
      const all = await records(log, 0)
      for (let i = 1; i < all.length; i++) if (all[i].timestamp < all[i - 1].timestamp) throw new Error(`timestamp of seq ${all[i].seq} is before seq ${all[i - 1].seq}'s`)
      const since = all[Math.min(pick * 2, all.length - 1)].timestamp + shift
      const got = await collectSeqs(log.read({ since }).records)
      const want = all.filter(r => r.timestamp >= since).map(r => r.seq)
      if (got.join() !== want.join()) throw new Error(`since ${since}: ${got.join()} for ${want.join()}`)
      return true
    }), { numRuns: 10 })
    throwsWith(t, () => log.read({ since: -1 }), 'WAL_INVALID_ARGUMENT', 'a negative since')
  })

  t.test('transactions: staged entries commit as one batch carrying the txId; aborted ones never reach the log', async t => {
    const { log } = await open(t)
    const tx = log.transactions
    const kept = tx.begin()
    const dropped = tx.begin()
    t.equal(tx.stage(kept, [{ op: 'delete', id: 'a' }]), 1)
    t.equal(tx.stage(kept, [{ op: 'insert', id: 'b', vector: [1, 2] }, { op: 'delete', id: 'c' }]), 3)
    tx.stage(dropped, [{ op: 'delete', id: 'never' }])
    tx.abort(dropped)
    t.same(await tx.commit(kept), { seq: 1, count: 3, replayed: false })
    const [record] = await records(log)
    t.equal(record.op === 'batch' ? record.txId : undefined, kept, 'the batch carries the txId')
    t.equal(log.lastSeq, 1, 'nothing of the aborted transaction')
    await rejectsWith(t, tx.commit(kept), 'WAL_TX_NOT_FOUND', 'a committed transaction is gone')
    throwsWith(t, () => tx.stage(dropped, [{ op: 'delete', id: 'x' }]), 'WAL_TX_NOT_FOUND', 'so is an aborted one')
    await rejectsWith(t, tx.commit(tx.begin()), 'WAL_TX_EMPTY', 'an empty commit')
  })

  t.test('idempotency keys: a repeat of the same content is answered from the first write and writes nothing; other content is refused naming the key; reads leave the keys out', async t => {
    await fc.assert(fc.asyncProperty(entries(1, 5), fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map(c => String.fromCharCode(c)), minLength: 1, maxLength: 255 }), async (sent, key) => {
      const { log } = await open(t)
      const batch = sent as EntryInput[]
      const first = await log.appendBatchWith(batch, { idempotencyKey: key })
      const again = await log.appendBatchWith(batch, { idempotencyKey: key })
      if (first.replayed || !again.replayed || again.seq !== first.seq || again.count !== sent.length) throw new Error(`${JSON.stringify(again)} after ${JSON.stringify(first)}`)
      const reused = await log.appendWith(batch[0], { idempotencyKey: key }).then(() => undefined, (err: { code?: string, message?: string }) => err)
      if (reused?.code !== 'WAL_IDEMPOTENCY_KEY_REUSED' || reused.message?.includes(JSON.stringify(key)) !== true) throw new Error(`other content: ${JSON.stringify(reused)}`)
      if (log.lastSeq !== 1) throw new Error(`${log.lastSeq} records for one keyed write`)
      if (log.status().idempotencyKeys !== 1) throw new Error(`${log.status().idempotencyKeys} keys held`)
      const [record] = await records(log)
      if (record.op !== 'batch' || 'idempotencyKey' in record || 'contentDigest' in record) throw new Error('the read shows the keys')
      return true
    }), { numRuns: 10 })
    t.pass('held for 10 generated cases')
  })

  t.test('a repeat while the first is in flight waits for it and gets its answer', async t => {
    const { log } = await open(t)
    const e: EntryInput = { op: 'delete', id: 'once' }
    const answers = await Promise.all(Array.from({ length: 5 }, async () => await log.appendWith(e, { idempotencyKey: 'k' })))
    t.same(answers.map(a => a.seq), [1, 1, 1, 1, 1])
    t.same(answers.filter(a => !a.replayed).length, 1, 'one write, four replays')
    t.equal(log.lastSeq, 1)
  })

  t.test('conditional appends: of writers expecting the same last seq exactly one wins each seq; the others learn the last seq', async t => {
    const { log } = await open(t)
    for (let round = 0; round < 5; round++) {
      const expected = log.lastSeq
      const results = await Promise.allSettled(Array.from({ length: 4 }, async (_, w) => await log.appendWith({ op: 'delete', id: `r${round}w${w}` }, { expectedLastSeq: expected })))
      const won = results.filter(r => r.status === 'fulfilled')
      t.same(won.map(r => r.value.seq), [expected + 1], `round ${round}: one winner`)
      for (const r of results) if (r.status === 'rejected') t.match(r.reason, { code: 'WAL_SEQ_MISMATCH', lastSeq: expected + 1 })
    }
    t.equal(log.lastSeq, 5)
  })

  t.test('a keyed commit retried after its transaction is gone is answered as the commit was', async t => {
    const { log } = await open(t)
    const tx = log.transactions.begin()
    log.transactions.stage(tx, [{ op: 'delete', id: 'a' }, { op: 'delete', id: 'b' }])
    t.same(await log.transactions.commit(tx, { idempotencyKey: 'commit-1' }), { seq: 1, count: 2, replayed: false })
    t.same(await log.transactions.commit(tx, { idempotencyKey: 'commit-1' }), { seq: 1, count: 2, replayed: true })
    await rejectsWith(t, log.transactions.commit(tx, { idempotencyKey: 'other' }), 'WAL_TX_NOT_FOUND', 'an unknown key does not revive the transaction')
  })

  const failing = { skip: traits.canFailWrites ? false : 'this backend cannot be made to fail a write' }
  t.test('a failed write fails the log: every later write is refused, what was durable still reads', failing, async t => {
    const { log, failWrites } = await open(t)
    if (failWrites === undefined) throw new Error('the factory gave no failWrites, though the traits say it can')
    await log.append({ op: 'delete', id: 'durable' })
    failWrites()
    await rejectsWith(t, log.append({ op: 'delete', id: 'lost' }), 'WAL_FAILED', 'the failing write')
    t.equal(log.state, 'failed')
    t.equal(log.status().state, 'failed')
    await rejectsWith(t, log.appendBatch([{ op: 'delete', id: 'later' }]), 'WAL_FAILED', 'a later batch')
    await rejectsWith(t, log.checkpoint(1), 'WAL_FAILED', 'a checkpoint')
    throwsWith(t, () => log.transactions.begin(), 'WAL_FAILED', 'a new transaction')
    t.same((await records(log)).map(r => r.seq), [1], 'the durable record still reads')
  })

  t.test('close: what was appended is durable first; afterwards every call is refused as closed', async t => {
    const { log } = await open(t)
    const pending = [log.append({ op: 'delete', id: 'a' }), log.appendBatch([{ op: 'delete', id: 'b' }])]
    await log.close()
    t.same(await Promise.all(pending), [1, 2], 'appends made before close were made durable')
    t.equal(log.state, 'closed')
    await rejectsWith(t, log.append({ op: 'delete', id: 'c' }), 'WAL_CLOSED', 'an append')
    await rejectsWith(t, log.close(), 'WAL_CLOSED', 'a second close')
  })

  // Follow (issue #12): a read that goes on as the log grows.
  t.test('follow: records appended concurrently reach a follower once each, in seq order; close ends it after the last', async t => {
    await fc.assert(fc.asyncProperty(entries(0, 5), entries(1, 30), async (before, later) => {
      const { log } = await open(t)
      for (const e of before) await log.append(e as EntryInput)
      const following = (async () => {
        const seqs: number[] = []
        for await (const record of log.read({ after: 0, follow: true }).records) seqs.push(record.seq)
        return seqs
      })()
      await Promise.all(later.map(async e => await log.append(e as EntryInput)))
      await log.close()
      const seqs = await following
      const all = before.length + later.length
      if (seqs.join() !== Array.from({ length: all }, (_, i) => i + 1).join()) throw new Error(`the follower got ${seqs.join()} of 1..${all}`)
      return true
    }), { numRuns: 10 })
    t.pass('held for 10 generated cases')
  })

  t.test('follow: a failed log ends a follower with WAL_FAILED, after the records that were durable', failing, async t => {
    const { log, failWrites } = await open(t)
    if (failWrites === undefined) throw new Error('the factory gave no failWrites, though the traits say it can')
    await log.append({ op: 'delete', id: 'durable' })
    const seqs: number[] = []
    const following = (async () => { for await (const record of log.read({ after: 0, follow: true }).records) seqs.push(record.seq) })()
    failWrites()
    await rejectsWith(t, log.append({ op: 'delete', id: 'lost' }), 'WAL_FAILED', 'the failing write')
    await rejectsWith(t, following, 'WAL_FAILED', 'the follower')
    t.same(seqs, [1], 'it got the durable record and nothing else')
  })

  t.test('long poll: waitForRecords resolves once a record after `after` is durable, or when its time is up', async t => {
    const { log } = await open(t)
    const waiting = log.waitForRecords({ after: 0, timeoutMs: 60_000 })
    await log.append({ op: 'delete', id: 'a' })
    await waiting
    t.equal(log.lastSeq, 1, 'woken by the append')
    await log.waitForRecords({ after: 1, timeoutMs: 10 })
    t.equal(log.lastSeq, 1, 'nothing new: the time ran out')
  })

  t.test('checkpoint records are the log\'s own: they answer no long poll, move no conditional append\'s last seq, and add no lag', async t => {
    const { log } = await open(t)
    const entrySeq = await log.append({ op: 'delete', id: 'a' })
    await log.consumers.create('reader', 0)
    await log.consumers.checkpoint('reader')
    await log.checkpoint()
    t.ok(log.lastSeq > entrySeq, 'the consumer and checkpoint records took seqs')
    t.equal(log.consumers.get('reader').lagSeqs, 0, 'a consumer that checkpointed the last seq has no lag')
    let answered = false
    const waiting = log.waitForRecords({ after: entrySeq, timeoutMs: 60_000 }).then(() => { answered = true })
    await log.consumers.checkpoint('reader')
    // Turns of the event loop and a pause in which a wrong answer would have come.
    await new Promise(resolve => setTimeout(resolve, 50))
    t.notOk(answered, 'a checkpoint record after `after` does not answer the long poll')
    const next = await log.appendWith({ op: 'delete', id: 'b' }, { expectedLastSeq: entrySeq })
    t.equal(next.replayed, false, 'the last entry record is what a conditional append expects, checkpoints aside')
    await waiting
    t.ok(answered, 'the entry record answers it')
    const { checkpoint, lagSeqs } = log.consumers.get('reader')
    t.equal(lagSeqs, next.seq - checkpoint, 'lag runs from the consumer\'s checkpoint to the new entry record')
  })
}
