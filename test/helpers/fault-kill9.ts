// kill -9 under load, shared by test/fault/kill9.test.ts (a bounded number of cycles in `npm test`)
// and test/soak/kill9-soak.ts (`npm run soak -- --cycles N`).
//
// Each cycle starts the real service on the same data directory, streams the whole log back
// (GET /v1/recovery?after=0) and checks it against a ledger of every request ever sent, then runs
// concurrent writers (single entries, batches, transactions) and kills the service with SIGKILL
// after a random delay. The ledger says, for every seq, which request must stand there:
//   - an acknowledged request (201) must be at the seq it was given, with exactly the content sent;
//   - a request whose answer never arrived may be in the log (once, exactly as sent) or not;
//   - a record that no request sent, or sent with other content, is a corruption;
//   - seqs run from 1 without gaps (no checkpoint is posted, so the stream holds every record);
//   - what one recovery showed stays: SIGKILL does not lose the page cache.
import { sleep, startChild, type ChildService, type RunOptions } from './child-service.js'
import { keyOf, randomEntry, recordDifference, seeded, type EntryJson, type SentRequest } from './fault-ledger.js'

export interface Kill9Totals {
  cycles: number
  /** Requests answered 201 (entries, batches, commits). */
  acknowledgedRequests: number
  /** Entries inside acknowledged requests (a batch counts each of its entries). */
  acknowledgedEntries: number
  /** Acknowledged entries verified, summed over every recovery (each entry is checked again at every restart). */
  entryChecks: number
  /** Acknowledged entries missing or changed after a restart: must be 0. */
  lost: number
  /** Records that no request sent, or with content other than sent, or out of place: must be 0. */
  unexpected: number
  /** Requests whose answer never arrived (the kill came first). */
  unanswered: number
  /** Of those, how many turned up in the log after the restart (allowed). */
  unansweredRecovered: number
  /** Answers other than 201/202 (none is expected: no fault but the kill is injected). */
  refused: number
  /** Torn tails the service reported cutting at a restart. */
  tornTailsCut: number
  /** Records in the log at the end. */
  records: number
  problems: string[]
}

export interface Kill9Options {
  dataDir: string
  cycles: number
  /** Writers running at once. */
  writers?: number
  /** The kill comes after a delay drawn uniformly from [minKillMs, maxKillMs] after the writers start. */
  minKillMs?: number
  maxKillMs?: number
  segmentBytes?: number
  seed?: number
  /** Told after each cycle (the soak prints progress). */
  onCycle?: (cycle: number, totals: Kill9Totals) => void
}

class Ledger {
  readonly requests = new Map<string, SentRequest>()
  /** Which request stands at a seq: known from an acknowledgement or an earlier recovery. */
  readonly bySeq = new Map<number, string>()
  /** Where a request was found in the log. */
  readonly placed = new Map<string, number>()
  readonly totals: Kill9Totals = {
    cycles: 0,
    acknowledgedRequests: 0,
    acknowledgedEntries: 0,
    entryChecks: 0,
    lost: 0,
    unexpected: 0,
    unanswered: 0,
    unansweredRecovered: 0,
    refused: 0,
    tornTailsCut: 0,
    records: 0,
    problems: []
  }

  problem (text: string): void {
    if (this.totals.problems.length < 50) this.totals.problems.push(text)
  }

  sent (request: SentRequest): void {
    this.requests.set(request.key, request)
  }

  acked (request: SentRequest, seq: number): void {
    request.ackedSeq = seq
    this.totals.acknowledgedRequests++
    this.totals.acknowledgedEntries += request.entries.length
    const standing = this.bySeq.get(seq)
    if (standing !== undefined && standing !== request.key) {
      this.totals.unexpected++
      this.problem(`seq ${seq} acknowledged for ${request.key} but already held by ${standing}`)
    }
    this.bySeq.set(seq, request.key)
  }
}

