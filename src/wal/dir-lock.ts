// One writer per data directory: two would interleave records and destroy the log. The lock is a
// kernel lock (an open file description lock, fcntl F_OFD_SETLK, through fs-native-extensions) on
// the file LOCK, held as long as its descriptor is open. The kernel drops it when the holder dies,
// however it dies, and sees it from every process that opens the same file, whatever PID namespace
// or container that process is in; nothing is judged from pids. The holder's pid, host and start
// time are written into LOCK for operators to read, and never trusted.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { DirectoryLockedError, OpenStepError } from '../errors.js'

interface FileLocks {
  /** Takes an exclusive lock on the whole file; false if another open file description holds one. */
  tryLock: (fd: number) => boolean
}

const { tryLock } = createRequire(import.meta.url)('fs-native-extensions') as FileLocks

interface Holder { pid: number, host: string, started: string }

const processStarted = new Date(Date.now() - process.uptime() * 1000).toISOString()

function describeRecorded (fd: number): string {
  let text: string
  try {
    text = fs.readFileSync(fd, 'utf8')
  } catch {
    return 'its LOCK cannot be read'
  }
  try {
    const { pid, host, started } = JSON.parse(text) as Partial<Holder>
    if (typeof pid === 'number' && typeof host === 'string' && typeof started === 'string') {
      return `its LOCK records pid ${pid} on ${host}, started ${started}`
    }
  } catch {}
  // The holder may not have written its details yet, or be a version that wrote others.
  return 'its LOCK records no holder'
}

/**
 * Writes who holds the lock, for operators. On a full disk the lock holds all the same, the file
 * left empty: the service must still open there, to cut an unacknowledged torn tail and let a
 * consumer's checkpoint free space. Any other failure names its step and file.
 */
function writeHolder (fd: number, text: Buffer): void {
  try {
    fs.writeSync(fd, text, 0, text.length, 0)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOSPC' || code === 'EDQUOT') return
    throw new OpenStepError('write the holder into the lock file LOCK', err)
  }
}

export class DirLock {
  private constructor (private readonly fd: number) {}

  /** Takes the directory's lock, or throws DirectoryLockedError while another open holds it. */
  static acquire (dir: string): DirLock {
    const resolved = path.resolve(dir)
    // Never truncated or unlinked before the lock is ours: the file is the holder's, and a LOCK
    // unlinked and created again would be a second file that a second process could lock.
    const fd = fs.openSync(path.join(resolved, 'LOCK'), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600)
    try {
      if (!tryLock(fd)) throw new DirectoryLockedError(resolved, describeRecorded(fd))
      const holder: Holder = {
        pid: process.pid,
        host: os.hostname(),
        started: processStarted
      }
      const text = Buffer.from(`${JSON.stringify(holder)}\n`)
      fs.ftruncateSync(fd, 0)
      writeHolder(fd, text)
    } catch (err) {
      fs.closeSync(fd)
      throw err
    }
    return new DirLock(fd)
  }

  /** Closing the descriptor drops the lock; the file stays, for the next holder to lock. */
  release (): void {
    fs.closeSync(this.fd)
  }
}
