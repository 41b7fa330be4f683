// application/msgpack request bodies, decoded in one walk over their bytes: every string checked
// as UTF-8 (msgpackr decodes bytes that are not as U+FFFD, as Latin-1 characters, or an overlong
// form as the character it spells: another string than the one sent), a `__proto__` key refused
// (an object would take it as its prototype), and float32 vectors handed over as views of the body
// where they lie aligned, not copied into a new buffer each: a 100-entry batch used to cost 100
// ArrayBuffers, and the garbage collector a fifth of the busy time.
//
// It takes what msgpack libraries write: msgpack's own types (64-bit integers as numbers, as
// JSON.parse reads a long integer; bins as views), msgpackr's typed-array extension, and msgpackr's
// records (the default of its `new Packr()`: a `d4 72 ID` ext defines a key list for ID, and a
// later byte ID is a map with those keys). It refuses, naming the place, what no entry field takes
// and what it could not check: other extensions, nesting deeper than any body the schemas accept.
// A body is walked without keeping its path; a refused one is walked again, naming the place.
import { FLOAT32_ARRAY_CODE, MsgpackKind, MsgpackMismatch, MsgpackReader, TYPED_ARRAY_EXTENSION } from '../msgpack/reader.js'
import { isUtf8At } from '../msgpack/utf8.js'
import { ENTRY_LIMITS } from '../entry.js'
import { InvalidRequestError, MalformedBodyError } from './errors.js'

/** Deeper than any body the schemas accept. */
const MAX_DEPTH = 16
// A body is decoded whole before the schemas see it, and a JS object costs tens of bytes where its
// msgpack costs one: 16 MiB of empty maps took a gigabyte. So the decoder holds bodies to what a
// valid one can have: the body's map and its list of entries, and per entry its map, its vector
// and its metadata map; no array longer than the longest list a schema takes.
const MAX_CONTAINERS = 2 + 3 * ENTRY_LIMITS.batchMaxEntries
const MAX_ARRAY_LENGTH = Math.max(ENTRY_LIMITS.batchMaxEntries, ENTRY_LIMITS.vectorMaxLength)
/** msgpackr's extension type for `undefined` (notepack's): `d4 00 00` for `{ metadata: undefined }`. */
const UNDEFINED_EXTENSION = 0

/** The heads of float 64 and float 32, and msgpack's fixext 1, which msgpackr's record definitions use. */
const FLOAT64 = 0xcb
const FLOAT32 = 0xca
const FIXEXT1 = 0xd4
/** msgpackr's record-definition extension type. */
const RECORD_DEFINITION = 0x72
/** Bytes that name a record once one is defined under them (else they are fixints). */
const RECORD_FIRST = 0x40
const RECORD_LAST = 0x7f

const PROTO = '__proto__'

/** A key as a JSON Pointer token, as the schemas name paths (`a/b` is `a~1b`). */
function pointerToken (key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1')
}

/**
 * The little-endian float32 values in `bytes` (a multiple of 4 long): a view of them where they lie
 * aligned, else a copy. Float32Arrays are little-endian on the hosts vecwal is built for
 * (docs/format.md). A view keeps the body alive only while the request holds it; what outlives the
 * request (a staged transaction's entry) copies its vector.
 */
export function float32Values (bytes: Uint8Array): Float32Array {
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4)
  const values = new Float32Array(bytes.length / 4)
  new Uint8Array(values.buffer).set(bytes)
  return values
}

/** A body that is msgpack but not one vecwal takes, and why (the place named when known). */
class Refusal {
  constructor (readonly reason: string) {}
}

class Decoder {
  private readonly reader = new MsgpackReader()
  /** The keys and indexes down to the item being read, kept when `naming`. */
  private readonly path: string[] = []
  /** The key list of each record defined so far, by id & 0x3f, as msgpackr's decoder keeps them. */
  private readonly records: Array<string[] | undefined> = []
  /** Maps (records among them) and arrays decoded so far. */
  private containers = 0

