// The one place that reads msgpack heads by hand. Storage (payload shape checks, the NDJSON and
// msgpack record forms), HTTP (the UTF-8 check of request bodies) and the bench all walk msgpack
// bytes without decoding them into objects; each used to read heads itself, and one of them lost
// its place after every bin and ext item. This reader is that walk, once.
//
// Every read moves `pos` past what it read and throws MsgpackMismatch when the bytes are not the
// item asked for or run past `end`. Lengths are read into locals before `pos` moves on, never in
// one expression with it.

/** The bytes at the reader are not the msgpack item asked for, or the item runs past the end. */
export class MsgpackMismatch extends Error {
  /** @param truncated the item runs past the end: more bytes may make it whole */
  constructor (readonly truncated: boolean) {
    super(truncated ? 'the msgpack item runs past the end' : 'not the msgpack item expected')
  }
}

/** The families of msgpack items, as head() names them. */
export const MsgpackKind = {
  nil: 0,
  bool: 1,
  int: 2,
  float: 3,
  str: 4,
  bin: 5,
  ext: 6,
  array: 7,
  map: 8
} as const
export type MsgpackKindCode = typeof MsgpackKind[keyof typeof MsgpackKind]

/** msgpackr's typed-array extension type, and its code for a Float32Array (the first data byte). */
export const TYPED_ARRAY_EXTENSION = 0x74
export const FLOAT32_ARRAY_CODE = 7

const EMPTY = Buffer.alloc(0)

export class MsgpackReader {
  src: Buffer = EMPTY
  pos = 0
  end = 0
  /**
   * After head(): the item's element count for an array or map, else the bytes of the item that
   * follow its head (a string's, bin's or ext's data, a number's value; 0 for nil and booleans).
   */
  length = 0
  /** After head() of an ext: its type. */
  extType = 0

  /** Reads src[start, end) from start. */
  reset (src: Buffer, start: number, end: number): void {
    this.src = src
    this.pos = start
    this.end = end
  }

  /** Lets go of the source, so that a reader kept between walks holds no caller's buffer. */
  release (): void {
    this.src = EMPTY
    this.pos = 0
    this.end = 0
  }

  /** Moves past `bytes` bytes; returns where they start. */
  take (bytes: number): number {
    const start = this.pos
    const next = start + bytes
    if (next > this.end) throw new MsgpackMismatch(true)
    this.pos = next
    return start
  }

  /** The byte at pos, moving past it. */
  byte (): number {
    return this.src[this.take(1)]
  }

  /** The big-endian unsigned integer of 1, 2 or 4 bytes at pos, moving past it. */
  uint (bytes: 1 | 2 | 4): number {
    const start = this.take(bytes)
    if (bytes === 1) return this.src[start]
    return bytes === 2 ? this.src.readUInt16BE(start) : this.src.readUInt32BE(start)
  }

  /** A string's head: its length in bytes, which follow at pos. */
  string (): number {
    const head = this.byte()
    if (head >= 0xa0 && head <= 0xbf) return head & 0x1f
    if (head === 0xd9) return this.uint(1)
    if (head === 0xda) return this.uint(2)
    if (head === 0xdb) return this.uint(4)
    throw new MsgpackMismatch(false)
  }

  /** A map's head: its count of key-value pairs, which follow at pos. */
  map (): number {
    const head = this.byte()
    if (head >= 0x80 && head <= 0x8f) return head & 0x0f
    if (head === 0xde) return this.uint(2)
    if (head === 0xdf) return this.uint(4)
    throw new MsgpackMismatch(false)
  }

  /** An array's head: its count of items, which follow at pos. */
  array (): number {
    const head = this.byte()
    if (head >= 0x90 && head <= 0x9f) return head & 0x0f
    if (head === 0xdc) return this.uint(2)
    if (head === 0xdd) return this.uint(4)
    throw new MsgpackMismatch(false)
  }

  /** An ext 8, 16 or 32 head (not fixext): its data length; the type is in extType. */
  ext (): number {
    const head = this.byte()
    let length: number
    if (head === 0xc7) length = this.uint(1)
    else if (head === 0xc8) length = this.uint(2)
    else if (head === 0xc9) length = this.uint(4)
    else throw new MsgpackMismatch(false)
    this.extType = this.byte()
    return length
  }

  /** Any item's head: its kind, with `length` (and `extType`) set as documented there. */
  head (): MsgpackKindCode {
    const head = this.byte()
    if (head <= 0x7f || head >= 0xe0) return this.sized(MsgpackKind.int, 0)
    if (head <= 0x8f) return this.sized(MsgpackKind.map, head & 0x0f)
    if (head <= 0x9f) return this.sized(MsgpackKind.array, head & 0x0f)
    if (head <= 0xbf) return this.sized(MsgpackKind.str, head & 0x1f)
    switch (head) {
      case 0xc0: return this.sized(MsgpackKind.nil, 0)
      case 0xc2: case 0xc3: return this.sized(MsgpackKind.bool, 0)
      case 0xc4: return this.sized(MsgpackKind.bin, this.uint(1))
      case 0xc5: return this.sized(MsgpackKind.bin, this.uint(2))
      case 0xc6: return this.sized(MsgpackKind.bin, this.uint(4))
      case 0xc7: case 0xc8: case 0xc9:
        this.pos--
        return this.sized(MsgpackKind.ext, this.ext())
      case 0xca: return this.sized(MsgpackKind.float, 4)
      case 0xcb: return this.sized(MsgpackKind.float, 8)
      case 0xcc: case 0xd0: return this.sized(MsgpackKind.int, 1)
      case 0xcd: case 0xd1: return this.sized(MsgpackKind.int, 2)
      case 0xce: case 0xd2: return this.sized(MsgpackKind.int, 4)
      case 0xcf: case 0xd3: return this.sized(MsgpackKind.int, 8)
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        // fixext 1, 2, 4, 8, 16: the type, then 2^(head - 0xd4) bytes.
        this.extType = this.byte()
        return this.sized(MsgpackKind.ext, 1 << (head - 0xd4))
      case 0xd9: return this.sized(MsgpackKind.str, this.uint(1))
      case 0xda: return this.sized(MsgpackKind.str, this.uint(2))
      case 0xdb: return this.sized(MsgpackKind.str, this.uint(4))
      case 0xdc: return this.sized(MsgpackKind.array, this.uint(2))
      case 0xdd: return this.sized(MsgpackKind.array, this.uint(4))
      case 0xde: return this.sized(MsgpackKind.map, this.uint(2))
      case 0xdf: return this.sized(MsgpackKind.map, this.uint(4))
    }
    // 0xc1 is never used.
    throw new MsgpackMismatch(false)
  }

  /** Moves past one whole item, containers and all. */
  skip (): void {
    // Items still to pass; each takes at least one byte, so a count that lies runs into `end`.
    let pending = 1
    while (pending > 0) {
      pending--
      const kind = this.head()
      if (kind === MsgpackKind.map) pending += 2 * this.length
      else if (kind === MsgpackKind.array) pending += this.length
      else this.take(this.length)
    }
  }

  private sized (kind: MsgpackKindCode, length: number): MsgpackKindCode {
    this.length = length
    return kind
  }
}
