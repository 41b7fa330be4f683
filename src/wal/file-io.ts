// The file layer under the engine: every byte the log reads or writes goes through a FileIO. The
// engine takes one as an option, so tests can put a FileIO in its place that fails a write or an
// fsync, or forgets what was never synced, exactly where they choose.
import fs from 'node:fs'
import { promisify } from 'node:util'

export interface FileIO {
  /** Creates a new file; fails if it exists. */
  create (path: string, mode: number): Promise<number>
  openRead (path: string): Promise<number>
  /** Opens an existing file for reading and writing (to append to it or truncate it). */
  openWrite (path: string): Promise<number>
  close (fd: number): Promise<void>
  /**
   * Writes all of `chunks`, back to back, at `position`, looping over short writes: a group
   * commit's records go out as frame headers and payloads, without copying them into one buffer.
   */
  writeAll (fd: number, chunks: readonly Uint8Array[], position: number): Promise<void>
  read (fd: number, into: Uint8Array, offset: number, length: number, position: number): Promise<number>
  fdatasync (fd: number): Promise<void>
  ftruncate (fd: number, length: number): Promise<void>
  size (fd: number): Promise<number>
  /** Makes the directory's entries (files created, renamed or removed in it) durable. */
  fsyncDir (path: string): Promise<void>
  readdir (path: string): Promise<string[]>
  mkdir (path: string, mode: number): Promise<void>
  unlink (path: string): Promise<void>
  rename (from: string, to: string): Promise<void>
}

function writev (fd: number, chunks: readonly Uint8Array[], position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.writev(fd, chunks as Uint8Array[], position, (err, written) => { err === null ? resolve(written) : reject(err) })
  })
}

function read (fd: number, into: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, into, offset, length, position, (err, got) => { err === null ? resolve(got) : reject(err) })
  })
}

const open = promisify(fs.open)
const close = promisify(fs.close)
const fdatasync = promisify(fs.fdatasync)
const fsync = promisify(fs.fsync)
const ftruncate = promisify(fs.ftruncate)
const fstat = promisify(fs.fstat)

export const nodeFileIO: FileIO = {
  create: async (path, mode) => await open(path, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_RDWR, mode),
  openRead: async (path) => await open(path, fs.constants.O_RDONLY),
  openWrite: async (path) => await open(path, fs.constants.O_RDWR),
  close: async (fd) => { await close(fd) },
  async writeAll (fd, chunks, position) {
    let rest = chunks.filter(chunk => chunk.length > 0)
    let at = position
    while (rest.length > 0) {
      // A short write (a full disk) may end inside some chunk. libuv itself writes more chunks
      // than IOV_MAX in several calls.
      let written = await writev(fd, rest, at)
      at += written
      let first = 0
      while (first < rest.length && written >= rest[first].length) written -= rest[first++].length
      rest = rest.slice(first)
      if (written > 0) rest[0] = rest[0].subarray(written)
    }
  },
  read: async (fd, into, offset, length, position) => await read(fd, into, offset, length, position),
  fdatasync: async (fd) => { await fdatasync(fd) },
  ftruncate: async (fd, length) => { await ftruncate(fd, length) },
  size: async (fd) => (await fstat(fd)).size,
  async fsyncDir (path) {
    const fd = await open(path, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
    try {
      await fsync(fd)
    } finally {
      await close(fd)
    }
  },
  readdir: async (path) => await fs.promises.readdir(path),
  mkdir: async (path, mode) => { await fs.promises.mkdir(path, { recursive: true, mode }) },
  unlink: async (path) => { await fs.promises.unlink(path) },
  rename: async (from, to) => { await fs.promises.rename(from, to) }
}