  private readonly view: DataView

  /** @param naming keep the path, to name the place of a refusal */
  constructor (bytes: Buffer, private readonly naming: boolean) {
    this.reader.reset(bytes, 0, bytes.length)
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
  }

  body (): unknown {
    const value = this.item(0)
    if (this.reader.pos !== this.reader.end) throw new MsgpackMismatch(false)
    return value
  }

  private refuse (what: string): never {
    throw new Refusal(`body${this.path.map(part => `/${part}`).join('')} ${what}`)
  }

  private item (depth: number): unknown {
    if (depth > MAX_DEPTH) this.refuse('is nested deeper than any valid body')
    const reader = this.reader
    const src = reader.src
    const token = src[reader.pos]
    // The values of number-array vectors, nearly every item of such a body.
    if (token === FLOAT64) return this.view.getFloat64(reader.take(9) + 1)
    if (token === FLOAT32) return this.view.getFloat32(reader.take(5) + 1)
    if (token >= RECORD_FIRST && token <= RECORD_LAST) {
      const keys = this.records[token & 0x3f]
      if (keys !== undefined) {
        reader.pos++
        return this.recordValues(keys, depth)
      }
    } else if (token === FIXEXT1 && src[reader.pos + 1] === RECORD_DEFINITION) {
      return this.recordDefinition(depth)
    }
    const at = reader.pos
    switch (reader.head()) {
      case MsgpackKind.int: return this.integer(at)
      case MsgpackKind.nil: return null
      case MsgpackKind.bool: return src[at] === 0xc3
      case MsgpackKind.str: return this.string(reader.take(reader.length))
      case MsgpackKind.bin: return src.subarray(reader.take(reader.length), reader.pos)
      case MsgpackKind.map: return this.map(reader.length, depth)
      case MsgpackKind.array: return this.array(reader.length, depth)
      case MsgpackKind.ext: return this.extension()
    }
    // Floats were read before head(), which names every other kind above.
    throw new MsgpackMismatch(false)
  }

  /** The integer whose head is at `at` (head() has read it and set its length), as a number. */
  private integer (at: number): number {
    const src = this.reader.src
    const head = src[at]
    const start = this.reader.take(this.reader.length)
    if (head <= 0x7f) return head
    if (head >= 0xe0) return head - 0x100
    switch (head) {
      case 0xcc: return src[start]
      case 0xcd: return src.readUInt16BE(start)
      case 0xce: return src.readUInt32BE(start)
      case 0xcf: return Number(src.readBigUInt64BE(start))
      case 0xd0: return src.readInt8(start)
      case 0xd1: return src.readInt16BE(start)
      case 0xd2: return src.readInt32BE(start)
      default: return Number(src.readBigInt64BE(start))
    }
  }

  private string (start: number): string {
    const { src, pos } = this.reader
    if (!isUtf8At(src, start, pos)) this.refuse('must be a valid UTF-8 string')
    return src.toString('utf8', start, pos)
  }

  /** A map key: a string, or a number (msgpackr makes it one), never `__proto__`. */
  private key (depth: number): string {
    const key = this.item(depth)
    if (typeof key === 'number') return String(key)
    if (typeof key !== 'string') this.refuse('has a map key that is not a string')
    if (key === PROTO) this.refuse('holds a forbidden __proto__ key')
    return key
  }

  /** Counts one more map or array, refusing a body with more than any valid one holds. */
  private contain (): void {
    if (++this.containers > MAX_CONTAINERS) this.refuse(`holds more than ${MAX_CONTAINERS} maps and arrays, more than any valid body`)
  }

  private map (count: number, depth: number): Record<string, unknown> {
    this.contain()
    const object: Record<string, unknown> = {}
    for (let i = 0; i < count; i++) {
      const key = this.key(depth + 1)
      if (this.naming) this.path.push(pointerToken(key))
      object[key] = this.item(depth + 1)
      if (this.naming) this.path.pop()
    }
    return object
  }

