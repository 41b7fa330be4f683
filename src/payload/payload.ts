// Record payloads: msgpack, with vectors as float32 typed arrays (msgpackr's typed-array
// extension), so a vector costs four bytes a value on disk and decodes without a parse.
// payload-writer.ts writes them (and makes the checks a stored entry must pass); src/records reads them.
import type { EntryInput } from '../entry.js'
import type { PackedEntries } from './packed-entries.js'
import { RecordType, type RecordTypeCode } from '../records/record-bytes.js'
import { CONTENT_DIGEST_BYTES } from '../records/record-shape.js'
import { batchPayload, checkpointPayload, consumerPayload, entryPayload, packedBatchPayload, type ConsumerRecord } from './payload-writer.js'

export interface EncodedPayload {
  type: RecordTypeCode
  bytes: Buffer
}

export function encodeEntry (entry: EntryInput, idempotencyKey?: string): EncodedPayload {
  return { type: RecordType[entry.op], bytes: entryPayload(entry, idempotencyKey) }
}

export function encodeBatch (entries: readonly EntryInput[], txId?: string, idempotencyKey?: string): EncodedPayload {
  return { type: RecordType.batch, bytes: batchPayload(entries, txId, idempotencyKey) }
}

/** A batch whose payload was written as its body was walked (batch-body-packer.ts). */
export function encodePackedBatch (packed: PackedEntries, idempotencyKey?: string): EncodedPayload {
  return { type: RecordType.batch, bytes: packedBatchPayload(packed, idempotencyKey) }
}

/** A keyed payload's content digest, as readTrailingKeys gives it: its last 16 bytes as latin1 text. */
export function contentDigestOf (payload: EncodedPayload): string {
  return payload.bytes.toString('latin1', payload.bytes.length - CONTENT_DIGEST_BYTES)
}

export function encodeCheckpoint (checkpoint: number, consumer?: string): EncodedPayload {
  return { type: RecordType.checkpoint, bytes: checkpointPayload(checkpoint, consumer) }
}

export function encodeConsumer (record: ConsumerRecord): EncodedPayload {
  return { type: RecordType.consumer, bytes: consumerPayload(record) }
}
