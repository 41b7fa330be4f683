// A smoke test of `npm run bench`: its quick mode runs every scenario with tiny loads and logs, and
// must print its table and leave no temp directory behind. Nothing here is about speed: speed
// targets live in the bench, never in tests.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { ownChild } from '../scripts/children.js'
import { ROOT, untappedEnv } from './helpers/project.js'

const BENCH = path.join(ROOT, 'dist', 'bench', 'run.js')

function benchTempDirs (): Set<string> {
  return new Set(fs.readdirSync(os.tmpdir()).filter(name => name.startsWith('vecwal-bench-')))
}

t.test('the bench runs every scenario in quick mode and prints its table', async t => {
  const before = benchTempDirs()
  const run = promisify(execFile)(process.execPath, [BENCH, '--quick'], { env: untappedEnv(), timeout: 230_000 })
  // SIGTERM should this file end first: the bench then ends its servers, peers and NATS nodes and
  // removes its directories itself, which SIGKILL would leave behind.
  ownChild(run.child, { signal: 'SIGTERM' })
  const { stdout } = await run
  t.match(stdout, /^\| scenario \| measured \| reference \(same run\) \| ratio \| target \| met \|$/m)
  for (const scenario of ['P1 single inserts', 'P1 latency', 'P1b group commit gain', 'P2 batch ingest', 'P2b binary batch', 'P3 recovery', 'P3 NDJSON vs PostgreSQL COPY', 'P4 open', 'P5 follow delay, 100 followers', 'P5 writes with 100 followers', 'P1k single inserts with idempotency keys', 'P2k JSON batch ingest with idempotency keys', 'P4k open', 'PJ P1 single inserts, JetStream R3', 'PJ P2b binary batch']) {
    t.match(stdout, new RegExp(`^\\| ${scenario}`, 'm'), scenario)
  }
  // A follower row with n/a had no probe reach a follower: the bench measured its own client, or nothing.
  const followRows = stdout.split('\n').filter(line => line.startsWith('| P5 '))
  t.equal(followRows.length, 4, 'the four P5 rows')
  for (const row of followRows) t.notMatch(row, 'n/a', row)
  t.match(stdout, /cores: \d+/)
  t.match(stdout, `Node: ${process.version}`)
  const left = [...benchTempDirs()].filter(name => !before.has(name))
  t.same(left, [], 'no temp directory left behind')
})
