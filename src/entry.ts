// The one definition of a log entry. The TypeBox schemas below give the HTTP layer its validation
// and OpenAPI document, and give the engine its TypeScript types: both read this file, neither
// redefines an entry.
import { Type, type Static, type TSchema } from '@sinclair/typebox'

/** The largest finite 32-bit float: a vector value past it would be stored as Infinity. */
export const FLOAT32_MAX = 3.4028234663852886e38

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
    // Finite and within float32 range: JSON's 1e400 parses to Infinity, and anything past
    // FLOAT32_MAX would turn into Infinity when stored as a 32-bit float.
    Type.Number({ minimum: -FLOAT32_MAX, maximum: FLOAT32_MAX }),
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
  return { InsertEntry, UpdateEntry, DeleteEntry, Entry, EntryList }
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
