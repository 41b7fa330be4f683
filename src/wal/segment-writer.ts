// The single writer: frames records with their seqs, writes them to the active segment with one
// write call, makes them durable with one fdatasync, rotates segments and deletes the ones
// retention lets go. Everything that changes files goes through `exclusive`, one step at a time.
import path from 'node:path'
import { SegmentChangedError, SegmentUnavailableError } from '../errors.js'
import type { Durability } from '../log.js'
import type { FileIO } from './file-io.js'
import { encodeSegmentHeader, FORMAT_VERSION, isBookkeeping, RECORD_HEADER_BYTES, segmentFileName, SEGMENT_HEADER_BYTES, writeFrameHeader } from './format.js'
import type { EncodedPayload } from '../payload/payload.js'
import type { SegmentInfo } from './open-plan.js'
import { markDue, type SeqMark } from './seq-marks.js'

export interface SegmentWriterOptions {
  dir: string
  io: FileIO
  durability: Durability
  segmentBytes: number
  /** Told how long each fdatasync of records took, in seconds. */
  onSync?: (seconds: number) => void
}

export class SegmentWriter {
  /** Oldest first; the last one is the active segment. */
  readonly segments: SegmentInfo[]
  private fd: number
  private tail: Promise<unknown> = Promise.resolve()
  /** The last record's timestamp: the next is never earlier. */
  private lastStamp: number
  /**
   * The seq of the last entry record deleted, as far as this process knows: a reader whose
   * position is at or past it has lost none of the entries it reads, only the log's own records.
   * What the segments deleted before the log opened held is gone with them: they are taken as
   * entries up to the oldest seq held, no less than the real one, so that no read skips one.
   */
  private goneEntrySeq: number

  private constructor (private readonly options: SegmentWriterOptions, segments: SegmentInfo[], fd: number, lastTimestamp: number) {
    this.segments = segments
    this.fd = fd
    this.lastStamp = lastTimestamp
    this.goneEntrySeq = segments[0].baseSeq - 1
  }

  /** The seq of the last entry record retention has deleted (0 if none), or, for segments deleted before the log opened, the seq before the oldest held. */
  get entriesGoneThrough (): number {
    return this.goneEntrySeq
  }

  /**
   * Opens the newest segment opening kept for appending, or creates the first one at `nextSeq`.
   * A newest segment of an older version takes no more records, so that every segment stays one
   * version: a new one follows it, or, if it holds no record, its header is written again.
   *
   * The newest segment is made durable first. A process killed during an fdatasync leaves its last
   * write in the page cache, where this open reads it as part of the log: without the sync, a
   * follower could be sent it, or a retry with its idempotency key be answered from it, and a power
   * cut then take it. (Only the newest can hold such a write: every other was synced before the
   * next was created.)
   */
  static async open (options: SegmentWriterOptions, kept: SegmentInfo[], nextSeq: number, lastTimestamp: number): Promise<SegmentWriter> {
    const active = kept.at(-1)
    if (active === undefined) {
      const { info, fd } = await createSegment(options, nextSeq)
      return new SegmentWriter(options, [info], fd, lastTimestamp)
    }
    const fd = await options.io.openWrite(path.join(options.dir, active.name))
    const writer = new SegmentWriter(options, kept, fd, lastTimestamp)
    try {
      if (options.durability === 'fsync') await options.io.fdatasync(fd)
      if (active.version !== FORMAT_VERSION) await writer.upgradeActive()
    } catch (err) {
      await writer.close().catch(() => {})
      throw err
    }
    return writer
  }

  private async upgradeActive (): Promise<void> {
    const active = this.active
    if (active.lastSeq >= active.baseSeq) {
      await this.rotate(active.lastSeq + 1, 0)
      return
    }
    // A torn rewrite leaves a header-only newest segment that the opener sets aside: the log is the same.
    await this.options.io.writeAll(this.fd, [encodeSegmentHeader(active.baseSeq)], 0)
    await this.options.io.fdatasync(this.fd)
    active.version = FORMAT_VERSION
  }

  get active (): SegmentInfo {
    return this.segments[this.segments.length - 1]
  }

  /** The timestamp of the last durable record (0 before any). */
  get lastTimestamp (): number {
    return this.lastStamp
  }

  /** The last durable seq. */
  get lastSeq (): number {
    return this.active.lastSeq
  }

  /** Runs `step` after every step before it has finished, so file changes never interleave. */
  exclusive<T> (step: () => Promise<T>): Promise<T> {
    const run = this.tail.then(step)
    this.tail = run.catch(() => {})
    return run
  }

