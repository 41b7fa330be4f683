// application/msgpack request bodies: the same entries as JSON, held to the same rules. A vector
// may come as an array of numbers or as a Float32Array (msgpackr's typed-array extension): the
// fast path for clients that hold float32 vectors anyway, so it must not turn into a JS array.
//
// The schemas see JSON's shape, where a vector is an array. So a Float32Array vector is checked
// here against the vector rules (length, finite values; float32 range it has by nature), and
// stands aside while the schema checks everything else: in its place is an array of the right
// length, and once validation passed the Float32Array goes back where it was.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Unpackr } from 'msgpackr'
import { ENTRY_LIMITS } from '../entry.js'
import { InvalidRequestError, MalformedBodyError } from './errors.js'
import { invalidUtf8Path } from './msgpack-utf8.js'

export const MSGPACK = 'application/msgpack'

const unpackr = new Unpackr({ mapsAsObjects: true })

// msgpackr renames a `__proto__` key to `__proto_` as it builds objects (maps and its records
// alike), which would store an entry other than the one sent. A body whose bytes hold the name and
// whose decoded objects hold a `__proto_` key is refused, as a `__proto__` key is in JSON.
const PROTO = Buffer.from('__proto__')

function holdsRenamedProtoKey (value: unknown): boolean {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return false
  if (Array.isArray(value)) return value.some(holdsRenamedProtoKey)
  return Object.hasOwn(value, '__proto_') || Object.values(value).some(holdsRenamedProtoKey)
}

interface SetAside { entry: Record<string, unknown>, vector: Float32Array }

const setAside = new WeakMap<FastifyRequest, SetAside[]>()

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

  function standAside (entry: unknown, path: string, aside: SetAside[]): void {
    if (isEntryLike(entry) && entry.vector instanceof Float32Array) {
      checkVector(entry.vector, path)
      aside.push({ entry, vector: entry.vector })
      entry.vector = standIn
    }
  }

  app.addContentTypeParser(MSGPACK, { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer
    let decoded: unknown
    try {
      decoded = unpackr.unpack(bytes)
      const notUtf8 = invalidUtf8Path(bytes)
      if (notUtf8 !== undefined) {
        done(new InvalidRequestError(`body${notUtf8} must be a valid UTF-8 string`), undefined)
        return
      }
      if (bytes.includes(PROTO) && holdsRenamedProtoKey(decoded)) {
        done(new InvalidRequestError('body holds a forbidden __proto__ key'), undefined)
        return
      }
    } catch (err) {
      done(new MalformedBodyError('msgpack', (err as Error).message), undefined)
      return
    }
    const aside: SetAside[] = []
    try {
      standAside(decoded, '', aside)
      if (isEntryLike(decoded) && Array.isArray(decoded.entries)) {
        decoded.entries.forEach((entry: unknown, i: number) => { standAside(entry, `/entries/${i}`, aside) })
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
