// The one definition of a log entry. The TypeBox schemas below give the HTTP layer its validation
// and OpenAPI document, and give the engine its TypeScript types: both read this file, neither
// redefines an entry.
import { Type, type Static, type TObject, type TSchema } from '@sinclair/typebox'

/**
 * A vector value must lie strictly within ± this: halfway from the largest finite 32-bit float to
 * 2^128, where rounding to a 32-bit float gives Infinity. Below it, everything rounds to a finite
 * float32, the shortest decimal of the largest (3.4028235e38, as every read form prints it) among
 * them: a record read back and posted again must be taken.
 */
export const FLOAT32_ROUNDING_LIMIT = 2 ** 128 - 2 ** 103

export const ENTRY_LIMITS = {
  idMaxLength: 256,
  vectorMaxLength: 65_536,
  metadataMaxKeys: 64,
  metadataKeyMaxLength: 256,
  metadataValueMaxLength: 65_536,
  batchMaxEntries: 10_000
} as const

export interface EntrySchemaOptions {
  /** When set, every vector must have exactly this many values. */
  dimensions?: number
}

function oneOfByOp<T extends TSchema[]> (schemas: [...T], title: string) {
  // A discriminated oneOf rather than TypeBox's anyOf, so that a bad entry is reported against the
  // one schema its `op` names instead of against every schema of the union.
  return Type.Unsafe<Static<T[number]>>({
    title,
    type: 'object',
    oneOf: schemas,
    discriminator: { propertyName: 'op' }
  })
}

/**
 * Well-formed Unicode only. JSON can carry a lone surrogate ("\ud800"), which has no UTF-8 form:
 * msgpackr would store it as invalid UTF-8 (or U+FFFD), and the log would give back U+FFFD, another
 * string than the one it took.
 */
const WELL_FORMED = '^\\P{Cs}*$'

/**
 * Any key at all, line breaks included. TypeBox keys a Record by `^(.*)$`, whose `.` stops at a line
 * break: a metadata key holding one escaped the value rules (a number got through to the writer, a
 * string past the length limit into the log).
 */
const ANY_KEY = '^[\\s\\S]*$'

/** Builds the entry schemas; `dimensions` narrows the vector length, nothing else changes. */
export function entrySchemas (options: EntrySchemaOptions = {}) {
  const dims = options.dimensions
  const Id = Type.String({ minLength: 1, maxLength: ENTRY_LIMITS.idMaxLength, pattern: WELL_FORMED, description: 'the vector\'s id' })
  const Vector = Type.Array(
    // Finite and within float32 range: JSON's 1e400 parses to Infinity, and anything from
    // FLOAT32_ROUNDING_LIMIT on would turn into Infinity when stored as a 32-bit float.
    Type.Number({ exclusiveMinimum: -FLOAT32_ROUNDING_LIMIT, exclusiveMaximum: FLOAT32_ROUNDING_LIMIT }),
    {
      minItems: dims ?? 1,
      maxItems: dims ?? ENTRY_LIMITS.vectorMaxLength,
      description: 'the vector\'s values, stored as 32-bit floats; in application/msgpack bodies also a Float32Array (msgpackr\'s typed-array extension) or, with Content-Type: application/msgpack; bin=float32le, a bin of little-endian float32 values'
    }
  )
  const Metadata = Type.Record(
    Type.String({ pattern: ANY_KEY }),
    Type.String({ maxLength: ENTRY_LIMITS.metadataValueMaxLength, pattern: WELL_FORMED }),
    {
      maxProperties: ENTRY_LIMITS.metadataMaxKeys,
      propertyNames: { minLength: 1, maxLength: ENTRY_LIMITS.metadataKeyMaxLength, pattern: WELL_FORMED },
      description: 'string values by string key'
    }
  )
  const strict = { additionalProperties: false }
  const InsertEntry = Type.Object(
    { op: Type.Literal('insert'), id: Id, vector: Vector, metadata: Type.Optional(Metadata) },
    { ...strict, title: 'InsertEntry' }
  )
  const UpdateEntry = Type.Object(
    { op: Type.Literal('update'), id: Id, vector: Vector, metadata: Type.Optional(Metadata) },
    { ...strict, title: 'UpdateEntry' }
  )
  const DeleteEntry = Type.Object(
    { op: Type.Literal('delete'), id: Id },
    { ...strict, title: 'DeleteEntry' }
  )
  const Entry = oneOfByOp([InsertEntry, UpdateEntry, DeleteEntry], 'Entry')
  const EntryList = Type.Array(Entry, { minItems: 1, maxItems: ENTRY_LIMITS.batchMaxEntries })
  return { InsertEntry, UpdateEntry, DeleteEntry, Entry, EntryList, RecoveryRecord: recoveryRecord(InsertEntry, UpdateEntry, DeleteEntry, Entry) }
}

/**
 * A record as a read gives it (an NDJSON line, an SSE event's data, a msgpack map whose vectors are
 * float32 typed arrays): its seq, the entry or the batch written, in the order they were stored,
 * and its timestamp. Reads leave the log's own checkpoint and consumer records out. A committed
 * transaction is a batch naming its txId; its entries are bounded by the transaction's bytes, not
 * by a batch body's count.
 */
function recoveryRecord (...[InsertEntry, UpdateEntry, DeleteEntry, Entry]: [TObject, TObject, TObject, TSchema]) {
  const seq = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'the record\'s seq' })
  const timestamp = Type.Integer({ minimum: 0, description: 'when the log wrote the record, in ms since the epoch; never less than the record before\'s (segment backend)' })
  const sequenced = (entry: TObject, title: string): TObject => Type.Object({ seq, ...entry.properties, timestamp }, { additionalProperties: false, title })
  const Batch = Type.Object({
    seq,
    op: Type.Literal('batch'),
    entries: Type.Array(Entry, { minItems: 1 }),
    txId: Type.Optional(Type.String({ description: 'the transaction committed as this batch' })),
    timestamp
  }, { additionalProperties: false, title: 'BatchRecord' })
  return oneOfByOp([sequenced(InsertEntry, 'InsertRecord'), sequenced(UpdateEntry, 'UpdateRecord'), sequenced(DeleteEntry, 'DeleteRecord'), Batch], 'RecoveryRecord')
}

const defaultSchemas = entrySchemas()

/** An entry as a client sends it (vectors as JSON numbers). */
export type Entry = Static<typeof defaultSchemas.Entry>
export type EntryOp = Entry['op']

type WithVector<E, V> = E extends { vector: unknown } ? Omit<E, 'vector'> & { vector: V } : E

/** What the engine accepts: vectors as numbers or as float32 values already. */
export type EntryInput = WithVector<Entry, readonly number[] | Float32Array>

/** What the engine hands back: vectors always as the 32-bit floats on disk. */
export type StoredEntry = WithVector<Entry, Float32Array>

/** How many of the entries each op has, ops without any left out: what a batch reports as appended. */
export function opCounts (entries: readonly EntryInput[]): Map<EntryOp, number> {
  const counts = new Map<EntryOp, number>()
  for (const entry of entries) counts.set(entry.op, (counts.get(entry.op) ?? 0) + 1)
  return counts
}
