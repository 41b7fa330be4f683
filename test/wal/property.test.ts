// Random histories of appends, bursts of concurrent appends, batches, transactions, checkpoints,
// clean reopens and simulated power cuts. After every reopen the log must hold every acknowledged
// record, unchanged and in order, and nothing else: the only records allowed beyond them are a
// prefix of the appends that were in flight, never acknowledged, when the power was cut.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import type { EntryInput } from '../../src/entry.js'
import { WriteAheadLog } from '../../src/wal/log.js'
import type { LogRecord } from '../../src/log.js'
import { bodyOf, brokenFiles, ioError, noSyncIO, readEverything, storedForm, tempDir } from '../helpers/wal.js'
import { CrashImageIO, crashImage } from '../helpers/crash-image-io.js'
import { seeded } from '../helpers/fault-ledger.js'

type Op =
  | { kind: 'append', entry: EntryInput }
  | { kind: 'burst', entries: EntryInput[] }
  | { kind: 'batch', entries: EntryInput[] }
  | { kind: 'transaction', stages: EntryInput[][], end: 'commit' | 'abort' | 'leave open' }
  | { kind: 'checkpoint', fraction: number }
  | { kind: 'reopen' }
  | { kind: 'crash', inFlight: EntryInput[], seed: number }

const id = fc.string({ minLength: 1, maxLength: 12 })
const vector = fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 48 })
const metadata = fc.dictionary(fc.stringMatching(/^[a-z]{1,6}$/), fc.string({ maxLength: 10 }), { maxKeys: 3, noNullPrototype: true })
const vectorEntry = fc.record(
  { op: fc.constantFrom('insert' as const, 'update' as const), id, vector, metadata },
  { requiredKeys: ['op', 'id', 'vector'] }
)
const deleteEntry = fc.record({ op: fc.constant('delete' as const), id })
const entry: fc.Arbitrary<EntryInput> = fc.oneof(vectorEntry, vectorEntry, deleteEntry)
const someEntries = (max: number): fc.Arbitrary<EntryInput[]> => fc.array(entry, { minLength: 1, maxLength: max })

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), entry }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('burst' as const), entries: someEntries(12) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('batch' as const), entries: someEntries(6) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('transaction' as const),
      stages: fc.array(someEntries(3), { minLength: 1, maxLength: 3 }),
      end: fc.constantFrom('commit' as const, 'abort' as const, 'leave open' as const)
    })
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('checkpoint' as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('crash' as const),
      inFlight: fc.array(entry, { maxLength: 8 }),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 })
    })
  }
)

interface Expected { seq: number, body: unknown }

function shape (records: LogRecord[]): Expected[] {
  return records.map(r => ({ seq: r.seq, body: bodyOf(r) }))
}

/** The log holds exactly the expected records (those retention may have deleted aside). */
async function verify (log: WriteAheadLog, expected: Expected[], checkpoint: number): Promise<void> {
  const status = log.status()
  assert.equal(status.lastSeq, expected.at(-1)?.seq ?? 0, 'last seq')
  assert.equal(status.checkpoint, checkpoint, 'checkpoint')
  const oldest = status.segments[0].firstSeq
  assert.ok(oldest <= checkpoint + 1, `retention deleted seq ${oldest - 1}, above checkpoint ${checkpoint}`)
  assert.deepEqual(shape(await readEverything(log)), expected.filter(r => r.seq >= oldest))
}

/** Waits for `promise`, failing instead of hanging if it takes longer than `ms`. */
async function within<T> (ms: number, promise: Promise<T>, failure: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(failure)) }, ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

interface Tally { crashes: number, survivors: number, tornTails: number }

