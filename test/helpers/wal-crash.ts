// Simulated power cuts. CrashIO remembers, per file, how many bytes the last completed fdatasync
// made durable and which new files no directory fsync has made durable yet; crashImage then builds
// the directory as a power cut could leave it: every file cut at a random point at or after its
// durable length (its unsynced tail possibly garbled), and unsynced new files possibly gone.
import fs from 'node:fs'
import path from 'node:path'
import { RecordingIO } from './wal.js'

/** A small seeded PRNG (mulberry32), so a failing property run can be replayed from its seed. */
export function seededRandom (seed: number): (below: number) => number {
  let state = seed >>> 0
  return (below) => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    const unit = ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
    return Math.floor(unit * below)
  }
}

interface HeldSync {
  reached: Promise<void>
  release: (err: Error) => void
}

export class CrashIO extends RecordingIO {
  /** Durable length per file; a file missing here was durable before this IO saw it. */
  readonly synced = new Map<string, number>()
  /** Files created since the last fsync of their directory. */
  readonly unsyncedEntries = new Set<string>()
  private hold: { reached: () => void, gate: Promise<void>, fail: (err: Error) => void } | undefined

  /**
   * Makes the next fdatasync hang until released (it then fails with the given error): the moment
   * of a crash while a batch is written but not yet durable.
   */
  holdNextSync (): HeldSync {
    let reached!: () => void
    let fail!: (err: Error) => void
    const reachedPromise = new Promise<void>(resolve => { reached = resolve })
    const gate = new Promise<void>((_resolve, reject) => { fail = reject })
    this.hold = { reached, gate, fail }
    return { reached: reachedPromise, release: (err) => { fail(err) } }
  }

  override async create (file: string, mode: number): Promise<number> {
    const fd = await super.create(file, mode)
    this.synced.set(file, 0)
    this.unsyncedEntries.add(file)
    return fd
  }

  override async openWrite (file: string): Promise<number> {
    const fd = await super.openWrite(file)
    // Whatever a file held when this IO first opened it for writing is durable: it came from disk.
    if (!this.synced.has(file)) this.synced.set(file, fs.fstatSync(fd).size)
    return fd
  }

  override async fdatasync (fd: number): Promise<void> {
    const hold = this.hold
    if (hold !== undefined) {
      this.hold = undefined
      hold.reached()
      await hold.gate
    }
    await super.fdatasync(fd)
    this.synced.set(this.pathOf(fd), fs.fstatSync(fd).size)
  }

  override async ftruncate (fd: number, length: number): Promise<void> {
    await super.ftruncate(fd, length)
    const file = this.pathOf(fd)
    this.synced.set(file, Math.min(this.synced.get(file) ?? length, length))
  }

  override async fsyncDir (dir: string): Promise<void> {
    await super.fsyncDir(dir)
    for (const file of this.unsyncedEntries) {
      if (path.dirname(file) === dir) this.unsyncedEntries.delete(file)
    }
  }
}

/**
 * Writes into `to` what a power cut could leave of `from` (the LOCK file aside): each file keeps
 * its durable bytes and a random part of the rest, the kept unsynced bytes sometimes garbled from a
 * random point on; a file whose directory entry was never synced sometimes vanishes.
 */
export function crashImage (io: CrashIO, from: string, to: string, random: (below: number) => number): void {
  for (const name of fs.readdirSync(from)) {
    if (name === 'LOCK') continue
    const file = path.join(from, name)
    if (io.unsyncedEntries.has(file) && random(2) === 0) continue
    const data = fs.readFileSync(file)
    const durable = Math.min(io.synced.get(file) ?? data.length, data.length)
    const cut = durable + random(data.length - durable + 1)
    const image = Buffer.from(data.subarray(0, cut))
    if (cut > durable && random(3) === 0) {
      for (let i = durable + random(cut - durable); i < cut; i++) image[i] = random(256)
    }
    fs.writeFileSync(path.join(to, name), image, { mode: 0o600 })
  }
}