type RecoveryItem =
  | { kind: 'head', lastSeq: number }
  | { kind: 'record', record: Record<string, unknown> }
  | { kind: 'unparseable', line: string }

function parseLine (line: string): RecoveryItem {
  try {
    return { kind: 'record', record: JSON.parse(line) as Record<string, unknown> }
  } catch {
    return { kind: 'unparseable', line }
  }
}

/** Streams GET /v1/recovery?after=0 line by line, holding one chunk at a time. */
async function * recoveryLines (url: string): AsyncGenerator<RecoveryItem> {
  const res = await fetch(`${url}/v1/recovery?after=0`, { signal: AbortSignal.timeout(300_000) })
  if (res.status !== 200 || res.body === null) throw new Error(`recovery answered ${res.status}: ${await res.text()}`)
  yield { kind: 'head', lastSeq: Number(res.headers.get('x-vecwal-last-seq')) }
  const decoder = new TextDecoder()
  let rest = ''
  for await (const chunk of res.body) {
    rest += decoder.decode(chunk, { stream: true })
    const lines = rest.split('\n')
    rest = lines.pop() ?? ''
    for (const line of lines) if (line !== '') yield parseLine(line)
  }
  rest += decoder.decode()
  if (rest !== '') yield parseLine(rest)
}

/** Checks the whole log against the ledger, then records where everything found stands. */
async function verify (ledger: Ledger, url: string): Promise<void> {
  const { totals } = ledger
  let expectedSeq = 1
  let lastSeq = -1
  const seen = new Set<number>()
  for await (const item of recoveryLines(url)) {
    if (item.kind === 'head') {
      lastSeq = item.lastSeq
      continue
    }
    if (item.kind === 'unparseable') {
      totals.unexpected++
      ledger.problem(`a recovery line after seq ${expectedSeq - 1} is not JSON: ${item.line.slice(0, 300)}`)
      expectedSeq++
      continue
    }
    const { record } = item
    const seq = record.seq as number
    if (seq !== expectedSeq) {
      totals.unexpected++
      ledger.problem(`seq ${String(seq)} where ${expectedSeq} was expected (a gap or disorder)`)
    }
    expectedSeq = seq + 1
    seen.add(seq)
    const key = keyOf(record)
    const sent = ledger.requests.get(key)
    const standing = ledger.bySeq.get(seq)
    if (sent === undefined) {
      totals.unexpected++
      ledger.problem(`seq ${seq}: record ${key} was never sent`)
      continue
    }
    const why = recordDifference(sent, record)
    if (why !== undefined) {
      totals.unexpected++
      ledger.problem(`seq ${seq}: ${key} differs from what was sent: ${why}`)
      if (sent.ackedSeq !== undefined) totals.lost += sent.entries.length
      continue
    }
    const placedAt = ledger.placed.get(key)
    if (placedAt !== undefined && placedAt !== seq) {
      totals.unexpected++
      ledger.problem(`${key} found at seq ${seq}, earlier at seq ${placedAt}`)
    }
    if (standing !== undefined && standing !== key) {
      totals.unexpected++
      ledger.problem(`seq ${seq} holds ${key}, expected ${standing}`)
    }
    if (sent.ackedSeq !== undefined && sent.ackedSeq !== seq) {
      totals.unexpected++
      ledger.problem(`${key} acknowledged as seq ${sent.ackedSeq} but found at ${seq}`)
    }
    if (sent.ackedSeq !== undefined) totals.entryChecks += sent.entries.length
    else if (placedAt === undefined) totals.unansweredRecovered++
    ledger.bySeq.set(seq, key)
    ledger.placed.set(key, seq)
  }
  if (expectedSeq - 1 !== lastSeq) {
    totals.unexpected++
    ledger.problem(`the stream ended at seq ${expectedSeq - 1}, X-Vecwal-Last-Seq said ${lastSeq}`)
  }
  for (const [seq, key] of ledger.bySeq) {
    if (seen.has(seq)) continue
    const sent = ledger.requests.get(key)
    totals.lost += sent?.entries.length ?? 1
    ledger.problem(`seq ${seq} (${key}, ${sent?.ackedSeq === undefined ? 'found by an earlier recovery' : 'acknowledged'}) is missing`)
  }
  totals.records = expectedSeq - 1
}

