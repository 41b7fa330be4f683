// The engine refuses seqs and limits that are not whole numbers in range, rather than reading or
// recording nonsense (the HTTP layer validates first; direct users of the engine get this).
import t from 'tap'
import { entries, openLog, tempDir } from '../helpers/wal.js'

t.test('checkpoint and read take only non-negative safe integers', async t => {
  const log = await openLog(t, { dir: tempDir(t) })
  for (const e of entries(3)) await log.append(e)
  for (const bad of [1.5, -1, Number.NaN, 2 ** 53]) {
    await t.rejects(log.checkpoint(bad), { code: 'WAL_INVALID_ARGUMENT' }, `checkpoint(${bad})`)
    t.throws(() => log.read({ after: bad }), { code: 'WAL_INVALID_ARGUMENT' }, `read({ after: ${bad} })`)
  }
  t.throws(() => log.read({ after: 0, limit: 0 }), { code: 'WAL_INVALID_ARGUMENT' }, 'limit 0')
  t.equal(log.checkpointSeq, 0, 'no checkpoint was recorded')
  t.equal(log.lastSeq, 3, 'nothing was appended')
})
