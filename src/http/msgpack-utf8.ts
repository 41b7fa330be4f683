// msgpack strings must be valid UTF-8, as JSON bodies must: msgpackr decodes bytes that are not as
// U+FFFD, which would store another string than the one sent. This walks a body's items without
// decoding them and names the first string whose bytes are not UTF-8.
import { isUtf8 } from 'node:buffer'

/** Deeper than any body the schemas accept: what lies below is refused by them anyway. */
const MAX_DEPTH = 16

class Walk {
  private pos = 0

  constructor (private readonly bytes: Buffer) {}

  /**
   * The path below this item to a string that is not UTF-8 (its keys and indexes), or undefined.
   * Stops quietly at bytes that are not msgpack: the decoder has refused those already.
   */
  item (depth: number): string[] | undefined {
    const { bytes } = this
    const head = bytes[this.pos++]
    if (head === undefined || depth > MAX_DEPTH) return undefined
    if (head >= 0xa0 && head <= 0xbf) return this.string(head & 0x1f)
    if (head >= 0x80 && head <= 0x8f) return this.map(head & 0x0f, depth)
    if (head >= 0x90 && head <= 0x9f) return this.array(head & 0x0f, depth)
    switch (head) {
      case 0xd9: return this.string(this.length(1))
      case 0xda: return this.string(this.length(2))
      case 0xdb: return this.string(this.length(4))
      case 0xde: return this.map(this.length(2), depth)
      case 0xdf: return this.map(this.length(4), depth)
      case 0xdc: return this.array(this.length(2), depth)
      case 0xdd: return this.array(this.length(4), depth)
      case 0xc4: this.pos += this.length(1); return undefined
      case 0xc5: this.pos += this.length(2); return undefined
      case 0xc6: this.pos += this.length(4); return undefined
      case 0xc7: this.pos += this.length(1) + 1; return undefined
      case 0xc8: this.pos += this.length(2) + 1; return undefined
      case 0xc9: this.pos += this.length(4) + 1; return undefined
      case 0xcc: case 0xd0: this.pos += 1; return undefined
      case 0xcd: case 0xd1: case 0xd4: this.pos += 2; return undefined
      case 0xd5: this.pos += 3; return undefined
      case 0xca: case 0xce: case 0xd2: this.pos += 4; return undefined
      case 0xd6: this.pos += 5; return undefined
      case 0xcb: case 0xcf: case 0xd3: this.pos += 8; return undefined
      case 0xd7: this.pos += 9; return undefined
      case 0xd8: this.pos += 17; return undefined
    }
    // Fixints, nil, booleans: the head is the whole item.
    return undefined
  }

  private length (bytes: 1 | 2 | 4): number {
    const at = this.pos
    this.pos += bytes
    if (this.pos > this.bytes.length) return 0
    return bytes === 1 ? this.bytes[at] : bytes === 2 ? this.bytes.readUInt16BE(at) : this.bytes.readUInt32BE(at)
  }

  /** Where the last string walked lies: map keys name the path. */
  private stringStart = 0

  private string (length: number): string[] | undefined {
    this.stringStart = this.pos
    this.pos += length
    return isUtf8(this.bytes.subarray(this.stringStart, this.pos)) ? undefined : []
  }

  private map (count: number, depth: number): string[] | undefined {
    for (let i = 0; i < count && this.pos < this.bytes.length; i++) {
      const keyHead = this.bytes[this.pos]
      // A key that is not UTF-8 is reported as the map's, as the schemas report a bad key.
      if (this.item(depth + 1) !== undefined) return []
      const isString = (keyHead >= 0xa0 && keyHead <= 0xbf) || (keyHead >= 0xd9 && keyHead <= 0xdb)
      const name = isString ? this.bytes.toString('utf8', this.stringStart, this.pos) : '?'
      const inner = this.item(depth + 1)
      if (inner !== undefined) return [name, ...inner]
    }
    return undefined
  }

  private array (count: number, depth: number): string[] | undefined {
    for (let i = 0; i < count && this.pos < this.bytes.length; i++) {
      const inner = this.item(depth + 1)
      if (inner !== undefined) return [String(i), ...inner]
    }
    return undefined
  }
}

/** Where in the body (`/entries/0/id`) the first string that is not UTF-8 lies, or undefined. */
export function invalidUtf8Path (bytes: Buffer): string | undefined {
  const path = new Walk(bytes).item(0)
  return path === undefined ? undefined : path.map(part => `/${part}`).join('')
}
