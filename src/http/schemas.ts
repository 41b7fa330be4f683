// Request and response schemas of every route, built on the entry schemas of src/entry.ts. They
// validate requests, serialize responses and make the OpenAPI document.
import { Type, type Static } from '@sinclair/typebox'
import { entrySchemas, type EntrySchemaOptions } from '../entry.js'
import { ConsumerNameSchema, ConsumerStatusSchema, LogStatusSchema } from '../log.js'

const SAFE_SEQ = { minimum: 0, maximum: Number.MAX_SAFE_INTEGER }
const strict = { additionalProperties: false }

/** The longest a long poll waits, in seconds. */
export const MAX_WAIT_SECONDS = 60

export const Seq = Type.Integer({ ...SAFE_SEQ, description: 'a sequence number; 0 means none' })

/** A moment, as RFC 3339 or as ms since the epoch: the engine takes ms (sinceMs). */
const Since = Type.String({
  pattern: '^(\\d{1,16}|\\d{4}-\\d{2}-\\d{2}[Tt ]\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?([Zz]|[+-]\\d{2}:\\d{2}))$',
  description: 'only the records stamped at or after this moment: RFC 3339 (`2026-05-01T12:00:00Z`) or ms since the epoch; ' +
    'found from a sparse index (timestamps never decrease), not by reading the log from its start'
})

/** A `since` the schema let through, in ms since the epoch; undefined if it names no real moment (a 13th month). */
export function sinceMs (since: string): number | undefined {
  const ms = /^\d+$/.test(since) ? Number(since) : Date.parse(since)
  return Number.isSafeInteger(ms) && ms >= 0 ? ms : undefined
}

export const ErrorResponse = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String({ description: 'stable, one per cause' }),
  error: Type.String(),
  message: Type.String({ description: 'what is wrong, naming the field' }),
  lastSeq: Type.Optional(Type.Integer({ description: 'WAL_SEQ_MISMATCH only: the seq of the log\'s last entry record when the condition was checked (also in the Vecwal-Last-Seq header)' }))
}, { title: 'Error' })

/**
 * The request headers of a write: an idempotency key and an expected last seq (README, "Safe
 * retries"). Header names arrive lower-cased; other headers pass.
 */
export const WriteHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({
    minLength: 1,
    maxLength: 255,
    pattern: '^[\\x20-\\x7e]+$',
    description: '1 to 255 printable ASCII characters. A repeat with the same key and the same content is answered as the first write was (Idempotent-Replayed: true) and writes nothing; with other content, 422 WAL_IDEMPOTENCY_KEY_REUSED. Remembered for VECWAL_IDEMPOTENCY_WINDOW while the record is retained'
  })),
  'vecwal-expected-last-seq': Type.Optional(Type.Integer({
    ...SAFE_SEQ,
    description: 'write only if the seq of the log\'s last entry record (checkpoint and consumer records aside) is exactly this when the record\'s seq is assigned; otherwise 412 WAL_SEQ_MISMATCH with that seq'
  }))
})

export const StatusResponse = LogStatusSchema

export function apiSchemas (options: EntrySchemaOptions = {}) {
  const { Entry, EntryList, RecoveryRecord } = entrySchemas(options)
  const BatchBody = Type.Object({ entries: EntryList }, { ...strict, title: 'Batch' })
  // Staging takes one entry or {entries}; if/then/else rather than a union, so that a bad body is
  // reported against the one shape it tried to be.
  const StageBody = Type.Unsafe<Static<typeof Entry> | Static<typeof BatchBody>>({
    title: 'StagedEntries',
    if: { type: 'object', required: ['entries'] },
    then: BatchBody,
    else: Entry
  })
  return {
    Entry,
    RecoveryRecord,
    BatchBody,
    StageBody,
    CheckpointBody: Type.Object({ seq: Type.Optional(Seq) }, { ...strict, title: 'Checkpoint' }),
    TxParams: Type.Object({ txId: Type.String({ minLength: 1, maxLength: 64 }) }),
    RecoveryQuery: Type.Object({
      after: Type.Optional(Type.Integer({ ...SAFE_SEQ, description: 'stream the records after this seq; default: the last checkpoint' })),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'at most this many records' })),
      follow: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], {
        description: 'true: after the records there are, keep the stream open and send each new record once it is durable'
      })),
      wait: Type.Optional(Type.Integer({
        minimum: 0,
        maximum: MAX_WAIT_SECONDS,
        description: 'long poll: wait up to this many seconds for a first record after `after`, then answer (not with follow=true)'
      })),
      consumer: Type.Optional({ ...ConsumerNameSchema, description: 'start after this consumer\'s checkpoint (unless `after` is given); 404 if there is none' }),
      since: Type.Optional(Since)
    }, strict)
  }
}

export type ApiSchemas = ReturnType<typeof apiSchemas>

export const AppendedResponse = Type.Object({ seq: Type.Integer() })
export const BatchAppendedResponse = Type.Object({ seq: Type.Integer(), count: Type.Integer() })
export const TxOpenedResponse = Type.Object({ txId: Type.String() })
export const TxStagedResponse = Type.Object({ txId: Type.String(), staged: Type.Integer() })
export const TxAbortedResponse = Type.Object({ txId: Type.String(), aborted: Type.Boolean() })
export const ConsumerParams = Type.Object({ name: ConsumerNameSchema })
export const ConsumerBody = Type.Object({
  after: Type.Optional(Type.Integer({ ...SAFE_SEQ, description: 'its starting checkpoint: it reads the records after this seq; default: just before the oldest retained record' }))
}, { ...strict, title: 'ConsumerCreate' })
export const ConsumerResponse = ConsumerStatusSchema
export const ConsumerListResponse = Type.Object({ consumers: Type.Array(ConsumerStatusSchema) })

export const CheckpointResponse = Type.Object({
  checkpoint: Type.Integer(),
  seq: Type.Integer({ description: 'the seq of the checkpoint record itself' }),
  deletedSegments: Type.Integer()
})
export const HealthResponse = Type.Object({ status: Type.String() })
