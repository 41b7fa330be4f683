// kill -9 with idempotency keys: every request sent with a key, the service killed at random
// moments, every unanswered request retried with its key after the restart; the log then holds
// each request's content exactly once, at the seq every answer to it gave (test/helpers/fault-kill9-keys.ts).
// Cycles 1 and 3 run with each fdatasync slowed and are killed once a write waits on its sync: at
// least one kill must have come inside an fdatasync.
import t from 'tap'
import { runKeyedKill9 } from '../helpers/fault-kill9-keys.js'
import { tempDir } from '../helpers/wal.js'

const CYCLES = 3
/** How long each fdatasync of the slow-sync cycles waits first: most of a cycle is then spent inside one. */
const FSYNC_DELAY_MS = 30

t.test(`${CYCLES} kill -9 cycles with keyed retries: each request in the log exactly once, at the seq its retries got`, async t => {
  const dataDir = tempDir(t, 'vecwal-kill9-keys-')
  const totals = await runKeyedKill9({ dataDir, cycles: CYCLES, fsyncDelayMs: FSYNC_DELAY_MS })
  t.comment(`requests ${totals.requests}, unanswered ${totals.unanswered} (retries replayed ${totals.replayed}, written by the retry ${totals.writtenByRetry}, ` +
    `recommitted ${totals.recommitted}), record checks ${totals.recordChecks}, kills inside an fdatasync ${totals.killsInSync} of ${totals.slowSyncCycles} slow-sync cycles`)
  t.same(totals.problems, [], 'no request missing, twice in the log, changed, or answered with another seq')
  t.equal(totals.cycles, CYCLES, 'every cycle ran')
  t.ok(totals.unanswered > 0, 'kills came while requests were in flight')
  t.equal(totals.slowSyncCycles, 2, 'cycles 1 and 3 ran with slow fdatasyncs')
  t.ok(totals.killsInSync >= 1, 'a kill came while an fdatasync was under way')
  t.equal(totals.replayed + totals.writtenByRetry, totals.unanswered, 'every unanswered request was answered by its retry')
  t.ok(totals.recordChecks >= totals.requests, 'every request was checked after a restart')
})
