// kill -9 with idempotency keys, shared by test/fault/kill9-keys.test.ts (a few cycles in `npm
// test`) and test/soak/kill9-soak.ts (`npm run soak -- --keyed-cycles N`): exactly once across crashes.
//
// Each cycle starts the real service on the same data directory, then
//   1. retries every request it sent and saw no answer to, with the same Idempotency-Key and the
//      same body, until each is answered (a commit whose transaction died with the service, and
//      whose record is not in the log, is 404: the transaction is staged again and committed
//      under the same key, as README's "Safe retries" says);
//   2. streams the whole log and checks that every request ever sent stands in it exactly once,
//      with the content sent, at the one seq every answer to it gave (first answer or retry);
//   3. runs concurrent writers, each request with a key of its own, and kills the service with
//      SIGKILL after a random delay. With `fsyncDelayMs`, every other cycle (the first included)
//      runs the service under test/helpers/synced-service.ts, each fdatasync made that much
//      longer, and after the delay waits until the files show a write not yet synced, so the kill
//      lands inside an fdatasync; whether it did is read from the files again after the kill
//      (test/helpers/synced-log.ts) and counted.
import path from 'node:path'
import { ownTempDir, removeTempDir } from '../../scripts/children.js'
import { sleep } from './child-service.js'
import { runKillCycles } from './fault-kill9.js'
import { keyOf, randomEntry, recordDifference, seeded, type EntryJson, type SentRequest } from './fault-ledger.js'
import { killedInSync, segmentSizes, SYNCED_SERVICE, syncedServiceEnv } from './synced-log.js'

export interface KeyedKill9Totals {
  cycles: number
  /** Requests sent with a key. */
  requests: number
  /** Requests whose first attempt got no answer (the kill came first). */
  unanswered: number
  /** Of those, retries answered from the record the first attempt had written (Idempotent-Replayed). */
  replayed: number
  /** Of those, retries that wrote the record (the first attempt never reached the disk). */
  writtenByRetry: number
  /** Commits whose transaction died with the service unwritten, staged again and committed under the same key. */
  recommitted: number
  /** Records checked against the requests, summed over every verification. */
  recordChecks: number
  /** Cycles run with each fdatasync delayed (under synced-service.ts). */
  slowSyncCycles: number
  /** Of those, the kills that came while an fdatasync was under way. */
  killsInSync: number
  problems: string[]
}

export interface KeyedKill9Options {
  dataDir: string
  cycles: number
  writers?: number
  minKillMs?: number
  maxKillMs?: number
  /** If given, every other cycle delays each fdatasync this long, so that kills land inside one. */
  fsyncDelayMs?: number
  seed?: number
  onCycle?: (cycle: number, totals: KeyedKill9Totals) => void
}

interface KeyedRequest extends SentRequest {
  route: 'entries' | 'batch' | 'commit'
  /** Every seq an answer gave it: all must be one. */
  answeredSeqs: number[]
}

type Answer = { status: number, body: Record<string, unknown>, replayed: boolean } | undefined

async function post (url: string, route: string, body: unknown, key?: string): Promise<Answer> {
  const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' }
  if (key !== undefined) headers['idempotency-key'] = key
  try {
    const res = await fetch(url + route, { method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(60_000) })
    return { status: res.status, body: await res.json() as Record<string, unknown>, replayed: res.headers.get('idempotent-replayed') === 'true' }
  } catch {
    return undefined
  }
}

class KeyedLedger {
  readonly requests = new Map<string, KeyedRequest>()
  pending: KeyedRequest[] = []
  readonly totals: KeyedKill9Totals = { cycles: 0, requests: 0, unanswered: 0, replayed: 0, writtenByRetry: 0, recommitted: 0, recordChecks: 0, slowSyncCycles: 0, killsInSync: 0, problems: [] }

  problem (text: string): void {
    if (this.totals.problems.length < 50) this.totals.problems.push(text)
  }

  answered (request: KeyedRequest, answer: NonNullable<Answer>): void {
    const seq = answer.body.seq
    const count = answer.body.count
    if (answer.status !== 201 || typeof seq !== 'number' || (request.route !== 'entries' && count !== request.entries.length)) {
      this.problem(`${request.key} answered ${answer.status}: ${JSON.stringify(answer.body)}`)
      return
    }
    request.answeredSeqs.push(seq)
  }
}

/** Opens a transaction and stages the entries; its txId, or undefined if the service died. */
async function stageTransaction (ledger: KeyedLedger, url: string, entries: EntryJson[]): Promise<string | undefined> {
  const opened = await post(url, '/v1/transactions', undefined)
  if (opened === undefined) return undefined
  const txId = opened.body.txId
  if (opened.status !== 201 || typeof txId !== 'string') {
    ledger.problem(`begin answered ${opened.status}`)
    return undefined
  }
  const staged = await post(url, `/v1/transactions/${txId}/entries`, { entries })
  if (staged === undefined) return undefined
  if (staged.status !== 202) {
    ledger.problem(`stage answered ${staged.status}: ${JSON.stringify(staged.body)}`)
    return undefined
  }
  return txId
}

function routeOf (request: KeyedRequest): string {
  return request.route === 'commit' ? `/v1/transactions/${String(request.txId)}/commit` : `/v1/${request.route}`
}

function bodyOf (request: KeyedRequest): unknown {
  if (request.route === 'entries') return request.entries[0]
  return request.route === 'batch' ? { entries: request.entries } : undefined
}

