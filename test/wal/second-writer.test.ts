// A second writer behind the log's back: bytes appended to the active segment (a whole record with
// the next seq, as another instance would write, or garbage), or the segment cut short. Before its
// next write the log sees a size it did not make, fails, and writes nothing over them.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import { RECORD_HEADER_BYTES, RecordType, SEGMENT_HEADER_BYTES, writeRecord } from '../../src/wal/format.js'
import { WriteAheadLog } from '../../src/wal/log.js'
import { encodeEntry } from '../../src/payload/payload.js'
import { entries, entry, segmentFiles } from '../helpers/wal.js'

type ForeignChange =
  | { kind: 'record', id: string }
  | { kind: 'garbage', bytes: Uint8Array }
  | { kind: 'cut', fraction: number }

const change: fc.Arbitrary<ForeignChange> = fc.oneof(
  fc.record({ kind: fc.constant('record' as const), id: fc.string({ minLength: 1, maxLength: 40 }) }),
  fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 300 }) }),
  fc.record({ kind: fc.constant('cut' as const), fraction: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }) })
)

/** Changes `file` as another process would; the log's last seq is `lastSeq`. */
function applyChange (file: string, lastSeq: number, foreign: ForeignChange): void {
  if (foreign.kind === 'record') {
    const payload = encodeEntry({ op: 'delete', id: foreign.id })
    const frame = Buffer.alloc(RECORD_HEADER_BYTES + payload.bytes.length)
    writeRecord(frame, 0, lastSeq + 1, Date.now(), RecordType.delete, payload.bytes)
    fs.appendFileSync(file, frame)
  } else if (foreign.kind === 'garbage') {
    fs.appendFileSync(file, foreign.bytes)
  } else {
    const size = fs.statSync(file).size
    fs.truncateSync(file, SEGMENT_HEADER_BYTES + Math.floor(foreign.fraction * (size - SEGMENT_HEADER_BYTES)))
  }
}

t.test('a segment changed behind the log\'s back fails the log before it writes', async t => {
  let runs = 0
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 20 }), change, fc.integer({ min: 1, max: 8 }), async (before, foreign, queued) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vecwal-second-writer-'))
    try {
      const log = await WriteAheadLog.open({ dir })
      for (const e of entries(before)) await log.append(e)
      const file = path.join(dir, segmentFiles(dir).at(-1) ?? '')
      applyChange(file, log.lastSeq, foreign)
      const changed = fs.readFileSync(file)

      const results = await Promise.allSettled(Array.from({ length: queued }, async (_, i) => await log.append(entry(before + i))))
      t.same(results.map(r => r.status), results.map(() => 'rejected'), `${foreign.kind}: every append queued after the change is refused`)
      const [first] = results
      t.match(first.status === 'rejected' ? first.reason : undefined, { code: 'WAL_FAILED', cause: { code: 'WAL_SEGMENT_CHANGED' } }, 'with WAL_FAILED, caused by the changed segment')
      t.equal(log.state, 'failed', 'the log is failed')
      await t.rejects(log.append(entry(0)), { code: 'WAL_FAILED' }, 'and takes nothing more')
      t.ok(fs.readFileSync(file).equals(changed), 'the log wrote nothing over the other writer\'s bytes')
      await log.close()
      runs++
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }), { numRuns: 40 })
  t.equal(runs, 40, 'every generated case ran')
})
