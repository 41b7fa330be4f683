// Record payloads: msgpack, with vectors as float32 typed arrays (msgpackr's typed-array
// extension), so a vector costs four bytes a value on disk and decodes without a parse.
// payload-writer.ts writes them (and makes the checks a stored entry must pass); src/records reads them.
import type { EntryInput } from '../entry.js'
import { RecordType, type RecordTypeCode } from '../records/record-bytes.js'
import { batchPayload, checkpointPayload, entryPayload } from './payload-writer.js'

export interface EncodedPayload {
  type: RecordTypeCode
  bytes: Buffer
}

export function encodeEntry (entry: EntryInput): EncodedPayload {
  return { type: RecordType[entry.op], bytes: entryPayload(entry) }
}

export function encodeBatch (entries: readonly EntryInput[], txId?: string): EncodedPayload {
  return { type: RecordType.batch, bytes: batchPayload(entries, txId) }
}

export function encodeCheckpoint (checkpoint: number): EncodedPayload {
  return { type: RecordType.checkpoint, bytes: checkpointPayload(checkpoint) }
}