/** Retries every unanswered request with its key until it is answered; the service stays up meanwhile. */
async function retryPending (ledger: KeyedLedger, url: string): Promise<void> {
  const { totals } = ledger
  const retry = async (request: KeyedRequest): Promise<void> => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const answer = await post(url, routeOf(request), bodyOf(request), request.key)
      if (answer === undefined) continue
      if (request.route === 'commit' && answer.status === 404) {
        // The transaction died with the service and its commit never reached the disk.
        const txId = await stageTransaction(ledger, url, request.entries)
        if (txId === undefined) return
        request.txId = txId
        totals.recommitted++
        continue
      }
      ledger.answered(request, answer)
      if (answer.replayed) totals.replayed++
      else totals.writtenByRetry++
      return
    }
    ledger.problem(`${request.key}: no answer to its retries`)
  }
  const queue = ledger.pending
  ledger.pending = []
  await Promise.all(Array.from({ length: 8 }, async () => {
    for (let request = queue.shift(); request !== undefined; request = queue.shift()) await retry(request)
  }))
}

/** Every request sent stands in the log once, as sent, at the one seq its answers gave. */
async function verify (ledger: KeyedLedger, url: string): Promise<void> {
  const res = await fetch(`${url}/v1/recovery?after=0`, { signal: AbortSignal.timeout(300_000) })
  if (res.status !== 200) throw new Error(`recovery answered ${res.status}`)
  const found = new Map<string, number>()
  for (const line of (await res.text()).split('\n')) {
    if (line === '') continue
    const record = JSON.parse(line) as Record<string, unknown>
    const key = keyOf(record)
    const request = ledger.requests.get(key)
    if (request === undefined) {
      ledger.problem(`seq ${String(record.seq)}: ${key} was never sent`)
      continue
    }
    const earlier = found.get(key)
    if (earlier !== undefined) ledger.problem(`${key} is in the log twice, at seqs ${earlier} and ${String(record.seq)}`)
    found.set(key, record.seq as number)
    const why = recordDifference(request, record)
    if (why !== undefined) ledger.problem(`${key} differs from what was sent: ${why}`)
    ledger.totals.recordChecks++
  }
  for (const request of ledger.requests.values()) {
    const seq = found.get(request.key)
    if (seq === undefined) ledger.problem(`${request.key} (answered ${request.answeredSeqs.join()}) is not in the log`)
    else if (request.answeredSeqs.some(s => s !== seq)) ledger.problem(`${request.key} is at seq ${seq}, answered ${request.answeredSeqs.join()}`)
  }
}

async function writer (ledger: KeyedLedger, url: string, name: string, cycle: number, random: () => number, stopped: () => boolean): Promise<void> {
  const tag = `cycle ${cycle}`
  for (let n = 0; !stopped(); n++) {
    const key = `k${cycle}.${name}.${n}`
    const roll = random()
    const route = roll < 0.5 ? 'entries' : roll < 0.8 ? 'batch' : 'commit'
    const count = route === 'entries' ? 1 : 1 + Math.floor(random() * 8)
    const entries = Array.from({ length: count }, (_, j) => randomEntry(random, j === 0 ? key : `${key}.${j}`, tag))
    const request: KeyedRequest = { key, kind: route === 'entries' ? 'entry' : route === 'batch' ? 'batch' : 'tx', route, entries, answeredSeqs: [] }
    if (route === 'commit') {
      const txId = await stageTransaction(ledger, url, entries)
      if (txId === undefined) return
      request.txId = txId
    }
    ledger.requests.set(key, request)
    ledger.totals.requests++
    const answer = await post(url, routeOf(request), bodyOf(request), key)
    if (answer === undefined) {
      ledger.totals.unanswered++
      ledger.pending.push(request)
      return
    }
    ledger.answered(request, answer)
  }
}

/** Runs the cycles on `dataDir`; a last start retries and verifies the last kill, then stops gracefully. */
export async function runKeyedKill9 (options: KeyedKill9Options): Promise<KeyedKill9Totals> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31)
  const random = seeded(seed)
  const ledger = new KeyedLedger()
  const { totals } = ledger
  const writers = options.writers ?? 12
  const { fsyncDelayMs } = options
  const syncedDir = ownTempDir('vecwal-synced-')
  const syncedLog = (cycle: number): string => path.join(syncedDir, `cycle-${cycle}.log`)
  /** The segments' sizes as each slow-sync cycle's service started. */
  const before = new Map<number, Map<string, number>>()
  try {
    await runKillCycles({
      options,
      totals,
      env: { VECWAL_SEGMENT_BYTES: '65536' },
      launch (cycle) {
        if (fsyncDelayMs === undefined || cycle % 2 === 0) return undefined
        before.set(cycle, segmentSizes(options.dataDir))
        return { launcher: SYNCED_SERVICE, env: syncedServiceEnv(fsyncDelayMs, syncedLog(cycle)) }
      },
      random,
      async started (child) {
        await retryPending(ledger, child.url)
        await verify(ledger, child.url)
      },
      async write (child, cycle, stopped) {
        await Promise.all(Array.from({ length: writers }, async (_, w) => { await writer(ledger, child.url, `w${w}`, cycle, random, stopped) }))
      },
      async aim (cycle) {
        const sizes = before.get(cycle)
        if (sizes === undefined) return
        // Bounded: a cycle that shows no write waiting on its sync within 2 s is killed anyway.
        for (const deadline = Date.now() + 2000; Date.now() < deadline && !killedInSync(options.dataDir, syncedLog(cycle), sizes);) await sleep(2)
      },
      killed (cycle) {
        const sizes = before.get(cycle)
        if (sizes === undefined) return
        totals.slowSyncCycles++
        if (killedInSync(options.dataDir, syncedLog(cycle), sizes)) totals.killsInSync++
      }
    })
  } finally {
    removeTempDir(syncedDir)
  }
  if (totals.problems.length > 0) totals.problems.unshift(`seed ${seed}`)
  return totals
}
