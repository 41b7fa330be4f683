// Keeps the last free bytes of the data directory's file system for what frees space: below
// `minFreeBytes`, appends are refused (WAL_DISK_FULL) while checkpoints still pass, so that a
// consumer can checkpoint and retention delete segments, as etcd's space quota does. A log that
// wrote until ENOSPC would be failed, and a failed log writes no checkpoint.
//
// Cheap on the hot path: the free space is asked of the file system (statfs) at most once per
// `refreshMs`, and lowered in between by the bytes each committed batch wrote.
import fs from 'node:fs'
import { DiskFullError } from '../errors.js'

/** Bytes the file system holding `dir` has free for this process. */
export type FreeBytes = (dir: string) => Promise<number>

export const statfsFreeBytes: FreeBytes = async dir => {
  const stats = await fs.promises.statfs(dir)
  return stats.bavail * stats.bsize
}

export class DiskSpaceGuard {
  private free = Number.POSITIVE_INFINITY
  private checkedAt = Number.NEGATIVE_INFINITY
  private refreshing: Promise<void> | undefined

  constructor (
    private readonly dir: string,
    private readonly minFreeBytes: number,
    private readonly freeBytes: FreeBytes,
    private readonly refreshMs: number
  ) {}

  /**
   * Throws DiskFullError below the minimum. Answers a promise only when the last statfs is older
   * than `refreshMs`: otherwise an append goes on without waiting even a tick.
   */
  admit (): Promise<void> | undefined {
    if (this.minFreeBytes === 0) return undefined
    if (Date.now() - this.checkedAt >= this.refreshMs) return this.refresh().then(() => { this.compare() })
    this.compare()
    return undefined
  }

  private compare (): void {
    if (this.belowMinimum) throw new DiskFullError(this.free, this.minFreeBytes)
  }

  /** Whether appends are refused now, by the last free space known. */
  get belowMinimum (): boolean {
    return this.free < this.minFreeBytes
  }

  /** The free bytes last known; undefined when never asked (no minimum set). */
  get knownFreeBytes (): number | undefined {
    return Number.isFinite(this.free) ? Math.max(0, this.free) : undefined
  }

  /** A batch of this many bytes was written: less is free until the next statfs. */
  spent (bytes: number): void {
    this.free -= bytes
  }

  /** Asks the file system again (one question at a time), e.g. after retention deleted segments. */
  refresh (): Promise<void> {
    if (this.minFreeBytes === 0) return Promise.resolve()
    this.refreshing ??= this.freeBytes(this.dir).then(free => {
      this.free = free
      this.checkedAt = Date.now()
    }).finally(() => { this.refreshing = undefined })
    return this.refreshing
  }
}
