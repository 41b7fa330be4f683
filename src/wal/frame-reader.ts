// Reads the record frames of one segment file in order, a chunk at a time, so that scanning or
// streaming a segment of any size holds one chunk (or one record, if larger) in memory.
import { ShortReadError } from '../errors.js'
import type { FileIO } from './file-io.js'
import { readRecord, type RecordFrame, RECORD_HEADER_BYTES } from './format.js'

export const DEFAULT_CHUNK_BYTES = 1024 * 1024

export type FrameStep =
  | { kind: 'record', offset: number, frame: RecordFrame }
  /** The range ended inside a frame: `offset` is where that frame begins. */
  | { kind: 'short', offset: number }
  | { kind: 'bad', offset: number, reason: string }
  | { kind: 'end', offset: number }

export class FrameReader {
  private buf: Buffer
  /** File position of buf[0]. */
  private bufStart: number
  private bufLen = 0
  private pos = 0
  /** Bytes the frame at `pos` needs, when buffered() could not decide it. */
  private needed = RECORD_HEADER_BYTES

  constructor (
    private readonly io: FileIO,
    private readonly fd: number,
    start: number,
    private end: number,
    private readonly chunkBytes = DEFAULT_CHUNK_BYTES
  ) {
    this.buf = Buffer.allocUnsafe(chunkBytes)
    this.bufStart = start
  }

  /** File position of the next frame. */
  get offset (): number {
    return this.bufStart + this.pos
  }

  /** Where the range ends now. */
  get rangeEnd (): number {
    return this.end
  }

  /** Moves the range's end on to `end`, past bytes written (and made durable) since: a follower reads on where it stopped. */
  extendTo (end: number): void {
    this.end = Math.max(this.end, end)
  }

  /**
   * The next frame. A record's payload lies in the reader's buffer: decode it before the next
   * call.
   */
  async next (): Promise<FrameStep> {
    for (;;) {
      const step = this.buffered()
      if (step !== undefined) return step
      await this.fill(this.needed)
    }
  }

  /**
   * The next frame when the bytes already read decide it, else undefined (call next()). Lets a
   * hot loop take most frames without a promise each.
   */
  buffered (): FrameStep | undefined {
    const offset = this.offset
    if (offset >= this.end) return { kind: 'end', offset }
    const result = readRecord(this.buf, this.pos, this.bufLen)
    if (result.kind === 'record') {
      this.pos += result.frame.size
      return { kind: 'record', offset, frame: result.frame }
    }
    if (result.kind === 'bad') return { kind: 'bad', offset, reason: result.reason }
    if (offset + result.needed > this.end) return { kind: 'short', offset }
    this.needed = result.needed
    return undefined
  }

  /** Moves the unread bytes to the front of the buffer and reads until `needed` bytes are there. */
  private async fill (needed: number): Promise<void> {
    const unread = this.bufLen - this.pos
    // A buffer grown for one big record goes back to the chunk size once that record is read.
    const size = Math.max(needed, this.chunkBytes)
    if (size !== this.buf.length) {
      const resized = Buffer.allocUnsafe(size)
      this.buf.copy(resized, 0, this.pos, this.bufLen)
      this.buf = resized
    } else {
      this.buf.copyWithin(0, this.pos, this.bufLen)
    }
    this.bufStart += this.pos
    this.pos = 0
    this.bufLen = unread
    while (this.bufLen < needed) {
      const want = Math.min(this.buf.length - this.bufLen, this.end - (this.bufStart + this.bufLen))
      const got = await this.io.read(this.fd, this.buf, this.bufLen, want, this.bufStart + this.bufLen)
      if (got === 0) throw new ShortReadError(this.bufStart + this.bufLen)
      this.bufLen += got
    }
  }
}
