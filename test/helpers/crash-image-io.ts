// A FileIO that takes crash images: at a moment the test picks, crashImage copies aside what a power
// cut then could leave of the log's directory, while the log itself goes on (the test then opens
// the copy). (PowerCutIO, power-cut-io.ts, instead cuts the power at a chosen call and leaves the
// outcome in place.) It keeps, in a DurableFiles (durable-files.ts), how many bytes of each file a
// completed fdatasync made durable and which new files no directory fsync has made durable yet; in
// an image every file is cut at a random point at or after its durable length (its unsynced tail
// possibly garbled), and unsynced new files are possibly gone. It can also hold an fdatasync, for
// an image taken while a batch is written but not yet durable.
import fs from 'node:fs'
import path from 'node:path'
import { DurableFiles } from './durable-files.js'
import { below } from './fault-ledger.js'
import { chunksLength, RecordingIO } from './wal.js'

interface HeldSync {
  reached: Promise<void>
  release: (err: Error) => void
}

export class CrashImageIO extends RecordingIO {
  readonly durable = new DurableFiles()
  private hold: { reached: () => void, gate: Promise<void> } | undefined

  /**
   * Makes the next fdatasync hang until released (it then fails with the given error): the moment
   * of a crash while a batch is written but not yet durable.
   */
  holdNextSync (): HeldSync {
    let reached!: () => void
    let fail!: (err: Error) => void
    const reachedPromise = new Promise<void>(resolve => { reached = resolve })
    const gate = new Promise<void>((_resolve, reject) => { fail = reject })
    this.hold = { reached, gate }
    return { reached: reachedPromise, release: (err) => { fail(err) } }
  }

  override async create (file: string, mode: number): Promise<number> {
    const fd = await super.create(file, mode)
    this.durable.created(file)
    return fd
  }

  override async openWrite (file: string): Promise<number> {
    const fd = await super.openWrite(file)
    this.durable.state(file)
    return fd
  }

  override async writeAll (fd: number, chunks: readonly Uint8Array[], position: number): Promise<void> {
    await super.writeAll(fd, chunks, position)
    this.durable.wrote(this.pathOf(fd), position + chunksLength(chunks))
  }

  override async fdatasync (fd: number): Promise<void> {
    const hold = this.hold
    if (hold !== undefined) {
      this.hold = undefined
      hold.reached()
      await hold.gate
    }
    await this.durable.sync(this.pathOf(fd), async () => { await super.fdatasync(fd) })
  }

  override async ftruncate (fd: number, length: number): Promise<void> {
    await super.ftruncate(fd, length)
    this.durable.truncated(this.pathOf(fd), length)
  }

  override async fsyncDir (dir: string): Promise<void> {
    await this.durable.syncDir(dir, async () => { await super.fsyncDir(dir) })
  }
}

/**
 * Writes into `to` what a power cut could leave of `from` (the LOCK file aside): each file keeps
 * its durable bytes and a random part of the rest, the kept unsynced bytes sometimes garbled from a
 * random point on; a file whose directory entry was never synced sometimes vanishes.
 */
export function crashImage (io: CrashImageIO, from: string, to: string, random: () => number): void {
  for (const name of fs.readdirSync(from)) {
    if (name === 'LOCK') continue
    const file = path.join(from, name)
    if (io.durable.entryPending(file) && below(random, 2) === 0) continue
    const data = fs.readFileSync(file)
    const durable = Math.min(io.durable.state(file).synced, data.length)
    const cut = durable + below(random, data.length - durable + 1)
    const image = Buffer.from(data.subarray(0, cut))
    if (cut > durable && below(random, 3) === 0) {
      for (let i = durable + below(random, cut - durable); i < cut; i++) image[i] = below(random, 256)
    }
    fs.writeFileSync(path.join(to, name), image, { mode: 0o600 })
  }
}
