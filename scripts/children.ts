// The child processes and temporary directories that tests, the bench and scripts make, ended and
// removed when the process that made them ends, however it ends: a normal exit, process.exit(), an
// uncaught error, or a signal. tap 21 ends a test file at its timeout (@tapjs/core's Spawn.timeout)
// with an IPC message, upon which the file's tap fails the running test and sends itself SIGALRM;
// the runner follows with SIGALRM half a second later and SIGKILL half a second after that, each
// only if the file still runs. No teardown of the file runs then, and whatever it started would
// outlive it, holding ports, data directory locks and cores. signal-exit (the same instance tap's
// own SIGALRM handling uses) runs the handler below on the exit or on any of those signals, then
// lets the signal end the process as it would have. A SIGKILL of the file itself leaves no chance.
import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { onExit } from 'signal-exit'

export interface Ownership {
  /**
   * Ended as a process group: the child was spawned with `detached: true` (a group of its own)
   * and starts processes of its own that must go with it, as a browser does.
   */
  group?: boolean
  /**
   * SIGTERM rather than SIGKILL: for a child that, through this module, ends its own children and
   * removes its own directories on SIGTERM (the bench), which SIGKILL would leave behind.
   */
  signal?: 'SIGKILL' | 'SIGTERM'
}

const children = new Map<ChildProcess, Required<Ownership>>()
const tempDirs = new Set<string>()
let listening = false

/**
 * Runs inside signal-exit's handler, so synchronously; nothing may stop it short of the last child
 * and directory. A child that is gone already answers ESRCH, which is what the kill was for.
 */
function endAll (): void {
  for (const [child, { group, signal }] of children) {
    const target = group ? -(child.pid as number) : child.pid as number
    // SIGCONT first: a paused process (a nats node a fault test stopped) acts on SIGTERM only once it runs.
    for (const sent of ['SIGCONT', signal] as const) {
      try {
        process.kill(target, sent)
      } catch {}
    }
  }
  children.clear()
  for (const dir of tempDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
    } catch {}
  }
  tempDirs.clear()
}

function listen (): void {
  if (listening) return
  listening = true
  onExit(endAll)
}

/** Registers `child` to be ended, by its pid, if this process ends before the child has exited. */
export function ownChild<C extends ChildProcess> (child: C, ownership: Ownership = {}): C {
  // No pid: the spawn failed, and its 'error' event says so; there is nothing to end.
  if (child.pid === undefined) return child
  listen()
  children.set(child, { group: false, signal: 'SIGKILL', ...ownership })
  child.once('exit', () => { children.delete(child) })
  return child
}

/** A fresh directory under os.tmpdir() named `prefix` and random characters, removed when this process ends at the latest. */
export function ownTempDir (prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  listen()
  tempDirs.add(dir)
  return dir
}

/** Removes a directory made by ownTempDir now. */
export function removeTempDir (dir: string): void {
  // A child killed just before (a browser's helper) may still be closing its files in it.
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 })
  tempDirs.delete(dir)
}
