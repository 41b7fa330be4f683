// msgpack strings must be valid UTF-8, as JSON bodies must: msgpackr decodes bytes that are not
// (as U+FFFD, or as Latin-1 characters, or an overlong form as the character it spells), which
// would store another string than the one sent. This walks a decoded body's bytes once more,
// without decoding them, and names the first string whose bytes are not UTF-8.
//
// The walk must cover every byte msgpackr read, or a string it skipped would go unchecked. So it
// follows msgpackr's records too (the default of msgpackr's `new Packr()`: a `d4 72 ID` ext defines
// a key list for ID, and a later byte ID is a map with those keys), and refuses what it cannot
// follow: other extensions than the typed arrays vectors travel in, nesting deeper than any body
// the schemas accept, bytes left over. It also refuses a `__proto__` key, which msgpackr renames
// to `__proto_` as it builds objects: that would store an entry other than the one sent.
//
// Every msgpack body goes through this walk, so it names nothing on its way: a body it refuses is
// walked again, keeping the path, to name the place.
import { isUtf8 } from 'node:buffer'
import { MsgpackKind, MsgpackMismatch, MsgpackReader, TYPED_ARRAY_EXTENSION } from '../msgpack/reader.js'

/** Deeper than any body the schemas accept. */
const MAX_DEPTH = 16

/** msgpack's fixext 1 head, and msgpackr's record-definition extension type. */
const FIXEXT1 = 0xd4
const RECORD_DEFINITION = 0x72
/** The heads of float 64 and float 32. */
const FLOAT64 = 0xcb
const FLOAT32 = 0xca
/** Bytes that name a record once one is defined under them (else they are fixints). */
const RECORD_FIRST = 0x40
const RECORD_LAST = 0x7f

const PROTO = Buffer.from('__proto__')

/** Whether the item at src[start, end) is the string `__proto__` (as a fixstr: it is 9 bytes). */
function isProtoKey (src: Buffer, start: number, end: number): boolean {
  return end - start === PROTO.length + 1 && src[start] === (0xa0 | PROTO.length) && PROTO.compare(src, start + 1, end) === 0
}

/** Whether src[start, end) is UTF-8: a loop for ASCII, which nearly every string is, else isUtf8. */
function isUtf8At (src: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if (src[i] >= 0x80) return isUtf8(src.subarray(start, end))
  }
  return true
}

/** A key as a JSON Pointer token, as the schemas name paths (`a/b` is `a~1b`). */
function pointerToken (key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1')
}

class Refusal {
  constructor (readonly reason: string) {}
}

class Walk {
  private readonly reader = new MsgpackReader()
  /** The keys and indexes down to the item being walked, kept when `naming`. */
  private readonly path: string[] = []
  /** The key list of each record defined so far, by id & 0x3f, as msgpackr's decoder keeps them (names when `naming`). */
  private readonly records: Array<string[] | undefined> = []

  /** @param naming keep the path and key names, to name the place of a refusal */
  constructor (bytes: Buffer, private readonly naming: boolean) {
    this.reader.reset(bytes, 0, bytes.length)
  }

  body (): void {
    this.item(0)
    if (this.reader.pos !== this.reader.end) this.refuse('holds bytes past its one msgpack value')
  }

  private refuse (what: string): never {
    throw new Refusal(`body${this.path.map(part => `/${part}`).join('')} ${what}`)
  }

