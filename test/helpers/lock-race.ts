// Instances of `vecwal serve` racing for one data directory, round after round: each round starts
// several at the same moment (some in PID namespaces of their own, as containers sharing a volume
// are), checks that exactly one serves and that the others refuse with WAL_LOCKED, has the winner
// acknowledge random entries, then kills it (-9) or stops it (SIGTERM). Every start reads the whole
// log back through GET /v1/recovery and checks that each acknowledged entry stands at its seq as it
// was sent: nothing acknowledged lost, nothing replaced. Shared by test/fault/dir-lock.test.ts and
// the soak (test/soak/kill9-soak.ts).
import { spawnSync } from 'node:child_process'
import { ChildService, type Exit } from './child-service.js'
import { keyOf, randomEntry, recordDifference, seeded, type SentRequest } from './fault-ledger.js'
import { freePort } from './project.js'

/** Runs the service in a PID namespace of its own, pid 1 there, killed with its launcher. */
export const PID_NAMESPACE = ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child']

/** Why PID namespaces cannot be made here, or undefined when they can. */
export function pidNamespacesUnavailable (): string | undefined {
  const probe = spawnSync(PID_NAMESPACE[0], [...PID_NAMESPACE.slice(1), 'true'], { encoding: 'utf8', timeout: 30_000 })
  if (probe.error !== undefined) return `unshare cannot run: ${probe.error.message}`
  if (probe.status !== 0) return `unshare cannot make a PID namespace: ${probe.stderr.trim()}`
  return undefined
}

/** What the CLI says when it refuses to start on a locked directory. */
export const LOCKED_MESSAGE = /is held by another process \(.*\); two writers would destroy the log/

export interface LockRaceOptions {
  dataDir: string
  rounds: number
  /** Instances started at once each round. */
  contenders: number
  /** Start about half of them in PID namespaces of their own. */
  namespaces: boolean
  /** Entries each round's winner is sent. */
  entriesPerRound: number
  seed: number
  /** No new round starts past this time (milliseconds since the epoch). */
  deadline: number
  onRound?: (round: number, totals: LockRaceTotals) => void
}

export interface LockRaceTotals {
  rounds: number
  starts: number
  /** Rounds in which more than one instance served: two writers on one directory. */
  multipleWinners: number
  /** Rounds in which no instance served. */
  noWinner: number
  refusedLocked: number
  acknowledgedEntries: number
  /** Acknowledged entries read back and compared, summed over every start's check. */
  entryChecks: number
  lost: number
  /** Seqs whose record is not the entry acknowledged under it (or that were acknowledged twice). */
  replaced: number
  unexpected: number
  problems: string[]
}

type Outcome = { served: true } | { served: false, exit: Exit }

async function outcome (child: ChildService): Promise<Outcome> {
  try {
    await child.ready()
    return { served: true }
  } catch {
    return { served: false, exit: await child.exited }
  }
}

class Race {
  readonly totals: LockRaceTotals = {
    rounds: 0,
    starts: 0,
    multipleWinners: 0,
    noWinner: 0,
    refusedLocked: 0,
    acknowledgedEntries: 0,
    entryChecks: 0,
    lost: 0,
    replaced: 0,
    unexpected: 0,
    problems: []
  }

  /** The request acknowledged under each seq. */
  private readonly acknowledged = new Map<number, SentRequest>()
  private readonly random: () => number

  constructor (private readonly options: LockRaceOptions) {
    this.random = seeded(options.seed)
  }

  private problem (text: string): void {
    if (this.totals.problems.length < 50) this.totals.problems.push(text)
  }