interface WriterContext {
  ledger: Ledger
  url: string
  cycle: number
  random: () => number
  stopped: () => boolean
}

type Answer = { status: number, body: Record<string, unknown> } | undefined

/** POSTs JSON; undefined when no answer came (the connection died with the service). */
async function post (url: string, route: string, body?: unknown): Promise<Answer> {
  try {
    const res = await fetch(url + route, {
      method: 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000)
    })
    return { status: res.status, body: await res.json() as Record<string, unknown> }
  } catch {
    return undefined
  }
}

/** One writer: requests one after another until the service dies. Returns once an answer fails to come. */
async function writer (ctx: WriterContext, name: string): Promise<void> {
  const { ledger, url, random } = ctx
  const tag = `cycle ${ctx.cycle}`
  let n = 0
  let lastAck = 0
  const refuse = (what: string, answer: NonNullable<Answer>): void => {
    ledger.totals.refused++
    ledger.problem(`${what} answered ${answer.status}: ${JSON.stringify(answer.body)}`)
  }
  const acked = (request: SentRequest, seq: unknown): void => {
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq <= lastAck) {
      ledger.totals.unexpected++
      ledger.problem(`${name}: seq ${String(seq)} acknowledged after seq ${lastAck} (one writer's seqs must increase)`)
      return
    }
    lastAck = seq
    ledger.acked(request, seq)
  }
  const unanswered = (): void => { ledger.totals.unanswered++ }
  while (!ctx.stopped()) {
    const key = `c${ctx.cycle}.${name}.${n++}`
    const roll = random()
    if (roll < 0.5) {
      const request: SentRequest = { key, kind: 'entry', entries: [randomEntry(random, key, tag)] }
      ledger.sent(request)
      const answer = await post(url, '/v1/entries', request.entries[0])
      if (answer === undefined) return unanswered()
      if (answer.status !== 201) return refuse(key, answer)
      acked(request, answer.body.seq)
    } else if (roll < 0.8) {
      const count = 1 + Math.floor(random() * 20)
      const entries = Array.from({ length: count }, (_, j) => randomEntry(random, j === 0 ? key : `${key}.${j}`, tag))
      const request: SentRequest = { key, kind: 'batch', entries }
      ledger.sent(request)
      const answer = await post(url, '/v1/batch', { entries })
      if (answer === undefined) return unanswered()
      if (answer.status !== 201 || answer.body.count !== count) return refuse(key, answer)
      acked(request, answer.body.seq)
    } else {
      const opened = await post(url, '/v1/transactions')
      if (opened === undefined) return
      if (opened.status !== 201 || typeof opened.body.txId !== 'string') return refuse(`${key} begin`, opened)
      const txId = opened.body.txId
      const entries: EntryJson[] = []
      const stages = 1 + Math.floor(random() * 3)
      for (let s = 0; s < stages; s++) {
        const count = 1 + Math.floor(random() * 4)
        const staged = Array.from({ length: count }, (_, j) => randomEntry(random, entries.length + j === 0 ? key : `${key}.${entries.length + j}`, tag))
        // Staged entries are in no request the log may hold until the commit is sent.
        const answer = await post(url, `/v1/transactions/${txId}/entries`, count === 1 && random() < 0.5 ? staged[0] : { entries: staged })
        if (answer === undefined) return
        if (answer.status !== 202) return refuse(`${key} stage`, answer)
        entries.push(...staged)
        if (answer.body.staged !== entries.length) return refuse(`${key} staged count`, answer)
      }
      if (ctx.stopped()) return
      const request: SentRequest = { key, kind: 'tx', entries, txId }
      ledger.sent(request)
      const answer = await post(url, `/v1/transactions/${txId}/commit`)
      if (answer === undefined) return unanswered()
      if (answer.status !== 201 || answer.body.count !== entries.length) return refuse(`${key} commit`, answer)
      acked(request, answer.body.seq)
    }
  }
}

