// msgpack strings must be valid UTF-8, as JSON bodies must: msgpackr decodes bytes that are not
// (as U+FFFD, or as Latin-1 characters, or an overlong form as the character it spells), which
// would store another string than the one sent. This walks a decoded body's bytes once more,
// without decoding them, and names the first string whose bytes are not UTF-8.
//
// The walk must cover every byte msgpackr read, or a string it skipped would go unchecked. So it
// follows msgpackr's records too (the default of msgpackr's `new Packr()`: a `d4 72 ID` ext defines
// a key list for ID, and a later byte ID is a map with those keys), and refuses what it cannot
// follow: other extensions than the typed arrays vectors travel in, nesting deeper than any body
// the schemas accept, bytes left over.
import { isUtf8 } from 'node:buffer'
import { MsgpackKind, MsgpackMismatch, MsgpackReader, TYPED_ARRAY_EXTENSION } from '../msgpack/reader.js'

/** Deeper than any body the schemas accept. */
const MAX_DEPTH = 16

/** msgpack's fixext 1 head, and msgpackr's record-definition extension type. */
const FIXEXT1 = 0xd4
const RECORD_DEFINITION = 0x72
/** Bytes that name a record once one is defined under them (else they are fixints). */
const RECORD_FIRST = 0x40
const RECORD_LAST = 0x7f

/** A key as a JSON Pointer token, as the schemas name paths (`a/b` is `a~1b`). */
function pointerToken (key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1')
}

class Refusal {
  constructor (readonly reason: string) {}
}

class Walk {
  private readonly reader = new MsgpackReader()
  /** The keys and indexes down to the item being walked. */
  private readonly path: string[] = []
  /** The key list of each record defined so far, by id & 0x3f, as msgpackr's decoder keeps them. */
  private readonly records: Array<string[] | undefined> = []

  constructor (bytes: Buffer) {
    this.reader.reset(bytes, 0, bytes.length)
  }

  body (): void {
    this.item(0)
    if (this.reader.pos !== this.reader.end) this.refuse('holds bytes past its one msgpack value')
  }

  private refuse (what: string): never {
    throw new Refusal(`body${this.path.map(part => `/${part}`).join('')} ${what}`)
  }

  /** Walks the item at the reader; answers the string it was, if it was one (map keys name the path). */
  private item (depth: number): string | undefined {
    if (depth > MAX_DEPTH) this.refuse('is nested deeper than any valid body')
    const reader = this.reader
    const token = reader.src[reader.pos]
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
        if (!isUtf8(reader.src.subarray(start, reader.pos))) this.refuse('must be a valid UTF-8 string')
        return reader.src.toString('utf8', start, reader.pos)
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
    for (let i = 0; i < count; i++) {
      // A key that is not UTF-8 is reported as the map's, as the schemas report a bad key.
      const name = this.item(depth + 1)
      this.path.push(name === undefined ? '?' : pointerToken(name))
      this.item(depth + 1)
      this.path.pop()
    }
  }

  private array (count: number, depth: number): void {
    for (let i = 0; i < count; i++) {
      this.path.push(String(i))
      this.item(depth + 1)
      this.path.pop()
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
      this.path.push(`(record key ${i})`)
      keys.push(this.item(depth + 1) ?? '?')
      this.path.pop()
    }
    this.records[id] = keys
    this.recordValues(keys, depth)
  }

  private recordValues (keys: string[], depth: number): void {
    for (const key of keys) {
      this.path.push(pointerToken(key))
      this.item(depth + 1)
      this.path.pop()
    }
  }
}

/**
 * Why the body's strings cannot be taken as sent (`body/entries/0/id must be a valid UTF-8 string`),
 * or undefined when every string is valid UTF-8. Call it on a body msgpackr has decoded.
 */
export function msgpackStringsRefusal (bytes: Buffer): string | undefined {
  try {
    new Walk(bytes).body()
    return undefined
  } catch (err) {
    if (err instanceof Refusal) return err.reason
    // msgpackr read these bytes, so a walk that runs out of them lost its way: refuse, never pass.
    if (err instanceof MsgpackMismatch) return 'body is msgpack that vecwal cannot check'
    throw err
  }
}
