// A real, tiny file system for the tests of a full disk: a tmpfs of a few hundred KiB mounted on a
// fresh directory (the tests run as root) and unmounted when the test ends.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { tempDir, type TeardownTarget } from './wal.js'

export function smallDisk (t: TeardownTarget, bytes: number): string {
  const dir = tempDir(t)
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', dir])
  t.teardown(() => { execFileSync('umount', [dir]) })
  return dir
}

/**
 * Fills the file system holding `dir` with a file of its own until a write fails with ENOSPC, then
 * gives `leaveBytes` back. By default nothing: taking the lock again rewrites LOCK in the page it
 * has (and a LOCK made on a full disk stays empty), so a full disk needs no room to open.
 */
export function fillDisk (dir: string, leaveBytes = 0): string {
  const filler = path.join(dir, 'filler')
  const fd = fs.openSync(filler, 'w')
  const block = Buffer.alloc(4096, 1)
  try {
    for (;;) fs.writeSync(fd, block)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
  }
  try {
    fs.ftruncateSync(fd, Math.max(0, fs.fstatSync(fd).size - leaveBytes))
  } finally {
    fs.closeSync(fd)
  }
  return filler
}

/** A WalLogger that keeps every message, for tests of what the engine says. */
export function capturingLogger (): { lines: Array<{ level: string, fields: object, message: string }>, info: (f: object, m: string) => void, warn: (f: object, m: string) => void, error: (f: object, m: string) => void } {
  const lines: Array<{ level: string, fields: object, message: string }> = []
  const at = (level: string) => (fields: object, message: string) => { lines.push({ level, fields, message }) }
  return { lines, info: at('info'), warn: at('warn'), error: at('error') }
}