  private array (count: number, depth: number): unknown[] {
    this.contain()
    if (count > MAX_ARRAY_LENGTH) this.refuse(`has ${count} items, more than any list a valid body holds (${MAX_ARRAY_LENGTH})`)
    // The sender chose the count: each item takes a byte at least, so one past the bytes left lies.
    if (count > this.reader.end - this.reader.pos) throw new MsgpackMismatch(true)
    const array = new Array<unknown>(count)
    for (let i = 0; i < count; i++) {
      if (this.naming) this.path.push(String(i))
      array[i] = this.item(depth + 1)
      if (this.naming) this.path.pop()
    }
    return array
  }

  /**
   * msgpackr's typed-array extension holding a Float32Array (a view where the values lie aligned,
   * else a copy), or its `undefined` (extension type 0), which a JS client writes for an unset field.
   */
  private extension (): Float32Array | undefined {
    const reader = this.reader
    const start = reader.take(reader.length)
    if (reader.extType === UNDEFINED_EXTENSION) return undefined
    if (reader.extType === RECORD_DEFINITION) this.refuse('holds a msgpackr record with a two-byte id (maxOwnStructures past 64), which vecwal does not read: pack with msgpackr\'s default maxOwnStructures, or useRecords: false')
    if (reader.extType !== TYPED_ARRAY_EXTENSION) this.refuse(`holds msgpack extension type ${reader.extType}, which no entry field takes`)
    if (reader.length === 0 || reader.src[start] !== FLOAT32_ARRAY_CODE) this.refuse('holds a typed array other than a Float32Array, which no entry field takes')
    const bytes = reader.length - 1
    if (bytes % 4 !== 0) this.refuse('holds a Float32Array whose bytes are not a multiple of 4')
    return float32Values(reader.src.subarray(start + 1, reader.pos))
  }

  /** `d4 72 ID`, then the key list (an array), then the first record's values, as msgpackr reads it. */
  private recordDefinition (depth: number): Record<string, unknown> {
    const reader = this.reader
    reader.take(2)
    const id = reader.byte() & 0x3f
    const keysAt = reader.pos
    let count: number
    try {
      count = reader.array()
    } catch (err) {
      if (!(err instanceof MsgpackMismatch) || err.truncated) throw err
      reader.pos = keysAt
      this.refuse('holds a msgpackr record whose keys are not an array')
    }
    const keys: string[] = []
    // A bad key is reported as the record's, as a map's is.
    for (let i = 0; i < count; i++) keys.push(this.key(depth + 1))
    this.records[id] = keys
    return this.recordValues(keys, depth)
  }

  private recordValues (keys: string[], depth: number): Record<string, unknown> {
    this.contain()
    const object: Record<string, unknown> = {}
    for (const key of keys) {
      if (this.naming) this.path.push(pointerToken(key))
      object[key] = this.item(depth + 1)
      if (this.naming) this.path.pop()
    }
    return object
  }
}

function decode (bytes: Buffer, naming: boolean): unknown {
  try {
    return new Decoder(bytes, naming).body()
  } catch (err) {
    if (err instanceof MsgpackMismatch) {
      throw new MalformedBodyError('msgpack', err.truncated ? 'it ends inside an item' : 'it holds a byte that is not msgpack where an item should begin, or bytes after its one value')
    }
    throw err
  }
}

/**
 * The body's value. Throws MalformedBodyError for bytes that are not one msgpack value, and
 * InvalidRequestError naming the place of what vecwal does not take (a string that is not UTF-8, a
 * `__proto__` key, an extension no entry field takes).
 */
export function decodeMsgpackBody (bytes: Buffer): unknown {
  try {
    return decode(bytes, false)
  } catch (err) {
    if (!(err instanceof Refusal)) throw err
  }
  try {
    decode(bytes, true)
  } catch (err) {
    if (err instanceof Refusal) throw new InvalidRequestError(err.reason)
    throw err
  }
  throw new Error('a msgpack body was refused once and taken the second time')
}
