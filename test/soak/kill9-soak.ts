// `npm run soak -- --cycles N` (default 200): the kill -9 suite of test/fault/kill9.test.ts for as
// many cycles as asked, on one data directory, printing progress and the totals. Then
// `--race-rounds R` (default 100) rounds of two instances started at once on another directory (in
// PID namespaces of their own where unshare can make them), each winner killed -9 or stopped: one
// must serve each time. Then `--keyed-cycles K` (default 100) kill -9 cycles whose writers send
// every request with an idempotency key and retry every unanswered one after the restart: each
// must stand in the log exactly once, at the seq every answer to it gave. Then the vector index
// example's kill -9 run of test/examples with `--vector-entries V` (default 500,000) entries.
// Exits 1 if an acknowledged entry was lost or replaced, a record appeared that was never sent,
// two instances (or none) served at once, a keyed request stood in the log other than once, or the
// index differed from one built without crashes.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { runKill9 } from '../helpers/fault-kill9.js'
import { runKeyedKill9 } from '../helpers/fault-kill9-keys.js'
import { pidNamespacesUnavailable, runLockRace } from '../helpers/lock-race.js'
import { runVectorIndexCrash, vectorIndexFailures } from '../helpers/vector-index-crash.js'

const usage = 'usage: npm run soak -- [--cycles N] [--race-rounds R] [--keyed-cycles K] [--vector-entries V] [--seed S] [--keep]'

/** The race stops starting rounds after this long, however many were asked for. */
const RACE_TIME_LIMIT_MS = 30 * 60_000
/** The vector index run must be done within this long. */
const VECTOR_INDEX_TIME_LIMIT_MS = 60 * 60_000

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
    'race-rounds': { type: 'string' },
    'keyed-cycles': { type: 'string' },
    'vector-entries': { type: 'string' },
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
const raceRounds = positiveInteger(values['race-rounds'], 100, 'race-rounds')
const keyedCycles = positiveInteger(values['keyed-cycles'], 100, 'keyed-cycles')
const vectorEntries = positiveInteger(values['vector-entries'], 500_000, 'vector-entries')
const seed = positiveInteger(values.seed, Math.floor(Math.random() * 2 ** 31) + 1, 'seed')
/** Runs `soak` on a fresh data directory, kept or removed afterwards; resolves with whether it passed. */
async function inDataDir (soak: (dataDir: string) => Promise<boolean>): Promise<boolean> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vecwal-soak-'))
  try {
    return await soak(dataDir)
  } finally {
    if (values.keep === true) process.stdout.write(`kept ${dataDir}\n`)
    else fs.rmSync(dataDir, { recursive: true, force: true })
  }
}

async function kill9Soak (dataDir: string): Promise<boolean> {
  const started = Date.now()
  process.stdout.write(`kill -9 soak: ${cycles} cycles, seed ${seed}, data in ${dataDir}\n`)
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
  return ok
}

async function lockRace (dataDir: string): Promise<boolean> {
  const started = Date.now()
  const noNamespaces = pidNamespacesUnavailable()
  process.stdout.write(`lock race: ${raceRounds} rounds of two instances at once, ${noNamespaces === undefined ? 'some in PID namespaces of their own' : `all in one PID namespace (${noNamespaces})`}, seed ${seed}, data in ${dataDir}\n`)
  const totals = await runLockRace({
    dataDir,
    rounds: raceRounds,
    contenders: 2,
    namespaces: noNamespaces === undefined,
    entriesPerRound: 10,
    seed,
    deadline: started + RACE_TIME_LIMIT_MS,
    onRound (round, t) {
      if (round % 10 === 0 || round === raceRounds) {
        const seconds = Math.round((Date.now() - started) / 1000)
        process.stdout.write(`  round ${round}/${raceRounds} (${seconds} s): ${t.acknowledgedEntries} entries acknowledged, two serving ${t.multipleWinners}, none serving ${t.noWinner}, lost ${t.lost}, replaced ${t.replaced}\n`)
      }
    }
  })
  const ok = totals.multipleWinners === 0 && totals.noWinner === 0 && totals.lost === 0 && totals.replaced === 0 &&
    totals.unexpected === 0 && totals.problems.length === 0
  process.stdout.write([
    '',
    `rounds                          ${totals.rounds}${totals.rounds === raceRounds ? '' : totals.problems.length > 0 ? ' (stopped at the first round with a problem)' : ` (stopped at the time limit of ${RACE_TIME_LIMIT_MS / 60_000} min)`}`,
    `instances started               ${totals.starts}`,
    `rounds with two serving         ${totals.multipleWinners}`,
    `rounds with none serving        ${totals.noWinner}`,
    `refused with WAL_LOCKED         ${totals.refusedLocked}`,
    `acknowledged entries            ${totals.acknowledgedEntries}`,
    `acknowledged entries checked    ${totals.entryChecks} (every entry again at every start)`,
    `lost                            ${totals.lost}`,
    `replaced                        ${totals.replaced}`,
    `unexpected                      ${totals.unexpected}`,
    `time                            ${Math.round((Date.now() - started) / 1000)} s`,
    ...totals.problems.map(p => `problem: ${p}`),
    ok ? 'PASS' : 'FAIL',
    ''
  ].join('\n'))
  return ok
}