  /** Starts `count` instances at once; resolves with those that serve, having checked the others. */
  private async start (count: number): Promise<ChildService[]> {
    for (let attempt = 1; ; attempt++) {
      const ports: number[] = []
      while (ports.length < count) {
        const port = await freePort()
        if (!ports.includes(port)) ports.push(port)
      }
      const children = ports.map(port => ChildService.spawn({
        dataDir: this.options.dataDir,
        launcher: this.options.namespaces && this.random() < 0.5 ? PID_NAMESPACE : undefined
      }, port))
      this.totals.starts += count
      const outcomes = await Promise.all(children.map(outcome))
      // Only the lock's holder listens; if another process took its port in between (tests run
      // alongside), nobody serves and the round starts again.
      const portTaken = children.some(child => child.stderrText.includes('EADDRINUSE'))
      if (portTaken && attempt < 5 && outcomes.every(result => !result.served)) continue
      const winners: ChildService[] = []
      outcomes.forEach((result, i) => {
        if (result.served) {
          winners.push(children[i])
        } else if (result.exit.code !== 0 && LOCKED_MESSAGE.test(children[i].stderrText)) {
          this.totals.refusedLocked++
        } else {
          this.problem(`an instance neither served nor refused the lock (${JSON.stringify(result.exit)}):\n${children[i].output}`)
        }
      })
      if (winners.length > 1) this.totals.multipleWinners++
      if (winners.length === 0) this.totals.noWinner++
      return winners
    }
  }

  /** Reads the whole log from `url` and compares it with every acknowledgement so far. */
  private async verify (url: string): Promise<void> {
    const res = await fetch(`${url}/v1/recovery?after=0`, { signal: AbortSignal.timeout(60_000) })
    const text = await res.text()
    if (res.status !== 200) {
      this.problem(`recovery answered ${res.status}: ${text.slice(0, 300)}`)
      return
    }
    const found = new Set<number>()
    for (const line of text.split('\n').filter(l => l !== '')) {
      const record = JSON.parse(line) as Record<string, unknown>
      const seq = Number(record.seq)
      found.add(seq)
      const sent = this.acknowledged.get(seq)
      if (sent === undefined) {
        this.totals.unexpected++
        this.problem(`seq ${seq} (${keyOf(record)}) was never acknowledged`)
        continue
      }
      this.totals.entryChecks += sent.entries.length
      const why = recordDifference(sent, record)
      if (why !== undefined) {
        this.totals.replaced++
        this.problem(`seq ${seq} acknowledged ${sent.key} but holds ${keyOf(record)}: ${why}`)
      }
    }
    for (const [seq, sent] of this.acknowledged) {
      if (!found.has(seq)) {
        this.totals.lost++
        this.problem(`seq ${seq} (${sent.key}, acknowledged) is missing`)
      }
    }
  }

  /** Sends the round's entries to every winner at once, as clients of each would. */
  private async write (round: number, winners: ChildService[]): Promise<void> {
    const sends = winners.flatMap((winner, w) => Array.from({ length: this.options.entriesPerRound }, (_, i) => {
      const key = `r${round}.w${w}.${i}`
      const sent: SentRequest = { key, kind: 'entry', entries: [randomEntry(this.random, key, `round ${round}`)] }
      return { winner, sent }
    }))
    await Promise.all(sends.map(async ({ winner, sent }) => {
      const res = await fetch(`${winner.url}/v1/entries`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(sent.entries[0]),
        signal: AbortSignal.timeout(60_000)
      })
      const body = await res.json() as { seq?: number }
      if (res.status !== 201 || typeof body.seq !== 'number') {
        this.problem(`POST /v1/entries answered ${res.status}: ${JSON.stringify(body)}`)
        return
      }
      sent.ackedSeq = body.seq
      this.totals.acknowledgedEntries++
      if (this.acknowledged.has(body.seq)) {
        this.totals.replaced++
        this.problem(`seq ${body.seq} was acknowledged twice, for ${this.acknowledged.get(body.seq)?.key ?? ''} and ${sent.key}`)
      }
      this.acknowledged.set(body.seq, sent)
    }))
  }

  async run (): Promise<LockRaceTotals> {
    for (let round = 1; round <= this.options.rounds && Date.now() < this.options.deadline; round++) {
      const winners = await this.start(this.options.contenders)
      try {
        if (winners.length > 0) await this.verify(winners[0].url)
        await this.write(round, winners)
      } finally {
        const crash = this.random() < 0.5
        await Promise.all(winners.map(async w => { crash ? await w.kill9() : await w.stop() }))
      }
      this.totals.rounds = round
      this.options.onRound?.(round, this.totals)
      if (this.totals.problems.length > 0) break
    }
    const [last] = await this.start(1)
    if (last !== undefined) {
      try {
        await this.verify(last.url)
      } finally {
        await last.stop()
      }
    }
    return this.totals
  }
}

export async function runLockRace (options: LockRaceOptions): Promise<LockRaceTotals> {
  return await new Race(options).run()
}
