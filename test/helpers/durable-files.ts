// What the two power-cut simulators share: the account of what a power cut could not take from the
// files a test file layer passed to the disk. For each file, the bytes written and the bytes a
// completed fdatasync covered; and, in order, the directory changes (files created, removed,
// renamed) that no completed fsync of their directory covered yet. PowerCutIO (power-cut-io.ts)
// cuts the power at a chosen call and leaves its outcome in place; CrashImageIO (crash-image-io.ts)
// copies what a cut at this moment could leave aside while the log goes on.
import fs from 'node:fs'
import path from 'node:path'

export interface FileState {
  /** Bytes written (the file's length as the engine made it). */
  length: number
  /** Bytes a completed fdatasync covered. */
  synced: number
}

export type DirChange =
  | { kind: 'create', file: string }
  | { kind: 'unlink', file: string, content: Buffer }
  | { kind: 'rename', from: string, to: string }

export class DurableFiles {
  readonly files = new Map<string, FileState>()
  /** Directory changes no completed fsync of their directory covered, oldest first. */
  pending: DirChange[] = []

  /** The state of `file`; one not seen before is durable as it is on disk (it survived any cut). */
  state (file: string): FileState {
    let state = this.files.get(file)
    if (state === undefined) {
      const size = fs.existsSync(file) ? fs.statSync(file).size : 0
      state = { length: size, synced: size }
      this.files.set(file, state)
    }
    return state
  }

  created (file: string): void {
    this.files.set(file, { length: 0, synced: 0 })
    this.pending.push({ kind: 'create', file })
  }

  /** A write to `file` that ended at byte `end`. */
  wrote (file: string, end: number): void {
    const state = this.state(file)
    state.length = Math.max(state.length, end)
  }

  truncated (file: string, length: number): void {
    const state = this.state(file)
    state.length = length
    state.synced = Math.min(state.synced, length)
  }

  /** `file` was removed; `content` is what a power cut that undoes the removal brings back. */
  removed (file: string, content: Buffer): void {
    this.files.delete(file)
    this.pending.push({ kind: 'unlink', file, content })
  }

  renamed (from: string, to: string): void {
    const state = this.state(from)
    this.files.delete(from)
    this.files.set(to, state)
    this.pending.push({ kind: 'rename', from, to })
  }

  /** Runs an fdatasync of `file`: once it completes, the bytes written before it began are durable. */
  async sync (file: string, run: () => Promise<void>): Promise<void> {
    const state = this.state(file)
    const covered = state.length
    await run()
    state.synced = Math.max(state.synced, Math.min(covered, state.length))
  }

  /** Runs an fsync of `dir`: once it completes, the changes in it made before it began are durable. */
  async syncDir (dir: string, run: () => Promise<void>): Promise<void> {
    const covered = this.pending.filter(change => path.dirname(change.kind === 'rename' ? change.to : change.file) === dir)
    await run()
    this.pending = this.pending.filter(change => !covered.includes(change))
  }

  /** Whether `file` was created and no fsync of its directory has covered that yet. */
  entryPending (file: string): boolean {
    return this.pending.some(change => change.kind === 'create' && change.file === file)
  }
}
