// kill -9 under load: the real service, killed with SIGKILL at random moments while concurrent
// writers post entries, batches and transaction commits, then restarted and checked against a
// ledger of every request sent (see test/helpers/fault-kill9.ts for what is checked).
import fs from 'node:fs'
import t from 'tap'
import { runKill9 } from '../helpers/fault-kill9.js'
import { tempDir } from '../helpers/wal.js'

/** Cycles in `npm test`; `npm run soak` runs hundreds. */
const CYCLES = 12

t.test(`${CYCLES} kill -9 cycles lose no acknowledged entry and show none never sent`, async t => {
  const dataDir = tempDir(t, 'vecwal-kill9-')
  const totals = await runKill9({ dataDir, cycles: CYCLES })
  t.comment(`cycles ${totals.cycles}, acknowledged requests ${totals.acknowledgedRequests}, acknowledged entries ${totals.acknowledgedEntries}, ` +
    `entry checks ${totals.entryChecks}, lost ${totals.lost}, unexpected ${totals.unexpected}, unanswered ${totals.unanswered} ` +
    `(${totals.unansweredRecovered} recovered), torn tails cut ${totals.tornTailsCut}, records ${totals.records}`)
  t.same(totals.problems, [], 'no problem found')
  t.equal(totals.cycles, CYCLES, 'every cycle ran')
  t.equal(totals.lost, 0, 'no acknowledged entry lost')
  t.equal(totals.unexpected, 0, 'no record that was not sent, changed or out of place')
  t.equal(totals.refused, 0, 'no request refused')
  t.ok(totals.acknowledgedEntries > CYCLES * 10, 'the writers got entries acknowledged in the cycles')
  t.ok(totals.entryChecks >= totals.acknowledgedEntries, 'every acknowledged entry was checked after a restart')
  t.ok(totals.unanswered > 0, 'kills came while requests were in flight')
  const segments = fs.readdirSync(dataDir).filter(name => name.endsWith('.seg'))
  t.ok(segments.length > 1, `segments rotated (${segments.length} segment files)`)
})
