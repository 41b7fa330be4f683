// What a process killed mid-write leaves for the next open: the page cache still holds the write its
// fdatasync never finished, and the new open reads it as part of the log. It must be made durable
// before anything is answered from it (a retry with its idempotency key, a follower), or a power cut
// after that answer takes it. And a write whose fdatasync failed is cut from the file before the log
// fails, so that pages the kernel marked clean cannot pass for durable records at the next open.
import fs from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import type { EntryInput } from '../../src/entry.js'
import { WriteAheadLog } from '../../src/wal/log.js'
import { entry as generatedEntry } from '../helpers/bodies.js'
import { CrashImageIO, crashImage } from '../helpers/crash-image-io.js'
import { seeded } from '../helpers/fault-ledger.js'
import { ioError, noSyncIO, readEverything, tempDir } from '../helpers/wal.js'

/** Crash images taken of the reopened log: each cuts every file at its own random point past its durable bytes. */
const IMAGES = 20

const key = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map(c => String.fromCharCode(c)), minLength: 1, maxLength: 64 })

t.test('a write whose fdatasync a kill interrupted is synced by the next open: the keyed retry answered from it survives any power cut after', async t => {
  const root = tempDir(t)
  const [acknowledged, inFlight, idempotencyKey] = fc.sample(fc.tuple(fc.array(generatedEntry, { minLength: 1, maxLength: 20 }), generatedEntry, key), 1)[0] as [EntryInput[], EntryInput, string]
  const killedDir = path.join(root, 'killed')
  fs.mkdirSync(killedDir)
  // CrashImageIO decides what a power cut keeps, so the disk's own flushes would only cost time.
  const killedIO = new CrashImageIO(noSyncIO)
  const killed = await WriteAheadLog.open({ dir: killedDir, io: killedIO })
  for (const e of acknowledged) await killed.append(e)
  const held = killedIO.holdNextSync()
  const outcome = killed.appendWith(inFlight, { idempotencyKey }).then(() => 'acknowledged', (err: { code?: string }) => err.code)
  await held.reached

  // The kill: another process opens the files as the page cache shows them, the write in flight
  // included; what was durable is durable for it too.
  const dir = path.join(root, 'reopened')
  fs.mkdirSync(dir)
  const io = new CrashImageIO(noSyncIO)
  for (const name of fs.readdirSync(killedDir).filter(name => name !== 'LOCK')) {
    fs.copyFileSync(path.join(killedDir, name), path.join(dir, name))
    io.durable.files.set(path.join(dir, name), { ...killedIO.durable.state(path.join(killedDir, name)) })
  }
  const inFlightSeq = acknowledged.length + 1
  t.ok([...io.durable.files.values()].some(state => state.synced < state.length), 'the write in flight is in the files, not yet durable')
  const reopened = await WriteAheadLog.open({ dir, io })
  t.teardown(async () => { await reopened.close() })
  t.same(await reopened.appendWith(inFlight, { idempotencyKey }), { seq: inFlightSeq, replayed: true }, 'the retry is answered from the write the kill interrupted')

  for (let i = 0; i < IMAGES; i++) {
    const image = path.join(root, `image-${i}`)
    fs.mkdirSync(image)
    crashImage(io, dir, image, seeded(i))
    const afterCut = await WriteAheadLog.open({ dir: image })
    const records = await readEverything(afterCut)
    await afterCut.close()
    t.equal((records.find(r => r.seq === inFlightSeq) as { id?: string } | undefined)?.id, inFlight.id, `power cut ${i} after the answer: seq ${inFlightSeq} holds the entry answered`)
  }

  held.release(ioError('EIO', 'fdatasync'))
  t.equal(await outcome, 'WAL_FAILED', 'the killed log never answered it')
  await killed.close()
})

t.test('a write whose fdatasync failed is cut from the file before the log fails: the next open does not find it', async t => {
  const dir = tempDir(t)
  const [acknowledged, refused] = fc.sample(fc.tuple(fc.array(generatedEntry, { minLength: 1, maxLength: 20 }), fc.array(generatedEntry, { minLength: 1, maxLength: 5 })), 1)[0] as [EntryInput[], EntryInput[]]
  const io = new CrashImageIO(noSyncIO)
  const log = await WriteAheadLog.open({ dir, io })
  for (const e of acknowledged) await log.append(e)
  const held = io.holdNextSync()
  const outcome = log.appendBatch(refused).then(() => 'acknowledged', (err: { code?: string }) => err.code)
  await held.reached
  // As after a failed write-back: the kernel reports the error and keeps the pages, marked clean.
  held.release(ioError('EIO', 'fdatasync'))
  t.equal(await outcome, 'WAL_FAILED', 'the batch is refused')
  await log.close()
  const reopened = await WriteAheadLog.open({ dir })
  t.teardown(async () => { await reopened.close() })
  t.same((await readEverything(reopened)).map(r => r.seq), acknowledged.map((_, i) => i + 1), 'only the acknowledged records')
  t.equal(reopened.lastSeq, acknowledged.length, 'the refused batch\'s seq is free again')
})
