// Power cuts: the engine under concurrent appends, batches, transaction commits and checkpoints,
// over a FileIO (test/helpers/power-cut-io.ts) that cuts the power at a random call. The log then
// fails, is closed (which must release the directory), the files are made what a power cut could
// leave (only fsynced bytes are sure to survive; in the harsh mode the unsynced part of the last
// page is garbage), and the log is opened again. Each iteration runs three cuts on one directory.
// After every reopen:
//   - every acknowledged record is there, at its seq, exactly as sent, unless a checkpoint that was
//     itself acknowledged or recovered covers it and retention deleted it;
//   - every record in the log was sent (requests cut before their answer may appear, whole);
//   - seqs are gap-free; the acknowledged checkpoint survived;
//   - a segment that lost bytes to the torn-tail cut has those exact bytes in a new `.broken` file,
//     and a segment set aside is in a `.broken` file whole;
//   - the log accepts appends, with seqs continuing after the last one on disk.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import type { EntryInput } from '../../src/entry.js'
import { nodeFileIO, type FileIO } from '../../src/wal/file-io.js'
import { WriteAheadLog } from '../../src/wal/log.js'
import type { LogRecord } from '../../src/log.js'
import { below, keyOf, randomEntry, recordDifference, seeded, type SentRequest } from '../helpers/fault-ledger.js'
import { PowerCutIO, type CutReport } from '../helpers/power-cut-io.js'

/**
 * How writes are refused once the power is cut: a failed write or fsync fails the log; a segment's
 * creation that failed wrote nothing, so only the writes that needed the segment are refused.
 */
const REFUSED_AFTER_CUT = new Set(['WAL_FAILED', 'WAL_SEGMENT_UNAVAILABLE'])

const BUDGET_MS = 15_000
const MIN_ITERATIONS = 20
const MAX_ITERATIONS = 500
const CUTS_PER_ITERATION = 3
const WRITERS = 5

interface Totals {
  iterations: number
  powerCuts: number
  acknowledgedEntries: number
  entryChecks: number
  lost: number
  unexpected: number
  /** `.broken` files made by torn-tail cuts (or set-asides) at reopen. */
  brokenFiles: number
  brokenBytes: number
  filesRemoved: number
  dirChangesUndone: number
  filesGarbled: number
  problems: string[]
}

const totals: Totals = {
  iterations: 0,
  powerCuts: 0,
  acknowledgedEntries: 0,
  entryChecks: 0,
  lost: 0,
  unexpected: 0,
  brokenFiles: 0,
  brokenBytes: 0,
  filesRemoved: 0,
  dirChangesUndone: 0,
  filesGarbled: 0,
  problems: []
}

function plain (record: LogRecord): Record<string, unknown> {
  return JSON.parse(JSON.stringify(record, (_key, v: unknown) => v instanceof Float32Array ? Array.from(v) : v)) as Record<string, unknown>
}

/** The log's files (segments and .broken files) and their bytes. */
function snapshot (dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>()
  for (const name of fs.readdirSync(dir)) {
    if (name.endsWith('.seg') || name.endsWith('.broken')) files.set(name, fs.readFileSync(path.join(dir, name)))
  }
  return files
}

class Iteration {
  readonly requests = new Map<string, SentRequest>()
  /** Which request (or `checkpoint@n`) stands at a seq: acknowledged, or found by an earlier reopen. */
  readonly bySeq = new Map<number, string>()
  readonly checkpointsAsked = new Set<number>()
  ackedCheckpoint = 0
  readonly random: () => number
  readonly context: string[] = []

  constructor (readonly seed: number, readonly dir: string, readonly harsh: boolean) {
    this.random = seeded(seed)
  }

  problem (text: string): void {
    if (totals.problems.length < 30) totals.problems.push(`seed ${this.seed}${this.harsh ? ' (harsh)' : ''}: ${text}\n  ${this.context.join('\n  ')}`)
  }

  ack (request: SentRequest, seq: number): void {
    request.ackedSeq = seq
    totals.acknowledgedEntries += request.entries.length
    this.bySeq.set(seq, request.key)
  }