async function keyedKill9Soak (dataDir: string): Promise<boolean> {
  const started = Date.now()
  process.stdout.write(`kill -9 with keyed retries: ${keyedCycles} cycles, seed ${seed}, data in ${dataDir}\n`)
  const totals = await runKeyedKill9({
    dataDir,
    cycles: keyedCycles,
    seed,
    onCycle (cycle, t) {
      if (cycle % 10 === 0 || cycle === keyedCycles) {
        const seconds = Math.round((Date.now() - started) / 1000)
        process.stdout.write(`  cycle ${cycle}/${keyedCycles} (${seconds} s): ${t.requests} requests, ${t.unanswered} unanswered and retried, problems ${t.problems.length}\n`)
      }
    }
  })
  const ok = totals.problems.length === 0 && totals.cycles === keyedCycles && totals.replayed + totals.writtenByRetry === totals.unanswered
  process.stdout.write([
    '',
    `cycles                          ${totals.cycles}`,
    `requests sent with a key        ${totals.requests}`,
    `unanswered, then retried        ${totals.unanswered}`,
    `  answered from the first write ${totals.replayed}`,
    `  written by the retry          ${totals.writtenByRetry}`,
    `  transactions staged again     ${totals.recommitted}`,
    `records checked                 ${totals.recordChecks}`,
    `time                            ${Math.round((Date.now() - started) / 1000)} s`,
    ...totals.problems.map(p => `problem: ${p}`),
    ok ? 'PASS' : 'FAIL',
    ''
  ].join('\n'))
  return ok
}

async function vectorIndex (root: string): Promise<boolean> {
  const started = Date.now()
  const options = {
    root,
    entries: vectorEntries,
    dimensions: 16,
    kills: Math.max(8, Math.round(vectorEntries / 10_000)),
    catchUpKills: 5,
    queries: 200,
    seed,
    deadline: started + VECTOR_INDEX_TIME_LIMIT_MS,
    onProgress (message: string) { process.stdout.write(`  ${Math.round((Date.now() - started) / 1000)} s: ${message}\n`) }
  }
  process.stdout.write(`vector index: ${vectorEntries} entries, ${options.kills} kills while writing and ${options.catchUpKills} while catching up, seed ${seed}, data in ${root}\n`)
  const result = await runVectorIndexCrash(options)
  const failures = vectorIndexFailures(result, options)
  process.stdout.write([
    '',
    `kills                           index ${result.indexKills}, service ${result.serviceKills}; resumed from a save ${result.resumedFromSave} times`,
    `index program starts, load ms   ${result.indexOpenMs.join(', ')}`,
    `requests                        ${result.requests} (${result.retried} tried more than once, ${result.replayed} answered by a replay)`,
    `entry records in the log        ${result.records}, the last at seq ${result.lastEntrySeq}; ${result.notInLog} requests not in it, ${result.notSent} records not sent`,
    `ids held                        ${result.recovered.size} (reference ${result.reference.size})`,
    `digest                          ${result.recovered.digest} (reference ${result.reference.digest})`,
    `exact top-10 agreeing           ${result.exactAgreeing} of ${options.queries}`,
    `HNSW top-10 agreeing            ${result.hnswAgreeing} of ${options.queries} (the reference's recall@10 ${result.reference.recall})`,
    `checkpoint, saved seq           ${result.checkpoint}, ${result.savedSeq}`,
    `time                            ${Math.round((Date.now() - started) / 1000)} s`,
    ...failures.map(f => `failed: ${f}`),
    failures.length === 0 ? 'PASS' : 'FAIL',
    ''
  ].join('\n'))
  return failures.length === 0
}

const kill9Passed = await inDataDir(kill9Soak)
const racePassed = await inDataDir(lockRace)
const keyedPassed = await inDataDir(keyedKill9Soak)
const vectorIndexPassed = await inDataDir(vectorIndex)
process.exitCode = kill9Passed && racePassed && keyedPassed && vectorIndexPassed ? 0 : 1