  /**
   * Walks the item at the reader; answers, when naming, the string it was, if it was one (map keys
   * name the path); else '' for a string.
   */
  private item (depth: number): string | undefined {
    if (depth > MAX_DEPTH) this.refuse('is nested deeper than any valid body')
    const reader = this.reader
    const token = reader.src[reader.pos]
    // The values of number-array vectors, nearly every item of such a body: passed at once.
    if (token === FLOAT64 || token === FLOAT32) {
      reader.take(token === FLOAT64 ? 9 : 5)
      return undefined
    }
    if (token >= RECORD_FIRST && token <= RECORD_LAST) {
      const keys = this.records[token & 0x3f]
      if (keys !== undefined) {
        reader.pos++
        this.recordValues(keys, depth)
        return undefined
      }
    } else if (token === FIXEXT1 && reader.src[reader.pos + 1] === RECORD_DEFINITION) {
      this.recordDefinition(depth)
      return undefined
    }
    const kind = reader.head()
    switch (kind) {
      case MsgpackKind.str: {
        const start = reader.take(reader.length)
        if (!isUtf8At(reader.src, start, reader.pos)) this.refuse('must be a valid UTF-8 string')
        return this.naming ? reader.src.toString('utf8', start, reader.pos) : ''
      }
      case MsgpackKind.map:
        this.map(reader.length, depth)
        return undefined
      case MsgpackKind.array:
        this.array(reader.length, depth)
        return undefined
      case MsgpackKind.ext:
        if (reader.extType !== TYPED_ARRAY_EXTENSION) this.refuse(`holds msgpack extension type ${reader.extType}, which no entry field takes`)
        reader.take(reader.length)
        return undefined
      default:
        reader.take(reader.length)
        return undefined
    }
  }

  private map (count: number, depth: number): void {
    const reader = this.reader
    for (let i = 0; i < count; i++) {
      // A key that is not UTF-8 is reported as the map's, as the schemas report a bad key.
      const keyStart = reader.pos
      const name = this.item(depth + 1)
      if (isProtoKey(reader.src, keyStart, reader.pos)) this.refuse('holds a forbidden __proto__ key')
      if (this.naming) this.path.push(name === undefined ? '?' : pointerToken(name))
      this.item(depth + 1)
      if (this.naming) this.path.pop()
    }
  }

  private array (count: number, depth: number): void {
    for (let i = 0; i < count; i++) {
      if (this.naming) this.path.push(String(i))
      this.item(depth + 1)
      if (this.naming) this.path.pop()
    }
  }

  /** `d4 72 ID`, then the key list (an array), then the first record's values, as msgpackr reads it. */
  private recordDefinition (depth: number): void {
    const reader = this.reader
    reader.take(2)
    const id = reader.byte() & 0x3f
    const keyStart = reader.pos
    let count: number
    try {
      count = reader.array()
    } catch (err) {
      if (!(err instanceof MsgpackMismatch)) throw err
      reader.pos = keyStart
      this.refuse('holds a msgpackr record whose keys are not an array')
    }
    const keys: string[] = []
    for (let i = 0; i < count; i++) {
      if (this.naming) this.path.push(`(record key ${i})`)
      const keyStart = reader.pos
      const name = this.item(depth + 1) ?? '?'
      if (this.naming) this.path.pop()
      if (isProtoKey(reader.src, keyStart, reader.pos)) this.refuse('holds a forbidden __proto__ key')
      keys.push(name)
    }
    this.records[id] = keys
    this.recordValues(keys, depth)
  }

  private recordValues (keys: string[], depth: number): void {
    for (const key of keys) {
      if (this.naming) this.path.push(pointerToken(key))
      this.item(depth + 1)
      if (this.naming) this.path.pop()
    }
  }
}

/**
 * Why the body's strings cannot be taken as sent (`body/entries/0/id must be a valid UTF-8 string`),
 * or undefined when every string is valid UTF-8. Call it on a body msgpackr has decoded.
 */
export function msgpackStringsRefusal (bytes: Buffer): string | undefined {
  if (walkRefusal(bytes, false) === undefined) return undefined
  return walkRefusal(bytes, true)
}

function walkRefusal (bytes: Buffer, naming: boolean): string | undefined {
  try {
    new Walk(bytes, naming).body()
    return undefined
  } catch (err) {
    if (err instanceof Refusal) return err.reason
    // msgpackr read these bytes, so a walk that runs out of them lost its way: refuse, never pass.
    if (err instanceof MsgpackMismatch) return 'body is msgpack that vecwal cannot check'
    throw err
  }
}