  /** What reopening did to the files: cut tails and set-aside segments must be in new .broken files. */
  checkBrokenFiles (before: Map<string, Buffer>, oldestSegment: string): void {
    const after = snapshot(this.dir)
    const fresh = new Map([...after].filter(([name]) => name.endsWith('.broken') && !before.has(name)))
    const claim = (prefix: string, content: Buffer): boolean => {
      for (const [name, bytes] of fresh) {
        if ((name === prefix || name.startsWith(`${prefix}.`)) && bytes.equals(content)) {
          fresh.delete(name)
          totals.brokenFiles++
          totals.brokenBytes += bytes.length
          return true
        }
      }
      return false
    }
    for (const [name, old] of before) {
      if (!name.endsWith('.seg')) continue
      const now = after.get(name)
      if (now === undefined) {
        // Set aside whole, or deleted by retention (only ever the oldest segments).
        if (!claim(`${name}.broken`, old) && name >= oldestSegment) this.problem(`${name} vanished at reopen without a .broken copy`)
        continue
      }
      if (!old.subarray(0, now.length).equals(now)) this.problem(`${name} changed at reopen other than by cutting its tail`)
      // A tail of zeros is cut without a copy: it holds nothing.
      else if (now.length < old.length && !old.subarray(now.length).every(b => b === 0) && !claim(`${name}.at-${now.length}.broken`, old.subarray(now.length))) {
        this.problem(`${name} was cut from ${old.length} to ${now.length} bytes but no .broken file holds the cut bytes`)
      }
    }
    for (const name of fresh.keys()) this.problem(`${name} appeared at reopen and holds nothing that was cut`)
  }

  /** Reads the whole log back and checks it against the ledger; returns the last seq. */
  async checkLog (log: WriteAheadLog): Promise<number> {
    const status = log.status()
    const oldest = status.segments[0].firstSeq
    if (log.checkpointSeq < this.ackedCheckpoint) this.problem(`checkpoint ${log.checkpointSeq} after reopen, ${this.ackedCheckpoint} was acknowledged`)
    if (oldest - 1 > log.checkpointSeq) this.problem(`records up to ${oldest - 1} are gone but the checkpoint is ${log.checkpointSeq}`)
    const seen = new Set<number>()
    let expected = oldest
    for await (const record of log.read({ after: oldest - 1, includeCheckpoints: true }).records) {
      const json = plain(record)
      if (record.seq !== expected) {
        totals.unexpected++
        this.problem(`seq ${record.seq} where ${expected} was expected`)
      }
      expected = record.seq + 1
      seen.add(record.seq)
      let key: string
      if (record.op === 'checkpoint') {
        key = `checkpoint@${record.checkpoint}`
        if (!this.checkpointsAsked.has(record.checkpoint)) {
          totals.unexpected++
          this.problem(`checkpoint ${record.checkpoint} at seq ${record.seq} was never asked for`)
        }
      } else {
        key = keyOf(json)
        const sent = this.requests.get(key)
        const why = sent === undefined ? 'never sent' : recordDifference(sent, json)
        if (why !== undefined) {
          totals.unexpected++
          this.problem(`seq ${record.seq} (${key}): ${why}`)
          continue
        }
        if (sent?.ackedSeq !== undefined) totals.entryChecks += sent.entries.length
      }
      const standing = this.bySeq.get(record.seq)
      if (standing !== undefined && standing !== key) {
        totals.unexpected++
        this.problem(`seq ${record.seq} holds ${key}, expected ${standing}`)
      }
      this.bySeq.set(record.seq, key)
    }
    if (expected - 1 !== log.lastSeq) this.problem(`the read ended at ${expected - 1}, the last seq is ${log.lastSeq}`)
    for (const [seq, key] of this.bySeq) {
      if (seen.has(seq)) continue
      if (seq < oldest && seq <= log.checkpointSeq) {
        this.bySeq.delete(seq)
        continue
      }
      totals.lost += this.requests.get(key)?.entries.length ?? 1
      this.problem(`seq ${seq} (${key}) is missing after reopen`)
    }
    return log.lastSeq
  }

  /** One writer: random operations until one fails (the power is cut). */
  async writer (log: WriteAheadLog, io: PowerCutIO, name: string): Promise<void> {
    const { random } = this
    const tag = name
    for (let n = 0; ; n++) {
      const key = `${name}.${n}`
      const roll = random()
      try {
        if (roll < 0.55) {
          const request: SentRequest = { key, kind: 'entry', entries: [randomEntry(random, key, tag)] }
          this.requests.set(key, request)
          this.ack(request, await log.append(request.entries[0] as EntryInput))
        } else if (roll < 0.8) {
          const entries = Array.from({ length: 1 + below(random, 6) }, (_, j) => randomEntry(random, j === 0 ? key : `${key}.${j}`, tag))
          const request: SentRequest = { key, kind: 'batch', entries }
          this.requests.set(key, request)
          this.ack(request, await log.appendBatch(entries as EntryInput[]))
        } else if (roll < 0.93) {
          const txId = log.transactions.begin()
          const entries = Array.from({ length: 1 + below(random, 4) }, (_, j) => randomEntry(random, j === 0 ? key : `${key}.${j}`, tag))
          log.transactions.stage(txId, entries.slice(0, 1) as EntryInput[])
          if (entries.length > 1) log.transactions.stage(txId, entries.slice(1) as EntryInput[])
          const request: SentRequest = { key, kind: 'tx', entries, txId }
          this.requests.set(key, request)
          const { seq, count } = await log.transactions.commit(txId)
          if (count !== entries.length) this.problem(`commit of ${entries.length} entries counted ${count}`)
          this.ack(request, seq)
        } else {
          const upTo = log.lastSeq
          this.checkpointsAsked.add(upTo)
          const result = await log.checkpoint(upTo)
          this.ackedCheckpoint = Math.max(this.ackedCheckpoint, result.checkpoint)
          this.bySeq.set(result.seq, `checkpoint@${upTo}`)
        }
      } catch (err) {
        const code = (err as { code?: string }).code
        if (!io.isCut) this.problem(`${key} failed before the power cut: ${String(err)}`)
        else if (!REFUSED_AFTER_CUT.has(String(code)) && code !== 'EIO') this.problem(`${key} failed with ${String(code)}: ${String(err)}`)
        return
      }
    }
  }

