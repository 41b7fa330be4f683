// Transactions are staged in memory and reach the log only when committed, as one batch record
// carrying the txId. Aborted, expired and never-committed transactions write nothing, so recovery
// has nothing of them to replay.
import { randomUUID } from 'node:crypto'
import type { EntryInput } from './entry.js'
import type { AppendConditions, AppendResult, BatchAppendResult } from './log.js'
import { assertStorable } from './payload/payload-writer.js'
import {
  EmptyTransactionError, IdempotencyKeyReusedError, QueueFullError, SegmentUnavailableError, SeqMismatchError, TransactionNotFoundError, TransactionsFullError, TransactionTooLargeError
} from './errors.js'

export interface TransactionLimits {
  /** Bytes one transaction may stage. */
  maxBytes: number
  /** Bytes all open transactions may stage together. */
  maxTotalBytes: number
  /** A transaction untouched this long is aborted. */
  idleMs: number
}

interface OpenTransaction {
  entries: EntryInput[]
  bytes: number
  timer: NodeJS.Timeout
}

/**
 * What an entry costs to hold in memory, roughly: float32 vectors, UTF-16 strings, and a fixed
 * overhead for the objects around them.
 */
export function stagedBytes (entry: EntryInput): number {
  let bytes = 64 + entry.id.length * 2
  if (entry.op === 'delete') return bytes
  bytes += entry.vector.length * 4
  if (entry.metadata !== undefined) {
    for (const key in entry.metadata) bytes += 32 + (key.length + entry.metadata[key].length) * 2
  }
  return bytes
}

/**
 * What an open transaction costs to hold before it stages anything (its map entry, id, timer):
 * counted against maxTotalBytes, so that empty transactions cannot pile up without bound.
 */
export const OPEN_TRANSACTION_BYTES = 1024

/**
 * The entry as it waits for its commit, its vector copied into float32 values of its own: a vector
 * may be a view of the request's body, which the transaction must not keep alive.
 */
function toStaged (entry: EntryInput): EntryInput {
  if (entry.op === 'delete') return entry
  return { ...entry, vector: Float32Array.from(entry.vector) }
}

export class TransactionManager {
  private readonly open = new Map<string, OpenTransaction>()
  /**
   * The commits under way, by txId: settled (never rejected) when the commit's outcome is known.
   * A refused commit restores its transaction, so a repeat that finds the txId missing meanwhile
   * waits for the first before it decides what the txId is.
   */
  private readonly committing = new Map<string, Promise<void>>()
  private totalBytes = 0

  constructor (
    private readonly limits: TransactionLimits,
    private readonly commitBatch: (entries: EntryInput[], txId: string, conditions: AppendConditions) => Promise<AppendResult>,
    /**
     * The answer to a commit retried with an idempotency key once its transaction is gone: the
     * first commit's, if the key's write was this transaction's commit; undefined if the key is unknown.
     */
    private readonly replayCommit: (txId: string, idempotencyKey: string) => Promise<BatchAppendResult | undefined>,
    /** Throws when the log takes no writes (failed or closed): nothing is staged that could never commit. */
    private readonly assertWritable: () => void
  ) {}

  get count (): number {
    return this.open.size
  }

  /** Bytes the open transactions hold: what they staged, and OPEN_TRANSACTION_BYTES each. */
  get stagedBytes (): number {
    return this.totalBytes
  }

  begin (): string {
    this.assertWritable()
    if (this.totalBytes + OPEN_TRANSACTION_BYTES > this.limits.maxTotalBytes) throw new TransactionsFullError(this.limits.maxTotalBytes)
    const txId = randomUUID()
    this.open.set(txId, { entries: [], bytes: 0, timer: this.expiry(txId) })
    this.totalBytes += OPEN_TRANSACTION_BYTES
    return txId
  }

