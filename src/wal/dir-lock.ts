// One writer per data directory: two would interleave records and destroy the log. Node has no
// flock, so the lock is a LOCK file naming its holder by pid and process start time; a LOCK left by
// a process that is gone (kill -9) is taken over, one whose holder still runs is refused.
import fs from 'node:fs'
import path from 'node:path'
import { DirectoryLockedError, OpenStepError } from './errors.js'

interface Holder { pid: number, start: string }

const heldHere = new Set<string>()

function processStart (pid: number): string {
  try {
    // Field 22 of /proc/PID/stat: start time in clock ticks since boot. With the pid it names one
    // process, even where pids are reused (a container's service is always pid 1).
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? ''
  } catch {
    return ''
  }
}

function isRunning (holder: Holder): boolean {
  try {
    process.kill(holder.pid, 0)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  const start = processStart(holder.pid)
  return start === '' || holder.start === '' || start === holder.start
}

function readHolder (file: string): Holder | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<Holder>
    if (typeof parsed.pid === 'number') return { pid: parsed.pid, start: String(parsed.start ?? '') }
  } catch {}
  return undefined
}

/**
 * Creates `file` holding `content`, or returns false if it exists. The content is written to a
 * private file first and linked into place, so that nobody ever reads a LOCK without its holder.
 */
function createWithContent (file: string, content: string): boolean {
  const draft = `${file}.${process.pid}.${Date.now()}`
  try {
    fs.writeFileSync(draft, content, { flag: 'wx', mode: 0o600 })
  } catch (err) {
    // A full disk fails the write after the create: no empty draft is left behind.
    fs.rmSync(draft, { force: true })
    throw new OpenStepError(`write the lock file ${draft}`, err)
  }
  try {
    fs.linkSync(draft, file)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    return false
  } finally {
    fs.rmSync(draft, { force: true })
  }
}

export class DirLock {
  private constructor (private readonly dir: string, private readonly file: string) {}

  static acquire (dir: string): DirLock {
    const resolved = path.resolve(dir)
    const file = path.join(resolved, 'LOCK')
    if (heldHere.has(resolved)) throw new DirectoryLockedError(resolved, `this process, pid ${process.pid}`)
    const me: Holder = { pid: process.pid, start: processStart(process.pid) }
    for (let attempt = 0; attempt < 2; attempt++) {
      if (createWithContent(file, JSON.stringify(me))) {
        heldHere.add(resolved)
        return new DirLock(resolved, file)
      }
      const holder = readHolder(file)
      if (holder !== undefined && holder.pid !== process.pid && isRunning(holder)) {
        throw new DirectoryLockedError(resolved, `pid ${holder.pid}`)
      }
      fs.rmSync(file, { force: true })
    }
    throw new DirectoryLockedError(resolved, 'another process raced for the lock')
  }

  release (): void {
    fs.rmSync(this.file, { force: true })
    heldHere.delete(this.dir)
  }
}
