// One writer per data directory, between real `vecwal serve` processes: many started at once, in
// PID namespaces of their own (containers sharing a volume), stopping beside a holder, killed -9.
// The lock is the kernel's (docs/format.md, "The LOCK file"); what LOCK says is never trusted.
import t, { type Test } from 'tap'
import { ChildService, startChild, type RunOptions } from '../helpers/child-service.js'
import { randomEntry, recordDifference, seeded, type SentRequest } from '../helpers/fault-ledger.js'
import { LOCKED_MESSAGE, PID_NAMESPACE, pidNamespacesUnavailable, runLockRace } from '../helpers/lock-race.js'
import { freePort } from '../helpers/project.js'
import { tempDir } from '../helpers/wal.js'

const SEED = Math.floor(Math.random() * 2 ** 30)
const noNamespaces = pidNamespacesUnavailable()
const inNamespace = { skip: noNamespaces === undefined ? false : `no PID namespaces here: ${noNamespaces}` }

function dataDir (t: Test): string {
  return tempDir(t, 'vecwal-lock-')
}

/** Starts a service that the test stops (SIGKILL) at teardown if it is still running. */
async function holder (t: Test, options: RunOptions): Promise<ChildService> {
  const child = await startChild(options)
  t.teardown(async () => { await child.kill9() })
  return child
}

/** Sends `count` random entries one after another; returns them with their acknowledged seqs. */
async function send (child: ChildService, random: () => number, tag: string, count: number): Promise<SentRequest[]> {
  const sent: SentRequest[] = []
  for (let i = 0; i < count; i++) {
    const key = `${tag}.${i}`
    const request: SentRequest = { key, kind: 'entry', entries: [randomEntry(random, key, tag)] }
    const res = await fetch(`${child.url}/v1/entries`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request.entries[0]) })
    const body = await res.json() as { seq: number }
    if (res.status !== 201) throw new Error(`POST /v1/entries answered ${res.status}: ${JSON.stringify(body)}`)
    request.ackedSeq = body.seq
    sent.push(request)
  }
  return sent
}

/** Why the log `child` serves is not exactly `sent`, in order, or undefined when it is. */
async function logDifference (child: ChildService, sent: SentRequest[]): Promise<string | undefined> {
  const text = await (await fetch(`${child.url}/v1/recovery?after=0`)).text()
  const records = text.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Record<string, unknown>)
  if (records.length !== sent.length) return `${records.length} records, ${sent.length} acknowledged`
  for (let i = 0; i < sent.length; i++) {
    if (records[i].seq !== sent[i].ackedSeq) return `record ${i} has seq ${String(records[i].seq)}, acknowledged ${String(sent[i].ackedSeq)}`
    const why = recordDifference(sent[i], records[i])
    if (why !== undefined) return `seq ${String(records[i].seq)}: ${why}`
  }
  return undefined
}

/** Starts an instance that must refuse the directory: one that serves is a second writer, killed at once. */
async function refusedLocked (t: Test, options: RunOptions, what: string): Promise<void> {
  const child = ChildService.spawn(options, await freePort())
  const served = await child.ready().then(() => true, () => false)
  if (served) {
    await child.kill9()
    t.fail(`${what}: it serves beside the holder`)
    return
  }
  t.not((await child.exited).code, 0, `${what}: it exits with an error`)
  t.match(child.stderrText, LOCKED_MESSAGE, `${what}: it is refused with the lock message (WAL_LOCKED)`)
}