  /** Stages entries and returns how many the transaction holds now. All or none are staged. */
  stage (txId: string, entries: readonly EntryInput[]): number {
    const tx = this.get(txId)
    this.assertWritable()
    // Refused now rather than at commit, when the transaction would be gone.
    for (const entry of entries) assertStorable(entry)
    let bytes = 0
    for (const entry of entries) bytes += stagedBytes(entry)
    if (tx.bytes + bytes > this.limits.maxBytes) throw new TransactionTooLargeError(this.limits.maxBytes)
    if (this.totalBytes + bytes > this.limits.maxTotalBytes) throw new TransactionsFullError(this.limits.maxTotalBytes)
    for (const entry of entries) tx.entries.push(toStaged(entry))
    tx.bytes += bytes
    this.totalBytes += bytes
    tx.timer.refresh()
    return tx.entries.length
  }

  /**
   * Appends the staged entries as one batch record. While that is under way, a repeat waits for it;
   * once it is done, the txId is unknown, but for a retry with the commit's idempotency key, which is
   * answered as the commit was (and a refused commit leaves the transaction open).
   */
  async commit (txId: string, conditions: AppendConditions = {}): Promise<BatchAppendResult> {
    const tx = this.open.get(txId)
    if (tx === undefined) {
      const inFlight = this.committing.get(txId)
      // Decided again once the first is done: open again if it was refused, gone if it committed.
      if (inFlight !== undefined) return await inFlight.then(async () => await this.commit(txId, conditions))
      const replay = conditions.idempotencyKey === undefined ? undefined : await this.replayCommit(txId, conditions.idempotencyKey)
      if (replay !== undefined) return replay
      throw new TransactionNotFoundError(txId)
    }
    if (tx.entries.length === 0) throw new EmptyTransactionError(txId)
    this.forget(txId, tx)
    const attempt = this.commitStaged(txId, tx, conditions)
    const settled = attempt.then(() => {}, () => {})
    this.committing.set(txId, settled)
    try {
      return await attempt
    } finally {
      // A repeat may already have begun the next attempt, on the restored transaction.
      if (this.committing.get(txId) === settled) this.committing.delete(txId)
    }
  }

  private async commitStaged (txId: string, tx: OpenTransaction, conditions: AppendConditions): Promise<BatchAppendResult> {
    try {
      const { seq, replayed } = await this.commitBatch(tx.entries, txId, conditions)
      return { seq, count: tx.entries.length, replayed }
    } catch (err) {
      // Only the refusals that wrote nothing (an overloaded queue, a segment that could not be
      // created, a condition that did not hold, a key given before for other content) leave the
      // transaction open, so the client can retry the commit.
      if (err instanceof QueueFullError || err instanceof SegmentUnavailableError || err instanceof SeqMismatchError ||
        err instanceof IdempotencyKeyReusedError) this.restore(txId, tx)
      throw err
    }
  }

  abort (txId: string): void {
    this.forget(txId, this.get(txId))
  }

  /** Drops every open transaction (the log is closing). */
  clear (): void {
    for (const [txId, tx] of this.open) this.forget(txId, tx)
  }

  private get (txId: string): OpenTransaction {
    const tx = this.open.get(txId)
    if (tx === undefined) throw new TransactionNotFoundError(txId)
    return tx
  }

  private forget (txId: string, tx: OpenTransaction): void {
    clearTimeout(tx.timer)
    this.open.delete(txId)
    this.totalBytes -= tx.bytes + OPEN_TRANSACTION_BYTES
  }

  private restore (txId: string, tx: OpenTransaction): void {
    tx.timer = this.expiry(txId)
    this.open.set(txId, tx)
    this.totalBytes += tx.bytes + OPEN_TRANSACTION_BYTES
  }

  private expiry (txId: string): NodeJS.Timeout {
    const timer = setTimeout(() => {
      const tx = this.open.get(txId)
      if (tx !== undefined) this.forget(txId, tx)
    }, this.limits.idleMs)
    timer.unref()
    return timer
  }
}