export interface KillCycles<Totals extends { cycles: number, problems: string[] }> {
  /** The data directory, the cycles, the kill's delays; `onCycle` is told after each kill. */
  options: { dataDir: string, cycles: number, minKillMs?: number, maxKillMs?: number, onCycle?: (cycle: number, totals: Totals) => void }
  /** Counts the cycles run, and goes to `onCycle`. */
  totals: Totals
  env: Record<string, string>
  /** How a cycle's service is run, if not plainly: a launcher, more env (the last start is always plain). */
  launch?: (cycle: number) => Pick<RunOptions, 'launcher' | 'env'> | undefined
  random: () => number
  /** After every start, the last one included: check the log. */
  started: (child: ChildService) => Promise<void>
  /** Runs the writers until `stopped()` says the kill came; resolves once they have all returned. */
  write: (child: ChildService, cycle: number, stopped: () => boolean) => Promise<void>
  /** After the random delay, just before the kill: may wait for a moment to kill in. */
  aim?: (cycle: number) => Promise<void>
  /** After the kill, once the writers have returned and before the next start. */
  killed?: (cycle: number) => void
}

/**
 * The kill -9 cycles both suites run: start the service on the data directory, check it, write
 * until a random kill; a last start checks the last kill, then the service must stop gracefully.
 */
export async function runKillCycles<Totals extends { cycles: number, problems: string[] }> (c: KillCycles<Totals>): Promise<void> {
  const { options, totals } = c
  const minKill = options.minKillMs ?? 50
  const maxKill = options.maxKillMs ?? 1000
  for (let cycle = 1; cycle <= options.cycles + 1; cycle++) {
    const launch = cycle > options.cycles ? undefined : c.launch?.(cycle)
    const child = await startChild({ dataDir: options.dataDir, launcher: launch?.launcher, env: { ...c.env, ...launch?.env } })
    try {
      await c.started(child)
      if (cycle > options.cycles) {
        const exit = await child.stop()
        if (exit.code !== 0 && totals.problems.length < 50) totals.problems.push(`graceful stop exited with ${JSON.stringify(exit)}\n${child.output}`)
        break
      }
      let killed = false
      const running = c.write(child, cycle, () => killed)
      await sleep(minKill + c.random() * (maxKill - minKill))
      await c.aim?.(cycle)
      killed = true
      await child.kill9()
      await running
      c.killed?.(cycle)
      totals.cycles = cycle
      options.onCycle?.(cycle, totals)
    } finally {
      await child.kill9()
    }
  }
}

function tornTailsIn (child: ChildService): number {
  return child.stdoutText.split('\n').filter(line => line.includes('cut a torn tail')).length
}

/**
 * Runs the cycles on `dataDir` and returns the totals. A final restart checks the last kill, and
 * the service is then stopped gracefully (SIGTERM) and must exit 0.
 */
export async function runKill9 (options: Kill9Options): Promise<Kill9Totals> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31)
  const random = seeded(seed)
  const ledger = new Ledger()
  const { totals } = ledger
  const writers = options.writers ?? 16
  await runKillCycles({
    options,
    totals,
    env: { VECWAL_SEGMENT_BYTES: String(options.segmentBytes ?? 65536) },
    random,
    async started (child) {
      totals.tornTailsCut += tornTailsIn(child)
      await verify(ledger, child.url)
    },
    async write (child, cycle, stopped) {
      const ctx: WriterContext = { ledger, url: child.url, cycle, random, stopped }
      await Promise.all(Array.from({ length: writers }, async (_, w) => { await writer(ctx, `w${w}`) }))
    }
  })
  if (totals.problems.length > 0) totals.problems.unshift(`seed ${seed}`)
  return totals
}