  /**
   * Writes `records` in order with consecutive seqs and returns the first seq once all of them are
   * durable (or written, with durability 'none'). Rotates first whenever the next record would take
   * a segment that already holds records past the maximum size, so a segment passes the maximum
   * only when a single record is larger than it. If the new segment's file cannot be created,
   * throws SegmentUnavailableError saying how many records went in before: the log stays usable.
   */
  append (records: readonly EncodedPayload[], now: number): Promise<{ firstSeq: number, timestamp: number }> {
    return this.exclusive(async () => {
      // A clock stepped back is clamped, so that timestamps never decrease and a read by time can seek.
      const timestamp = Math.max(now, this.lastStamp)
      const firstSeq = this.lastSeq + 1
      let start = 0
      while (start < records.length) {
        const active = this.active
        let end = start
        let bytes = 0
        while (end < records.length) {
          const size = RECORD_HEADER_BYTES + records[end].bytes.length
          const holdsRecords = active.lastSeq >= active.baseSeq || end > start
          if (holdsRecords && active.bytes + bytes + size > this.options.segmentBytes) break
          bytes += size
          end++
        }
        if (end === start) {
          await this.rotate(firstSeq, start)
          continue
        }
        // Frame headers go in one buffer; each payload is written from where it lies, after its header.
        const headers = Buffer.allocUnsafe((end - start) * RECORD_HEADER_BYTES)
        const chunks: Uint8Array[] = []
        let offset = 0
        let seq = active.lastSeq + 1
        const marks: SeqMark[] = []
        let lastEntrySeq = active.lastEntrySeq
        // Each frame names its write, so that opening can tell a write torn by a power cut from
        // damage to writes that were acknowledged (docs/format.md).
        for (let i = start; i < end; i++) {
          if (markDue(marks.length > 0 ? marks : active.marks, active.bytes + offset)) marks.push({ seq, offset: active.bytes + offset, timestamp })
          const { type, bytes: payload } = records[i]
          const headerAt = (i - start) * RECORD_HEADER_BYTES
          if (!isBookkeeping(type)) lastEntrySeq = seq
          chunks.push(headers.subarray(headerAt, writeFrameHeader(headers, headerAt, seq++, timestamp, type, payload, i - start)), payload)
          offset += RECORD_HEADER_BYTES + payload.length
        }
        // A second writer (the directory lock defeated, a tool appending behind the log's back)
        // shows as a size this writer did not make; one fstat a write is the price of noticing.
        const size = await this.options.io.size(this.fd)
        if (size !== active.bytes) throw new SegmentChangedError(active.name, active.bytes, size)
        try {
          await this.options.io.writeAll(this.fd, chunks, active.bytes)
          if (this.options.durability === 'fsync') {
            const started = process.hrtime.bigint()
            await this.options.io.fdatasync(this.fd)
            this.options.onSync?.(Number(process.hrtime.bigint() - started) / 1e9)
          }
        } catch (err) {
          // The batch is refused and the log fails. Its bytes are cut from the file first: after a
          // failed write-back the kernel may mark their pages clean, and the next open (even its
          // fdatasync) would then read them as durable records, answering a retry from bytes no
          // disk holds. Best effort: the log fails either way.
          await this.options.io.ftruncate(this.fd, active.bytes).catch(() => {})
          throw err
        }
        // Only now do readers and status see the records.
        active.bytes += bytes
        active.lastSeq = seq - 1
        active.marks.push(...marks)
        active.lastEntrySeq = lastEntrySeq
        this.lastStamp = timestamp
        start = end
      }
      return { firstSeq, timestamp }
    })
  }

  private async rotate (firstSeq: number, durableRecords: number): Promise<void> {
    const { info, fd } = await createSegment(this.options, this.lastSeq + 1, firstSeq, durableRecords)
    const sealed = this.fd
    this.fd = fd
    this.segments.push(info)
    await this.options.io.close(sealed)
  }

  /** Deletes the `count` oldest segments (retention decides which may go; never the active one). Returns how many it deleted. */
  deleteOldest (count: number): Promise<number> {
    return this.exclusive(async () => {
      const deletable = Math.min(count, this.segments.length - 1)
      let deleted = 0
      while (deleted < deletable) {
        await this.options.io.unlink(path.join(this.options.dir, this.segments[0].name))
        // Once the file is gone (a failed unlink leaves its entries readable, and counted as held);
        // a reader that found it gone first knows from the segment itself which entries went.
        this.goneEntrySeq = Math.max(this.goneEntrySeq, this.segments[0].lastEntrySeq)
        this.segments.shift()
        deleted++
      }
      if (deleted > 0) await this.options.io.fsyncDir(this.options.dir)
      return deleted
    })
  }

  close (): Promise<void> {
    return this.exclusive(async () => { await this.options.io.close(this.fd) })
  }
}

/**
 * Creates a segment and makes it durable, header and directory entry, before any record goes in:
 * a new file whose directory entry is not synced can vanish in a power cut with its records.
 * The create is exclusive, so a name can never be reused for a second segment. A create that
 * fails made no file and wrote nothing: it is reported as SegmentUnavailableError, which the log
 * survives. A failure after it (the header's write or fsync, the directory's fsync) is reported as
 * is and fails the log, as any failed write or fsync does.
 */
/** Errors of a create that say only that a resource ran short for now. */
const RESOURCE_SHORTAGES = new Set(['EMFILE', 'ENFILE', 'ENOSPC', 'EDQUOT', 'ENOMEM'])

async function createSegment (options: SegmentWriterOptions, baseSeq: number, firstSeq = baseSeq, durableRecords = 0): Promise<{ info: SegmentInfo, fd: number }> {
  const name = segmentFileName(baseSeq)
  let fd: number
  try {
    fd = await options.io.create(path.join(options.dir, name), 0o600)
  } catch (err) {
    // Out of descriptors, space or memory: nothing was written, and a later try may find room.
    // Anything else (a file already where the segment goes: another writer; an I/O error) fails the log.
    if (RESOURCE_SHORTAGES.has(String((err as NodeJS.ErrnoException).code))) throw new SegmentUnavailableError(err, firstSeq, durableRecords)
    throw err
  }
  try {
    await options.io.writeAll(fd, [encodeSegmentHeader(baseSeq)], 0)
    await options.io.fdatasync(fd)
    await options.io.fsyncDir(options.dir)
  } catch (err) {
    await options.io.close(fd).catch(() => {})
    throw err
  }
  return { info: { name, baseSeq, lastSeq: baseSeq - 1, bytes: SEGMENT_HEADER_BYTES, version: FORMAT_VERSION, marks: [], lastEntrySeq: 0 }, fd }
}