async function run (root: string, segmentBytes: number, retainSegments: number, ops: Op[], tally: Tally): Promise<void> {
  // CrashImageIO decides what survives a power cut, so the disk's own flushes would only cost time.
  const io = new CrashImageIO(noSyncIO)
  let generation = 0
  const freshDir = (): string => fs.mkdtempSync(path.join(root, `g${generation++}-`))
  let dir = freshDir()
  const open = async (): Promise<WriteAheadLog> => await WriteAheadLog.open({ dir, io, segmentBytes, retainSegments })
  let log = await open()
  const expected: Expected[] = []
  let checkpoint = 0
  try {
    for (const step of ops) {
      switch (step.kind) {
        case 'append': {
          expected.push({ seq: await log.append(step.entry), body: storedForm(step.entry) })
          break
        }
        case 'burst': {
          const seqs = await Promise.all(step.entries.map(async e => await log.append(e)))
          step.entries.forEach((e, i) => expected.push({ seq: seqs[i], body: storedForm(e) }))
          break
        }
        case 'batch': {
          const seq = await log.appendBatch(step.entries)
          expected.push({ seq, body: { op: 'batch', entries: step.entries.map(storedForm) } })
          break
        }
        case 'transaction': {
          const txId = log.transactions.begin()
          for (const stage of step.stages) log.transactions.stage(txId, stage)
          if (step.end === 'commit') {
            const { seq } = await log.transactions.commit(txId)
            expected.push({ seq, body: { op: 'batch', entries: step.stages.flat().map(storedForm), txId } })
          } else if (step.end === 'abort') {
            log.transactions.abort(txId)
          }
          break
        }
        case 'checkpoint': {
          const target = checkpoint + Math.floor(step.fraction * (log.lastSeq - checkpoint))
          const { seq } = await log.checkpoint(target)
          expected.push({ seq, body: { op: 'checkpoint', checkpoint: target } })
          checkpoint = target
          break
        }
        case 'reopen': {
          await log.close()
          log = await open()
          await verify(log, expected, checkpoint)
          break
        }
        case 'crash': {
          // Appends in flight: their batch is written, and its fdatasync never completes.
          const held = step.inFlight.length > 0 ? io.holdNextSync() : undefined
          const outcomes = step.inFlight.map(async e => await log.append(e).then(() => 'acknowledged', (err: { code?: string }) => err.code))
          if (held !== undefined) await within(2_000, held.reached, 'the appends in flight never reached an fdatasync')
          const image = freshDir()
          crashImage(io, dir, image, seeded(step.seed))
          held?.release(ioError('EIO', 'fdatasync'))
          assert.deepEqual(await Promise.all(outcomes), step.inFlight.map(() => 'WAL_FAILED'), 'no append in flight was acknowledged')
          await log.close()
          dir = image
          const setAsideBefore = brokenFiles(dir).length
          log = await open()
          tally.tornTails += brokenFiles(dir).length - setAsideBefore
          const lastAcknowledged = expected.at(-1)?.seq ?? 0
          const survivors = shape(await readEverything(log)).filter(r => r.seq > lastAcknowledged)
          const inFlight = step.inFlight.map((e, i) => ({ seq: lastAcknowledged + 1 + i, body: storedForm(e) }))
          assert.deepEqual(survivors, inFlight.slice(0, survivors.length), 'beyond the acknowledged records, only a prefix of those in flight')
          expected.push(...survivors)
          tally.crashes++
          tally.survivors += survivors.length
          await verify(log, expected, checkpoint)
          break
        }
      }
    }
    await log.close()
    log = await open()
    await verify(log, expected, checkpoint)
  } finally {
    await log.close().catch(() => {})
    fs.rmSync(root, { recursive: true, force: true })
    fs.mkdirSync(root)
  }
}

t.test('random histories with reopens and power cuts lose no acknowledged record', async t => {
  const root = tempDir(t)
  let runs = 0
  let operations = 0
  const tally: Tally = { crashes: 0, survivors: 0, tornTails: 0 }
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 150, max: 3_000 }),
      fc.integer({ min: 0, max: 2 }),
      fc.array(op, { minLength: 5, maxLength: 40 }),
      async (segmentBytes, retainSegments, ops) => {
        runs++
        operations += ops.length
        await run(root, segmentBytes, retainSegments, ops, tally)
      }
    ),
    { numRuns: 100 }
  )
  t.comment(`${runs} histories, ${operations} operations, ${tally.crashes} power cuts, ` +
    `${tally.survivors} unacknowledged records survived them, ${tally.tornTails} torn pieces set aside`)
  t.pass('every history kept every acknowledged record, in order, and nothing else')
})
