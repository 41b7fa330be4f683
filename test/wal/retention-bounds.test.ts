// Retention's two promises, on real files with generated logs: a read or a consumer is refused 410
// exactly when a record it would be given is gone (never a false refusal, never a silent skip),
// around every segment boundary, by checkpoint and past the byte cap; and past the byte cap, the
// log retention leaves holds at most VECWAL_RETAIN_MAX_BYTES, or only its active segment.
import fc from 'fast-check'
import t from 'tap'
import type { EntryInput } from '../../src/entry.js'
import type { WriteAheadLog } from '../../src/wal/log.js'
import { entry as entryArbitrary } from '../helpers/bodies.js'
import { collect, openLog, tempDir } from '../helpers/wal.js'

/** Entries small enough that a segment of the sizes below holds several. */
const smallEntry = (entryArbitrary as fc.Arbitrary<EntryInput>).filter(e => Buffer.byteLength(JSON.stringify(e)) <= 300)

/** A step of a generated workload: an entry, or a consumer's checkpoint at the last seq or at the last entry. */
type Step = { kind: 'append', entry: EntryInput } | { kind: 'checkpoint', consumer: number, at: 'last' | 'entry' }

const stepArbitrary = (consumers: number): fc.Arbitrary<Step> => fc.oneof(
  { weight: 4, arbitrary: smallEntry.map(entry => ({ kind: 'append' as const, entry })) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('checkpoint' as const), consumer: fc.nat({ max: consumers - 1 }), at: fc.constantFrom('last' as const, 'entry' as const) }) }
)

/** Whether an operation is refused with 410 WAL_RANGE_GONE; any other failure is thrown on. */
function refusedGone (run: () => unknown): boolean {
  try {
    run()
    return false
  } catch (err) {
    if ((err as { code?: string }).code === 'WAL_RANGE_GONE') return true
    throw err
  }
}

/** Runs the steps, returning the seqs of the entry records written (every other seq is the log's own). */
async function runSteps (log: WriteAheadLog, steps: Step[], names: string[]): Promise<Set<number>> {
  const entrySeqs = new Set<number>()
  for (const step of steps) {
    if (step.kind === 'append') {
      entrySeqs.add(await log.append(step.entry))
      continue
    }
    const name = names[step.consumer]
    const to = step.at === 'last' ? log.lastSeq : Math.max(0, ...entrySeqs)
    if (to >= (log.consumers.checkpointOf(name) ?? 0)) await log.consumers.checkpoint(name, to)
  }
  // Retention set off by the last segment started takes its turn among the consumer changes.
  await log.consumers.serial(async () => {})
  return entrySeqs
}

t.test('a read, a consumer and a consumer\'s creation are refused 410 exactly when a record they would be given is gone', async t => {
  let runs = 0
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 600, max: 1500 }),
    fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
    fc.integer({ min: 1, max: 3 }).chain(consumers => fc.tuple(fc.constant(consumers), fc.array(stepArbitrary(consumers), { minLength: 20, maxLength: 70 }))),
    fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
    async (segmentBytes, capSegments, [consumers, steps], creations) => {
      runs++
      const dir = tempDir(t)
      const log = await openLog(t, { dir, segmentBytes, retainMaxBytes: capSegments === undefined ? 0 : capSegments * segmentBytes, durability: 'none' })
      const names = Array.from({ length: consumers }, (_, i) => `c${i}`)
      for (const name of names) await log.consumers.create(name, 0)
      const entrySeqs = await runSteps(log, steps, names)
      let oldest = log.status().segments[0].firstSeq
      const lastSeq = log.lastSeq
      // What a read after `after` would be given, and whether any of it is gone.
      const wanted = (after: number, includeCheckpoints: boolean): number[] =>
        Array.from({ length: lastSeq - after }, (_, i) => after + 1 + i).filter(seq => includeCheckpoints || entrySeqs.has(seq))
      const lost = (after: number, includeCheckpoints: boolean): boolean => wanted(after, includeCheckpoints).some(seq => seq < oldest)
      for (let after = 0; after <= lastSeq; after++) {
        for (const includeCheckpoints of [false, true]) {
          const gone = lost(after, includeCheckpoints)
          t.equal(refusedGone(() => log.read({ after, includeCheckpoints })), gone, `after ${after} (oldest held ${oldest}, includeCheckpoints ${String(includeCheckpoints)})`)
          if (gone) continue
          const got = await collect(log.read({ after, includeCheckpoints }).records)
          t.same(got.map(r => r.seq), wanted(after, includeCheckpoints), `after ${after}: every record it asks for, none skipped`)
        }
      }
      for (const name of names) {
        const gone = lost(log.consumers.checkpointOf(name) ?? 0, false)
        t.equal(log.consumers.get(name).passedByRetention, gone, `${name} at ${log.consumers.checkpointOf(name) ?? 0} is passed only if an entry after it is gone`)
        t.equal(refusedGone(() => log.read({ consumer: name })), gone, `reading from ${name}`)
      }
      for (const [i, pick] of creations.entries()) {
        // Each creation writes a record, which may start a segment and so set retention off: the
        // oldest seq held is read again once that retention has had its turn.
        await log.consumers.serial(async () => {})
        oldest = log.status().segments[0].firstSeq
        const after = pick % (log.lastSeq + 1)
        const gone = lost(after, false)
        t.equal(await log.consumers.create(`new${i}`, after).then(() => false, err => { if (err.code === 'WAL_RANGE_GONE') return true; throw err }), gone, `creating a consumer at ${after}`)
      }
    }
  ), { numRuns: 25 })
  t.equal(runs, 25)
})

t.test('past the byte cap the log retention leaves holds at most VECWAL_RETAIN_MAX_BYTES, or only its active segment', async t => {
  let passedSomeone = false
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1024, max: 3000 }),
    fc.integer({ min: 0, max: 4 * 3000 }),
    fc.integer({ min: 1, max: 4 }).chain(consumers => fc.tuple(fc.constant(consumers), fc.array(stepArbitrary(consumers), { minLength: 30, maxLength: 120 }))),
    async (segmentBytes, capExtra, [consumers, steps]) => {
      const cap = 1 + capExtra
      const log = await openLog(t, { dir: tempDir(t), segmentBytes, retainMaxBytes: cap, durability: 'none' })
      const names = Array.from({ length: consumers }, (_, i) => `consumer-${i}`)
      for (const name of names) await log.consumers.create(name, 0)
      for (const step of steps) {
        const before = log.lastSeq
        await runSteps(log, [step], names)
        const { bytes, segments } = log.status()
        const active = segments[segments.length - 1].bytes
        // Once retention has run (each new segment and checkpoint): the active segment, never deleted, grows after it.
        t.ok(bytes - active <= cap, `the sealed segments hold ${bytes - active} bytes, cap ${cap}`)
        // A checkpoint that moved (its record written) ran retention before it was answered.
        if (step.kind === 'checkpoint' && log.lastSeq > before) t.ok(bytes <= cap || segments.length === 1, `after a checkpoint the log holds ${bytes} bytes in ${segments.length} segments, cap ${cap}`)
      }
      passedSomeone ||= log.consumers.list().some(c => c.passedByRetention)
    }
  ), { numRuns: 25 })
  t.ok(passedSomeone, 'the cap passed a consumer in some run: it bound the log, not only the checkpoints')
})
