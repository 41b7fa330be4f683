// A FileIO that cuts the power at a chosen call and leaves the outcome in place, for a log that is
// then closed and reopened on the same directory. (CrashImageIO, crash-image-io.ts, instead copies
// aside what a cut could leave at a moment the test picks, while the log goes on.) It passes every
// call to the real files and keeps, in a DurableFiles (durable-files.ts), how many bytes of each
// file a completed fdatasync made durable and which directory changes (files created, renamed,
// removed) a completed fsyncDir made durable. Armed with a call count, it "cuts the power" at that
// mutating call: a write there is torn (a random prefix of it reaches the file),
// and from then on every call that would change the disk fails with EIO, so the engine fails and
// can be closed. `applyCut` then makes the real directory what a power cut could have left:
//   - a file whose directory entry was never made durable is gone (or, by chance, still there);
//   - removals and renames not made durable are undone, the later ones first (a journaling file
//     system keeps directory changes in order);
//   - every file keeps its synced bytes plus a random part of the rest;
//   - in the harsh mode, the kept unsynced bytes of the last page are garbage or zeros.
// `syncedBytes` and `writeBackHole` model one more outcome, on a copy of the files: the kernel wrote
// back a later page of an unsynced write and not an earlier one, which then reads as zeros.
// The real fdatasync and directory fsync are skipped: what survives is decided here, and a real
// sync would only slow the test down. Each sync still yields, so that appends queue behind it.
import fs from 'node:fs'
import path from 'node:path'
import { nodeFileIO, type FileIO } from '../../src/wal/file-io.js'
import { DurableFiles } from './durable-files.js'
import { chunksLength, ioError } from './wal.js'

const PAGE_BYTES = 4096

export interface FileCut {
  name: string
  synced: number
  length: number
  kept: number
  /** Where the garbled bytes begin (harsh mode), if any were garbled. */
  garbledFrom?: number
  zeroed?: boolean
}

export interface CutReport {
  /** The call that cut the power, e.g. "writeAll #37 (torn after 112 of 604 bytes)". */
  at: string
  /** Files whose creation was not durable, removed. */
  removed: string[]
  /** Removals and renames that were not durable, undone. */
  undone: string[]
  files: FileCut[]
}

function eio (op: string): NodeJS.ErrnoException {
  return ioError('EIO', op, 'the power is cut')
}

function yieldTurn (): Promise<void> {
  return new Promise(resolve => setImmediate(resolve))
}

export class PowerCutIO implements FileIO {
  /** Mutating calls made since the IO was armed. */
  calls = 0
  /** Set once the power is cut. */
  cutAt: string | undefined
  private armedAt: number | undefined
  private readonly paths = new Map<number, string>()
  private readonly durable = new DurableFiles()

  constructor (private readonly random: () => number, private readonly inner: FileIO = nodeFileIO) {}

  /** Cuts the power at the `call`-th mutating call from now on (1 = the next one). */
  arm (call: number): void {
    this.calls = 0
    this.armedAt = call
  }

  get isCut (): boolean {
    return this.cutAt !== undefined
  }

  /** Counts a mutating call and says whether it must fail: the power is cut, or is cut now. */
  private cuts (op: string): boolean {
    if (this.cutAt !== undefined) return true
    if (this.armedAt === undefined) return false
    this.calls++
    if (this.calls < this.armedAt) return false
    this.cutAt = `${op} #${this.calls}`
    return true
  }

  private pathOf (fd: number): string {
    const file = this.paths.get(fd)
    if (file === undefined) throw new Error(`PowerCutIO: unknown fd ${fd}`)
    return file
  }

  async create (file: string, mode: number): Promise<number> {
    if (this.cuts('create')) throw eio('create')
    const fd = await this.inner.create(file, mode)
    this.paths.set(fd, file)
    this.durable.created(file)
    return fd
  }

  async openRead (file: string): Promise<number> {
    const fd = await this.inner.openRead(file)
    this.paths.set(fd, file)
    return fd
  }

  async openWrite (file: string): Promise<number> {
    const fd = await this.inner.openWrite(file)
    this.paths.set(fd, file)
    this.durable.state(file)
    return fd
  }

  async close (fd: number): Promise<void> {
    await this.inner.close(fd)
    this.paths.delete(fd)
  }

  async writeAll (fd: number, chunks: readonly Uint8Array[], position: number): Promise<void> {
    const file = this.pathOf(fd)
    const length = chunksLength(chunks)
    if (this.cuts('writeAll')) {
      if (this.cutAt === `writeAll #${this.calls}` && length > 0) {
        // The write the power cut interrupted: some of it reached the page cache.
        const torn = Math.floor(this.random() * length)
        if (torn > 0) {
          await this.inner.writeAll(fd, [Buffer.concat(chunks).subarray(0, torn)], position)
          this.durable.wrote(file, position + torn)
        }
        this.cutAt += ` (torn after ${torn} of ${length} bytes)`
      }
      throw eio('write')
    }
    await this.inner.writeAll(fd, chunks, position)
    this.durable.wrote(file, position + length)
  }

