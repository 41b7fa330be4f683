// Opening on a full disk (issue 10, item 5): a torn tail is cut even when no copy of it fits, no
// empty `.broken.N` is left behind, and a step that fails for another reason is named with its file.
import fs from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import { entries, ioError, openFailure, openLog, RecordingIO, segmentFiles, tempDir, writeLog } from '../helpers/wal.js'
import { capturingLogger, fillDisk, smallDisk } from '../helpers/small-disk.js'

function notRecords (dir: string): string[] {
  return fs.readdirSync(dir).filter(name => name.includes('.broken'))
}

t.test('a torn tail on a full disk is cut without a copy, and the log opens', async t => {
  const disk = smallDisk(t, 512 * 1024)
  let run = 0
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1, max: 30 }),
    fc.uint8Array({ minLength: 1, maxLength: 8000 }).filter(bytes => bytes.some(b => b !== 0)),
    async (count, garbage) => {
      const dir = path.join(disk, `run-${run++}`)
      await writeLog({ dir }, entries(count))
      const segment = path.join(dir, segmentFiles(dir)[0])
      const whole = fs.statSync(segment).size
      fs.appendFileSync(segment, garbage)
      const filler = fillDisk(disk)
      try {
        const logger = capturingLogger()
        const log = await openLog(t, { dir, logger })
        const lastSeq = log.lastSeq
        await log.close()
        const said = logger.lines.some(l => l.level === 'error' && l.message.includes('WITHOUT keeping a copy'))
        return lastSeq === count && fs.statSync(segment).size === whole && notRecords(dir).length === 0 && said
      } finally {
        fs.rmSync(filler)
        fs.rmSync(dir, { recursive: true })
      }
    }
  ), { numRuns: 12 })
  t.pass('every run opened with every whole record, cut the tail, kept no .broken file and said so')
})

t.test('repair on a full disk refuses, naming the copy it could not make, and leaves no .broken file', async t => {
  const disk = smallDisk(t, 512 * 1024)
  const dir = path.join(disk, 'log')
  await writeLog({ dir, segmentBytes: 4096 }, entries(200))
  const [first] = segmentFiles(dir)
  const file = path.join(dir, first)
  const bytes = fs.readFileSync(file)
  // In its last record, so that repair would cut the segment there, keeping a copy of the rest.
  bytes[bytes.length - 10] ^= 1
  fs.writeFileSync(file, bytes)
  const filler = fillDisk(disk)
  t.teardown(() => { fs.rmSync(filler, { force: true }) })
  const err = await openFailure({ dir, repair: true }) as { code?: string, message?: string }
  t.equal(err?.code, 'WAL_OPEN_FAILED', 'corruption may hold acknowledged records: no cut without its copy')
  t.match(err?.message, new RegExp(`could not (create|copy bytes from \\d+ of) ${first}`), 'the message names the step and the file')
  t.same(notRecords(dir), [], 'no empty or partial .broken file is left')
  t.equal(fs.readFileSync(file).length, bytes.length, 'the damaged segment is untouched')
})

t.test('a failed truncation names its step and file', async t => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 27 }), async (count, tear) => {
    const dir = tempDir(t)
    await writeLog({ dir }, entries(count))
    const [name] = segmentFiles(dir)
    fs.appendFileSync(path.join(dir, name), Buffer.alloc(tear, 7))
    const io = new RecordingIO()
    io.fault = op => op === 'ftruncate' ? ioError('EIO', 'ftruncate') : undefined
    const err = await openFailure({ dir, io }) as { code?: string, message?: string }
    return err?.code === 'WAL_OPEN_FAILED' && err.message?.includes(`could not truncate ${name} at byte `) === true && err.message.includes('EIO')
  }), { numRuns: 10 })
  t.pass('every failed truncation was reported as WAL_OPEN_FAILED naming the segment and the step')
})
