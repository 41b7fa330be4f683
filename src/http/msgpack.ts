// application/msgpack request bodies: the same entries as JSON, held to the same rules. A vector
// may come as an array of numbers, as a Float32Array (msgpackr's typed-array extension), or, when
// the client says so (`; bin=float32le`), as a bin of little-endian float32 values (what
// @msgpack/msgpack sends for a Float32Array, and what Python's numpy `tobytes()` gives): the fast
// paths for clients that hold float32 vectors anyway, so they must not turn into JS arrays.
//
// The schemas see JSON's shape, where a vector is an array. So a float32 vector is checked here
// against the vector rules (length, finite values; float32 range it has by nature), and stands
// aside while the schema checks everything else: in its place is an array of the right length,
// and once validation passed the Float32Array goes back where it was.
//
// A route whose config says `packedBatchBody` (POST /v1/batch) first has its body walked by
// src/payload/batch-body-packer.ts, which checks the same rules and writes the stored bytes in one
// pass, building no object. The handler then gets `{ entries: PackedEntries }`, which the body's
// validator lets through as checked; any body that walk does not take goes the way above.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ENTRY_LIMITS } from '../entry.js'
import { packBatchBody } from '../payload/batch-body-packer.js'
import type { PackedEntries } from '../payload/packed-entries.js'
import { InvalidRequestError } from './errors.js'
import { decodeMsgpackBody, float32Values } from './msgpack-body.js'

export const MSGPACK = 'application/msgpack'

interface SetAside { entry: Record<string, unknown>, vector: Float32Array }

/** A batch body whose entries were checked and written into their stored bytes as it was parsed. */
export class PackedBatchBody {
  constructor (readonly entries: PackedEntries) {}
}

const setAside = new WeakMap<FastifyRequest, SetAside[]>()

/**
 * The Content-Type parameter by which a client says its bin vectors hold little-endian float32
 * values. Without it a bin is refused: msgpackr without `moreTypes` writes a Float32Array as a bin
 * of other bytes (each value cut to a byte, then whatever memory followed), which taken as float32
 * would store garbage and answer 201.
 */
const BIN_FLOAT32 = /;\s*bin\s*=\s*"?float32le"?\s*(;|$)/i

/** A vector sent as float32 values, or undefined for any other value (the schema judges those). */
function asFloat32 (vector: unknown, path: string, binIsFloat32: boolean): Float32Array | undefined {
  if (vector instanceof Float32Array) return vector
  if (!(vector instanceof Uint8Array)) return undefined
  if (!binIsFloat32) {
    throw new InvalidRequestError(`body${path}/vector is a bin: send Content-Type: application/msgpack; bin=float32le if it holds little-endian float32 values; from msgpackr, pack with new Packr({ moreTypes: true }) (without it msgpackr writes a Float32Array as a bin of other bytes)`)
  }
  if (vector.length % 4 !== 0) throw new InvalidRequestError(`body${path}/vector as bin must hold little-endian float32 values: a multiple of 4 bytes, not ${vector.length}`)
  return float32Values(vector)
}

function isEntryLike (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function registerMsgpackParser (app: FastifyInstance, dimensions: number | undefined): void {
  const minLength = dimensions ?? 1
  const maxLength = dimensions ?? ENTRY_LIMITS.vectorMaxLength
  const standIn: number[] = Object.freeze(new Array<number>(minLength).fill(0)) as number[]

  function checkVector (vector: Float32Array, path: string): void {
    if (vector.length < minLength) throw new InvalidRequestError(`body${path}/vector must NOT have fewer than ${minLength} items`)
    if (vector.length > maxLength) throw new InvalidRequestError(`body${path}/vector must NOT have more than ${maxLength} items`)
    for (let i = 0; i < vector.length; i++) {
      if (!Number.isFinite(vector[i])) throw new InvalidRequestError(`body${path}/vector/${i} must be a finite number`)
    }
  }

  function standAside (entry: unknown, path: string, aside: SetAside[], binIsFloat32: boolean): void {
    if (!isEntryLike(entry)) return
    const vector = asFloat32(entry.vector, path, binIsFloat32)
    if (vector === undefined) return
    checkVector(vector, path)
    aside.push({ entry, vector })
    entry.vector = standIn
  }

  app.addContentTypeParser(MSGPACK, { parseAs: 'buffer' }, (request, body, done) => {
    const binIsFloat32 = BIN_FLOAT32.test(request.headers['content-type'] ?? '')
    if (request.routeOptions.config.packedBatchBody === true) {
      const packed = packBatchBody(body as Buffer, { minVectorLength: minLength, maxVectorLength: maxLength, binIsFloat32 })
      if (packed !== undefined) {
        done(null, new PackedBatchBody(packed))
        return
      }
    }
    let decoded: unknown
    try {
      decoded = decodeMsgpackBody(body as Buffer)
    } catch (err) {
      done(err as Error, undefined)
      return
    }
    const aside: SetAside[] = []
    try {
      standAside(decoded, '', aside, binIsFloat32)
      if (isEntryLike(decoded) && Array.isArray(decoded.entries)) {
        decoded.entries.forEach((entry: unknown, i: number) => { standAside(entry, `/entries/${i}`, aside, binIsFloat32) })
      }
    } catch (err) {
      done(err as Error, undefined)
      return
    }
    if (aside.length > 0) setAside.set(request, aside)
    done(null, decoded)
  })

  app.addHook('preHandler', async (request) => {
    const aside = setAside.get(request)
    if (aside === undefined) return
    for (const { entry, vector } of aside) entry.vector = vector
  })
}
