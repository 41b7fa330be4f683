// The write calls of the `Log` interface, over the one thing a backend does differently: append one
// encoded record under its conditions. Both backends extend this, so that an entry and a batch are
// encoded, checked and counted the same way whatever stores them.
import { opCounts, type EntryInput, type EntryOp } from './entry.js'
import { assertConditions } from './errors.js'
import type { AppendConditions, AppendResult, BatchAppendResult, LogObserver } from './log.js'
import { encodeBatch, encodeEntry, encodePackedBatch, type EncodedPayload } from './payload/payload.js'
import { PackedEntries } from './payload/packed-entries.js'

export abstract class RecordWrites {
  protected abstract readonly observer: LogObserver

  /** Appends one encoded record under its conditions (an idempotency key, an expected last seq). */
  protected abstract appendRecord (payload: EncodedPayload, conditions: AppendConditions): Promise<AppendResult>

  /** Resolves with the entry's seq once it is durable. */
  async append (entry: EntryInput): Promise<number> {
    return (await this.appendWith(entry, {})).seq
  }

  /** Appends entries as one atomic record (one seq); with a txId, as a committed transaction. */
  async appendBatch (entries: readonly EntryInput[], txId?: string): Promise<number> {
    return (await this.appendBatchRecord(entries, {}, txId)).seq
  }

  async appendWith (entry: EntryInput, conditions: AppendConditions): Promise<AppendResult> {
    assertConditions(conditions)
    const result = await this.appendRecord(encodeEntry(entry, conditions.idempotencyKey), conditions)
    if (!result.replayed) this.observer.appended?.(entry.op, 1)
    return result
  }

  async appendBatchWith (entries: readonly EntryInput[] | PackedEntries, conditions: AppendConditions): Promise<BatchAppendResult> {
    if (!(entries instanceof PackedEntries)) return { ...await this.appendBatchRecord(entries, conditions), count: entries.length }
    assertConditions(conditions)
    return { ...await this.appendCounted(encodePackedBatch(entries, conditions.idempotencyKey), entries.ops, conditions), count: entries.length }
  }

  protected async appendBatchRecord (entries: readonly EntryInput[], conditions: AppendConditions, txId?: string): Promise<AppendResult> {
    assertConditions(conditions)
    return await this.appendCounted(encodeBatch(entries, txId, conditions.idempotencyKey), opCounts(entries), conditions)
  }

  /** Appends a batch record and counts its entries by op, unless it was a replay that wrote nothing. */
  private async appendCounted (payload: EncodedPayload, ops: ReadonlyMap<EntryOp, number>, conditions: AppendConditions): Promise<AppendResult> {
    const result = await this.appendRecord(payload, conditions)
    const { appended } = this.observer
    if (appended !== undefined && !result.replayed) for (const [op, count] of ops) appended(op, count)
    return result
  }
}
