// `npm run soak -- --cycles N` (default 200): the kill -9 suite of test/fault/kill9.test.ts for as
// many cycles as asked, on one data directory, printing progress and the totals. Exits 1 if an
// acknowledged entry was lost or a record appeared that was never sent.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { runKill9 } from '../helpers/fault-kill9.js'

const usage = 'usage: npm run soak -- [--cycles N] [--seed S] [--keep]'

function positiveInteger (text: string | undefined, fallback: number, name: string): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < 1) {
    process.stderr.write(`--${name} must be a positive integer\n${usage}\n`)
    process.exit(2)
  }
  return value
}

const { values } = parseArgs({
  options: {
    cycles: { type: 'string' },
    seed: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false }
  }
})
if (values.help === true) {
  process.stdout.write(`${usage}\n`)
  process.exit(0)
}
const cycles = positiveInteger(values.cycles, 200, 'cycles')
const seed = positiveInteger(values.seed, Math.floor(Math.random() * 2 ** 31) + 1, 'seed')
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vecwal-soak-'))
const started = Date.now()
process.stdout.write(`kill -9 soak: ${cycles} cycles, seed ${seed}, data in ${dataDir}\n`)

try {
  const totals = await runKill9({
    dataDir,
    cycles,
    seed,
    onCycle (cycle, t) {
      if (cycle % 10 === 0 || cycle === cycles) {
        const seconds = Math.round((Date.now() - started) / 1000)
        process.stdout.write(`  cycle ${cycle}/${cycles} (${seconds} s): ${t.acknowledgedEntries} entries acknowledged, ${t.records} records, lost ${t.lost}, unexpected ${t.unexpected}\n`)
      }
    }
  })
  const ok = totals.lost === 0 && totals.unexpected === 0 && totals.refused === 0 && totals.problems.length === 0 && totals.cycles === cycles
  process.stdout.write([
    '',
    `cycles                          ${totals.cycles}`,
    `acknowledged requests           ${totals.acknowledgedRequests}`,
    `acknowledged entries            ${totals.acknowledgedEntries}`,
    `acknowledged entries checked    ${totals.entryChecks} (every entry again at every restart)`,
    `lost                            ${totals.lost}`,
    `unexpected                      ${totals.unexpected}`,
    `unanswered requests             ${totals.unanswered} (${totals.unansweredRecovered} of them found in the log, which is allowed)`,
    `refused requests                ${totals.refused}`,
    `torn tails cut at restart       ${totals.tornTailsCut}`,
    `records in the log              ${totals.records}`,
    `time                            ${Math.round((Date.now() - started) / 1000)} s`,
    ...totals.problems.map(p => `problem: ${p}`),
    ok ? 'PASS' : 'FAIL',
    ''
  ].join('\n'))
  process.exitCode = ok ? 0 : 1
} finally {
  if (values.keep === true) process.stdout.write(`kept ${dataDir}\n`)
  else fs.rmSync(dataDir, { recursive: true, force: true })
}
