// Retention after a checkpoint: the checkpoint is durable before any segment is deleted, so a
// deletion that fails must not fail the checkpoint, nor the log.
import t from 'tap'
import { collect, entries, failNext, openLog, RecordingIO, segmentFiles, tempDir } from '../helpers/wal.js'

t.test('a failed deletion leaves the checkpoint acknowledged and the log ok; the next checkpoint deletes', async t => {
  const dir = tempDir(t)
  const io = new RecordingIO()
  const warnings: string[] = []
  const logger = { info () {}, warn () {}, error (_fields: object, message: string) { warnings.push(message) } }
  const log = await openLog(t, { dir, io, segmentBytes: 300, logger })
  for (const e of entries(20)) await log.append(e)
  const before = segmentFiles(dir).length
  t.ok(before > 2, `${before} segments`)

  const unlink = failNext(io, 'unlink', 'EIO')
  const result = await log.checkpoint(10)
  t.equal(unlink.failed(), 1, 'the deletion failed')
  t.equal(result.checkpoint, 10)
  t.equal(result.deletedSegments, 0, 'nothing reported deleted')
  t.equal(log.state, 'ok', 'the log goes on')
  t.same(warnings, ['retention could not delete covered segments'], 'the failure is logged, not swallowed')
  t.equal(segmentFiles(dir).length, before, 'every segment is still there')

  io.fault = undefined
  const next = await log.checkpoint(10)
  t.ok(next.deletedSegments > 0, `the next checkpoint deleted ${next.deletedSegments} segments`)
  const remaining = log.status().segments
  t.ok(remaining[0].lastSeq > 10, 'no segment wholly at or below the checkpoint remains')
  t.same(segmentFiles(dir), remaining.map(s => s.name), 'the files are the segments the log lists')
  t.equal((await log.append(entries(1, 99)[0])) > next.seq, true, 'appends go on')
})

t.test('a deletion past the byte cap that fails counts nothing as gone: every entry still reads and no consumer is passed; the next one passes it, and says so once', async t => {
  const dir = tempDir(t)
  const io = new RecordingIO()
  const passedWarnings: string[] = []
  const logger = { info () {}, warn (_fields: object, message: string) { if (message.startsWith('retention passed')) passedWarnings.push(message) }, error () {} }
  const log = await openLog(t, { dir, io, segmentBytes: 300, retainMaxBytes: 900, logger })
  await log.consumers.create('stalled', 0)
  const unlink = failNext(io, 'unlink', 'EIO')
  const written: number[] = []
  for (const e of entries(60)) {
    written.push(await log.append(e))
    if (unlink.failed() > 0) break
  }
  t.equal(unlink.failed(), 1, 'retention past the cap tried to delete, and failed')
  // Retention's turn among the consumer changes is over.
  await log.consumers.serial(async () => {})
  t.same((await collect(log.read({ after: 0 }).records)).map(r => r.seq), written, 'every entry still reads, none refused as gone')
  t.equal(log.consumers.get('stalled').passedByRetention, false, 'the consumer is not passed')
  t.same(passedWarnings, [])

  for (const e of entries(20, 100)) await log.append(e)
  await log.consumers.serial(async () => {})
  t.ok(log.status().segments[0].firstSeq > 2, 'the next retention deleted what the cap lets go')
  t.equal(log.consumers.get('stalled').passedByRetention, true, 'and passed the consumer')
  t.equal(passedWarnings.length, 1, 'saying so once')
})
