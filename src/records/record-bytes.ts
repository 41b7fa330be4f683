// A record as every backend stores it, and all the transcoders of src/records need of one: its seq,
// timestamp, type code and payload bytes (the msgpack body of docs/format.md). The segment engine's
// RecordFrame is one; a backend that keeps records elsewhere hands over the same fields.

/** The record types and their codes: the byte a segment frame stores, and each body's `op`. */
export const RecordType = {
  insert: 1,
  update: 2,
  delete: 3,
  batch: 4,
  checkpoint: 5,
  consumer: 6
} as const
export type RecordTypeName = keyof typeof RecordType
export type RecordTypeCode = (typeof RecordType)[RecordTypeName]

const typeNames: RecordTypeName[] = []
for (const [name, code] of Object.entries(RecordType)) typeNames[code] = name as RecordTypeName

export function recordTypeName (code: number): RecordTypeName | undefined {
  return typeNames[code]
}

/** Checkpoint and consumer records: the log's own bookkeeping, which reads leave out unless asked. */
export function isBookkeeping (code: number): boolean {
  return code === RecordType.checkpoint || code === RecordType.consumer
}

export interface RecordBytes {
  seq: number
  timestamp: number
  type: RecordTypeCode
  /**
   * The buffer holding the payload, and where the payload lies in it: offsets rather than a view,
   * so that a hot read loop allocates no Buffer per record.
   */
  source: Buffer
  payloadStart: number
  payloadEnd: number
}