  async run (): Promise<void> {
    let before: Map<string, Buffer> | undefined
    for (let round = 0; round <= CUTS_PER_ITERATION; round++) {
      const final = round === CUTS_PER_ITERATION
      const io: FileIO = final ? nodeFileIO : new PowerCutIO(this.random)
      let log: WriteAheadLog
      let closed = false
      try {
        log = await WriteAheadLog.open({ dir: this.dir, io, segmentBytes: 4096, retainSegments: below(this.random, 2) })
      } catch (err) {
        this.problem(`reopen after cut ${round} failed: ${String(err)}`)
        return
      }
      try {
        if (before !== undefined) this.checkBrokenFiles(before, log.status().segments[0].name)
        const reopenedAt = await this.checkLog(log)
        // The log accepts appends again, with seqs continuing after the last one on disk.
        const key = `r${round}.first`
        const request: SentRequest = { key, kind: 'entry', entries: [randomEntry(this.random, key, 'first')] }
        this.requests.set(key, request)
        const seq = await log.append(request.entries[0] as EntryInput)
        if (seq !== reopenedAt + 1) this.problem(`the first append after reopen got seq ${seq}, expected ${reopenedAt + 1}`)
        this.ack(request, seq)
        if (final) break
        const cutIO = io as PowerCutIO
        cutIO.arm(1 + below(this.random, 80))
        await Promise.all(Array.from({ length: WRITERS }, async (_, w) => { await this.writer(log, cutIO, `r${round}.w${w}`) }))
        totals.powerCuts++
        const refused = await log.append({ op: 'delete', id: 'after-the-cut' }).then(() => undefined, (err: { code?: string }) => err.code)
        if (!REFUSED_AFTER_CUT.has(String(refused))) this.problem(`an append after the cut got ${String(refused)}, not WAL_FAILED or WAL_SEGMENT_UNAVAILABLE`)
        // A cut that fell on a segment's creation wrote nothing: the log stays open, refusing each write.
        if (log.state !== 'failed' && refused !== 'WAL_SEGMENT_UNAVAILABLE') this.problem(`the log is ${log.state} after the cut, not failed`)
        closed = true
        await log.close()
        const report: CutReport = cutIO.applyCut(this.harsh)
        totals.filesRemoved += report.removed.length
        totals.dirChangesUndone += report.undone.length
        totals.filesGarbled += report.files.filter(f => f.garbledFrom !== undefined).length
        this.context.push(`cut ${round + 1} at ${report.at}: ${JSON.stringify({ removed: report.removed, undone: report.undone, files: report.files })}`)
        before = snapshot(this.dir)
      } finally {
        if (!closed) await log.close()
      }
    }
  }
}

t.test('power cuts at random calls lose nothing acknowledged and the log reopens', async t => {
  const baseSeed = Math.floor(Math.random() * 2 ** 30)
  const started = Date.now()
  for (let i = 0; i < MAX_ITERATIONS && (i < MIN_ITERATIONS || Date.now() - started < BUDGET_MS); i++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vecwal-powercut-'))
    try {
      await new Iteration(baseSeed + i, dir, i % 2 === 1).run()
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
    totals.iterations++
    if (totals.problems.length > 0) break
  }
  const { problems, ...figures } = totals
  t.comment(JSON.stringify(figures))
  t.same(problems, [], `no problem (seeds ${baseSeed}..${baseSeed + totals.iterations - 1})`)
  t.ok(totals.iterations >= MIN_ITERATIONS, `${totals.iterations} iterations ran`)
  t.equal(totals.powerCuts, totals.iterations * CUTS_PER_ITERATION, 'every round ended in a power cut')
  t.equal(totals.lost, 0, 'nothing acknowledged was lost')
  t.equal(totals.unexpected, 0, 'nothing appeared that was not sent')
  t.ok(totals.entryChecks > 0, 'acknowledged entries were checked after reopens')
  t.ok(totals.brokenFiles > 0, 'torn tails were cut into .broken files')
  t.ok(totals.filesGarbled > 0, 'the harsh mode garbled unsynced bytes')
})