t.test('many instances started at once on one directory, after the holder stopped or was killed: exactly one serves each time, nothing acknowledged is lost or replaced', async t => {
  if (noNamespaces !== undefined) t.comment(`all in one PID namespace: ${noNamespaces}`)
  const contenders = 4
  const totals = await runLockRace({
    dataDir: dataDir(t),
    rounds: 2,
    contenders,
    // Half of them in PID namespaces of their own where that can be done, as in a rolling deploy
    // of containers sharing the volume.
    namespaces: noNamespaces === undefined,
    entriesPerRound: 5,
    seed: SEED,
    // A bound, not a pace: a busy machine (CI, two cores, three files at once) starts the
    // contenders slowly, and both rounds must still run.
    deadline: Date.now() + 90_000
  })
  const { problems, ...figures } = totals
  t.comment(JSON.stringify(figures))
  t.same(problems, [], `no problem (seed ${SEED})`)
  t.equal(totals.rounds, 2, 'both rounds ran')
  t.equal(totals.multipleWinners, 0, 'never two instances serving')
  t.equal(totals.noWinner, 0, 'always one')
  t.equal(totals.refusedLocked, totals.rounds * (contenders - 1), 'every other instance refused with WAL_LOCKED')
  t.equal(totals.lost + totals.replaced + totals.unexpected, 0, 'the log holds exactly what was acknowledged')
  t.ok(totals.entryChecks > 0, 'acknowledged entries were read back')
})

t.test('a second instance in another PID namespace is refused, and the first keeps its entries', inNamespace, async t => {
  const dir = dataDir(t)
  const random = seeded(SEED + 1)
  const first = await holder(t, { dataDir: dir, launcher: PID_NAMESPACE })
  const sent = await send(first, random, 'first', 1 + Math.floor(random() * 10))
  // Both are pid 1 in their namespaces, and neither sees the other's process.
  await refusedLocked(t, { dataDir: dir, launcher: PID_NAMESPACE }, 'a second instance in a PID namespace of its own')
  await refusedLocked(t, { dataDir: dir }, 'an instance in the host\'s PID namespace')
  sent.push(...await send(first, random, 'after', 1 + Math.floor(random() * 10)))
  t.equal(await logDifference(first, sent), undefined, 'the first instance\'s log is exactly what it acknowledged')
})

t.test('an instance stopping beside the holder does not free the holder\'s lock', inNamespace, async t => {
  const dir = dataDir(t)
  const random = seeded(SEED + 2)
  const first = await holder(t, { dataDir: dir, launcher: PID_NAMESPACE })
  const sent = await send(first, random, 'first', 1 + Math.floor(random() * 10))
  // Whatever the second instance does, it then stops gracefully, running its close and release.
  const second = ChildService.spawn({ dataDir: dir, launcher: PID_NAMESPACE }, await freePort())
  await Promise.race([second.ready().catch(() => {}), second.exited])
  await second.stop()
  await refusedLocked(t, { dataDir: dir }, 'after it stopped, a third instance')
  await refusedLocked(t, { dataDir: dir, launcher: PID_NAMESPACE }, 'and one in a PID namespace')
  sent.push(...await send(first, random, 'after', 1 + Math.floor(random() * 10)))
  t.equal(await logDifference(first, sent), undefined, 'the holder\'s log is exactly what it acknowledged')
  t.same(await first.stop(), { code: 0, signal: null }, 'the holder stops cleanly')
  const next = await holder(t, { dataDir: dir })
  t.equal(await logDifference(next, sent), undefined, 'once it stopped, the next instance serves the same log')
})

t.test('after kill -9 of the holder a new instance starts at once, in any PID namespace', async t => {
  const dir = dataDir(t)
  const random = seeded(SEED + 3)
  const launchers = noNamespaces === undefined ? [undefined, PID_NAMESPACE, PID_NAMESPACE] : [undefined, undefined]
  const sent: SentRequest[] = []
  let previous: ChildService | undefined
  for (const [i, launcher] of launchers.entries()) {
    await previous?.kill9()
    const child = await holder(t, { dataDir: dir, launcher })
    t.equal(await logDifference(child, sent), undefined, `start ${i + 1} serves every entry acknowledged before the kill`)
    sent.push(...await send(child, random, `start${i}`, 1 + Math.floor(random() * 10)))
    previous = child
  }
})
