// A failed log takes no writes, so it opens and stages no transaction either: nothing is staged in
// memory that could never be committed.
import t from 'tap'
import { entries, failNext, openLog, RecordingIO, tempDir } from '../helpers/wal.js'

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
