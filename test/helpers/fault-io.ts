// A FileIO that injects disk faults: it passes every call to the real files, counts the calls, and
// on demand holds one call until the test releases it, or fails one with an errno (EIO, ENOSPC).
import path from 'node:path'
import { nodeFileIO, type FileIO } from '../../src/wal/file-io.js'
import { ioError, type IoOp } from './wal.js'

interface Trap {
  op: IoOp
  file: RegExp
  kind: 'hold' | 'fail'
  code?: string
  reached: () => void
  gate?: Promise<void>
}

export interface Armed {
  /** Resolves when the call is reached. */
  reached: Promise<void>
}

export interface Held extends Armed {
  /** Lets the held call go on (to the real disk). */
  release: () => void
}

export class FaultIO implements FileIO {
  /** Calls made, by operation (failed ones included). */
  readonly calls = new Map<IoOp, number>()
  /** Faults injected so far. */
  injected = 0
  /** The bytes of the last writeAll on a file matching `watchWrites` (the failing one included). */
  lastWrite: Buffer | undefined
  private readonly paths = new Map<number, string>()
  private traps: Trap[] = []

  constructor (private readonly watchWrites = /\.seg$/, private readonly inner: FileIO = nodeFileIO) {}

  count (op: IoOp): number {
    return this.calls.get(op) ?? 0
  }

  /** Holds the next call of `op` on a file whose name matches, until released. */
  hold (op: IoOp, file: RegExp): Held {
    let reached!: () => void
    let release!: () => void
    const reachedPromise = new Promise<void>(resolve => { reached = resolve })
    const gate = new Promise<void>(resolve => { release = resolve })
    this.traps.push({ op, file, kind: 'hold', reached, gate })
    return { reached: reachedPromise, release }
  }

  /** Fails the next call of `op` on a file whose name matches (and that no hold takes) with `code`. */
  fail (op: IoOp, code: string, file: RegExp): Armed {
    let reached!: () => void
    const reachedPromise = new Promise<void>(resolve => { reached = resolve })
    this.traps.push({ op, file, kind: 'fail', code, reached })
    return { reached: reachedPromise }
  }

  private async before (op: IoOp, file: string): Promise<void> {
    this.calls.set(op, this.count(op) + 1)
    const trap = this.traps.find(t => t.op === op && t.file.test(path.basename(file)))
    if (trap === undefined) return
    this.traps = this.traps.filter(t => t !== trap)
    trap.reached()
    if (trap.kind === 'hold') {
      await trap.gate
      return
    }
    this.injected++
    throw ioError(trap.code ?? 'EIO', op)
  }

  private pathOf (fd: number): string {
    return this.paths.get(fd) ?? `fd ${fd}`
  }

  async create (file: string, mode: number): Promise<number> {
    await this.before('create', file)
    const fd = await this.inner.create(file, mode)
    this.paths.set(fd, file)
    return fd
  }

  async openRead (file: string): Promise<number> {
    await this.before('openRead', file)
    const fd = await this.inner.openRead(file)
    this.paths.set(fd, file)
    return fd
  }

  async openWrite (file: string): Promise<number> {
    await this.before('openWrite', file)
    const fd = await this.inner.openWrite(file)
    this.paths.set(fd, file)
    return fd
  }

  async close (fd: number): Promise<void> {
    await this.before('close', this.pathOf(fd))
    await this.inner.close(fd)
    this.paths.delete(fd)
  }

  async writeAll (fd: number, chunks: readonly Uint8Array[], position: number): Promise<void> {
    const file = this.pathOf(fd)
    if (this.watchWrites.test(path.basename(file))) this.lastWrite = Buffer.concat(chunks)
    await this.before('writeAll', file)
    await this.inner.writeAll(fd, chunks, position)
  }

  async read (fd: number, into: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    await this.before('read', this.pathOf(fd))
    return await this.inner.read(fd, into, offset, length, position)
  }

  async fdatasync (fd: number): Promise<void> {
    await this.before('fdatasync', this.pathOf(fd))
    await this.inner.fdatasync(fd)
  }

  async ftruncate (fd: number, length: number): Promise<void> {
    await this.before('ftruncate', this.pathOf(fd))
    await this.inner.ftruncate(fd, length)
  }

  async size (fd: number): Promise<number> {
    await this.before('size', this.pathOf(fd))
    return await this.inner.size(fd)
  }

  async fsyncDir (dir: string): Promise<void> {
    await this.before('fsyncDir', dir)
    await this.inner.fsyncDir(dir)
  }

  async readdir (dir: string): Promise<string[]> {
    await this.before('readdir', dir)
    return await this.inner.readdir(dir)
  }

  async mkdir (dir: string, mode: number): Promise<void> {
    await this.before('mkdir', dir)
    await this.inner.mkdir(dir, mode)
  }

  async unlink (file: string): Promise<void> {
    await this.before('unlink', file)
    await this.inner.unlink(file)
  }

  async rename (from: string, to: string): Promise<void> {
    await this.before('rename', from)
    await this.inner.rename(from, to)
  }
}