  async read (fd: number, into: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return await this.inner.read(fd, into, offset, length, position)
  }

  async fdatasync (fd: number): Promise<void> {
    if (this.cuts('fdatasync')) throw eio('fdatasync')
    await this.durable.sync(this.pathOf(fd), yieldTurn)
  }

  async ftruncate (fd: number, length: number): Promise<void> {
    if (this.cuts('ftruncate')) throw eio('ftruncate')
    await this.inner.ftruncate(fd, length)
    this.durable.truncated(this.pathOf(fd), length)
  }

  async size (fd: number): Promise<number> {
    return await this.inner.size(fd)
  }

  async fsyncDir (dir: string): Promise<void> {
    if (this.cuts('fsyncDir')) throw eio('fsyncDir')
    await this.durable.syncDir(dir, yieldTurn)
  }

  async readdir (dir: string): Promise<string[]> {
    return await this.inner.readdir(dir)
  }

  async mkdir (dir: string, mode: number): Promise<void> {
    if (this.cuts('mkdir')) throw eio('mkdir')
    await this.inner.mkdir(dir, mode)
  }

  async unlink (file: string): Promise<void> {
    if (this.cuts('unlink')) throw eio('unlink')
    const content = fs.readFileSync(file).subarray(0, this.durable.state(file).synced)
    await this.inner.unlink(file)
    this.durable.removed(file, content)
  }

  async rename (from: string, to: string): Promise<void> {
    if (this.cuts('rename')) throw eio('rename')
    await this.inner.rename(from, to)
    this.durable.renamed(from, to)
  }

  /** How many bytes of `file` a completed fdatasync made durable. */
  syncedBytes (file: string): number {
    return this.durable.state(file).synced
  }

  /**
   * Makes the files what the power cut leaves: call it once the engine is closed (nothing of it
   * still runs). `harsh` garbles or zeroes the unsynced bytes kept in each file's last page.
   */
  applyCut (harsh: boolean): CutReport {
    const report: CutReport = { at: this.cutAt ?? 'no call (never armed or not reached)', removed: [], undone: [], files: [] }
    // Directory changes not made durable: a random number of the first ones reached the disk, in
    // order; the rest are undone, the latest first.
    const reached = Math.floor(this.random() * (this.durable.pending.length + 1))
    for (const change of this.durable.pending.slice(reached).reverse()) {
      if (change.kind === 'create') {
        // A new file whose entry did not reach the disk; its data cannot be found without it.
        if (fs.existsSync(change.file)) fs.rmSync(change.file)
        this.durable.files.delete(change.file)
        report.removed.push(path.basename(change.file))
      } else if (change.kind === 'unlink') {
        fs.writeFileSync(change.file, change.content, { mode: 0o600 })
        report.undone.push(`unlink ${path.basename(change.file)}`)
      } else {
        fs.renameSync(change.to, change.from)
        const state = this.durable.files.get(change.to)
        this.durable.files.delete(change.to)
        if (state !== undefined) this.durable.files.set(change.from, state)
        report.undone.push(`rename ${path.basename(change.from)} -> ${path.basename(change.to)}`)
      }
    }
    this.durable.pending = []
    for (const [file, state] of this.durable.files) {
      if (!fs.existsSync(file)) continue
      const length = fs.statSync(file).size
      const synced = Math.min(state.synced, length)
      const kept = synced + Math.floor(this.random() * (length - synced + 1))
      const cut: FileCut = { name: path.basename(file), synced, length, kept }
      if (kept < length) fs.truncateSync(file, kept)
      if (harsh && kept > synced) {
        const from = Math.max(synced, Math.floor((kept - 1) / PAGE_BYTES) * PAGE_BYTES)
        const zeroed = this.random() < 0.3
        const junk = Buffer.alloc(kept - from)
        if (!zeroed) for (let i = 0; i < junk.length; i++) junk[i] = Math.floor(this.random() * 256)
        const fd = fs.openSync(file, 'r+')
        try {
          fs.writeSync(fd, junk, 0, junk.length, from)
        } finally {
          fs.closeSync(fd)
        }
        cut.garbledFrom = from
        cut.zeroed = zeroed
      }
      if (kept < length || cut.garbledFrom !== undefined) report.files.push(cut)
    }
    this.durable.files.clear()
    return report
  }
}

/**
 * Zeroes bytes [from, to) of `file`, but none of its first `synced` bytes (those are durable
 * whatever happens): what a power cut leaves of a range the kernel never wrote back while it wrote
 * later pages of the same write. Returns the range zeroed, empty if it lay within the synced bytes.
 */
export function writeBackHole (file: string, synced: number, from: number, to: number): { from: number, to: number } {
  const start = Math.max(from, synced)
  if (start >= to) return { from: start, to: start }
  const fd = fs.openSync(file, 'r+')
  try {
    fs.writeSync(fd, Buffer.alloc(to - start), 0, to - start, start)
  } finally {
    fs.closeSync(fd)
  }
  return { from: start, to }
}
