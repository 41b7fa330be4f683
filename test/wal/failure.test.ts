// The engine's failed state, by failure injection through the FileIO seam: a write or fsync that
// fails rejects its batch and everything queued behind it, puts the log in the failed state for good
// (nothing is retried, no write is taken, no transaction begun, staged or committed), and the
// directory reopens cleanly with every acknowledged record.
import t, { type Test } from 'tap'
import type { EntryInput } from '../../src/entry.js'
import { segmentFileName } from '../../src/wal/format.js'
import { WriteAheadLog, type WalOptions } from '../../src/wal/log.js'
import {
  bodyOf, collect, entries, failNext, openLog, RecordingIO, storedForm, tempDir, type IoOp
} from '../helpers/wal.js'

const acknowledged = entries(5)

/**
 * Reopens `dir` with the real file layer and checks that it holds every acknowledged record, then
 * at most some of the refused ones (bytes written before a failed fsync may well be on disk), and
 * takes appends again.
 */
async function expectCleanReopen (t: Test, options: WalOptions, refused: EntryInput[]): Promise<void> {
  const log = await openLog(t, { ...options, io: undefined })
  const records = (await collect(log.read({ after: 0 }).records)).map(bodyOf)
  t.same(records.slice(0, acknowledged.length), acknowledged.map(storedForm), 'every acknowledged record is there')
  const extra = records.slice(acknowledged.length)
  t.same(extra, refused.slice(0, extra.length).map(storedForm), `beyond them only refused records, in order (${extra.length} of ${refused.length})`)
  t.equal(log.state, 'ok', 'the reopened log is ok')
  t.equal(await log.append(acknowledged[0]), log.lastSeq, 'the reopened log takes appends')
  await log.close()
}

/** Appends the acknowledged records, fails the next `op`, and checks the log's refusal. */
async function failOnce (t: Test, op: IoOp, code: string, file: RegExp, options: Partial<WalOptions> = {}): Promise<void> {
  const dir = tempDir(t)
  const io = new RecordingIO()
  const log = await openLog(t, { dir, io, maxBatchRecords: 2, ...options })
  for (const e of acknowledged) await log.append(e)

  const injected = failNext(io, op, code, { file })
  const callsBefore = io.calls(op)
  // Three batches of two: the first fails, the two queued behind it must never be written.
  const refused = entries(6, 100)
  const outcomes = await Promise.allSettled(refused.map(async e => await log.append(e)))
  t.equal(injected.failed(), 1, `one ${op} failed with ${code}`)
  t.same(outcomes.map(o => o.status), refused.map(() => 'rejected'), 'the failed batch and every append queued behind it are rejected')
  t.match(outcomes[0], { reason: { code: 'WAL_FAILED', cause: { code } } }, 'the rejection carries the cause')
  t.equal(log.state, 'failed', 'the log is in the failed state')

  await t.rejects(log.append(acknowledged[0]), { code: 'WAL_FAILED' }, 'a later append is rejected')
  await t.rejects(log.appendBatch(acknowledged), { code: 'WAL_FAILED' }, 'a later batch is rejected')
  await t.rejects(log.checkpoint(1), { code: 'WAL_FAILED' }, 'a later checkpoint is rejected')
  t.throws(() => log.transactions.begin(), { code: 'WAL_FAILED' }, 'a later transaction is refused')
  await log.close()
  t.equal(io.calls(op) - callsBefore, 1, `the failed ${op} was not retried`)
  await expectCleanReopen(t, { dir, ...options }, refused)
}

for (const [op, code] of [['writeAll', 'EIO'], ['writeAll', 'ENOSPC'], ['fdatasync', 'EIO'], ['fdatasync', 'ENOSPC']] as const) {
  t.test(`a failed ${op} (${code}) of records`, async t => {
    await failOnce(t, op, code, /\.seg$/)
  })
}

t.test('a failed write with durability none', async t => {
  await failOnce(t, 'writeAll', 'EIO', /\.seg$/, { durability: 'none' })
})

t.test('failures while rotating to a new segment', async t => {
  // Each record takes its own segment, so every append creates one.
  const segmentBytes = 64
  const next = new RegExp(`${segmentFileName(acknowledged.length + 1)}$`)
  const cases: Array<[IoOp, string, RegExp]> = [
    // A create that found no room is retried (disk-faults.test.ts); one that failed otherwise fails the log.
    ['create', 'EIO', next],
    ['writeAll', 'ENOSPC', next],
    ['fdatasync', 'EIO', next],
    ['fsyncDir', 'EIO', /./]
  ]
  for (const [op, code, file] of cases) {
    await t.test(`${op} fails with ${code}`, async t => {
      await failOnce(t, op, code, file, { segmentBytes })
    })
  }
})

t.test('a failed fsync leaves nothing half-acknowledged across a close', async t => {
  const dir = tempDir(t)
  const io = new RecordingIO()
  const log = await WriteAheadLog.open({ dir, io })
  for (const e of acknowledged) await log.append(e)
  failNext(io, 'fdatasync', 'EIO', { file: /\.seg$/ })
  const settled = Promise.allSettled(entries(3, 100).map(async e => await log.append(e)))
  // Closing right away: the queued appends are still settled, each with the failure, none lost.
  await log.close()
  const outcomes = await settled
  t.same(outcomes.map(o => o.status === 'rejected' && (o.reason as { code?: string }).code), ['WAL_FAILED', 'WAL_FAILED', 'WAL_FAILED'])
  await expectCleanReopen(t, { dir }, entries(3, 100))
})

// A failed log takes no writes, so it opens and stages no transaction either: nothing is staged in
// memory that could never be committed.
t.test('after a failed fsync, opening and staging a transaction are refused with WAL_FAILED', async t => {
  const io = new RecordingIO()
  const log = await openLog(t, { dir: tempDir(t), io })
  const txId = log.transactions.begin()
  t.equal(log.transactions.stage(txId, entries(2)), 2, 'staging works while the log is ok')

  failNext(io, 'fdatasync', 'EIO')
  await t.rejects(log.append(entries(1, 10)[0]), { code: 'WAL_FAILED' })
  t.equal(log.state, 'failed')

  t.throws(() => log.transactions.begin(), { code: 'WAL_FAILED' }, 'no new transaction')
  t.throws(() => log.transactions.stage(txId, entries(1, 20)), { code: 'WAL_FAILED' }, 'no staging into an open one')
  await t.rejects(log.transactions.commit(txId), { code: 'WAL_FAILED' }, 'and its commit fails')
})
