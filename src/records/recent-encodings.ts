// The read forms of the newest records, shared by a log's followers, whatever the backend. A hundred followers at the
// tail of the log each used to print every new record's 128 floats as NDJSON themselves: the
// service spent most of its CPU on a hundred copies of the same text, and the writes slowed to a
// fifth. The first follower to read a record encodes it; the others copy its bytes.
//
// Bounded in bytes, the oldest records going first. Only a record newer than every record held
// goes in, so the cache is always the newest stretch of the log that followers have read: a
// follower behind it encodes for itself (as a bounded read does, which never uses this) and
// pushes no one's newer records out.
import type { RecordBytes } from './record-bytes.js'

/** Bytes each form's cache holds at most, counting ENTRY_OVERHEAD_BYTES for each record. */
export const RECENT_ENCODINGS_BYTES = 4 * 1024 * 1024
/** What one cached record costs besides its bytes: its buffer, its holder and its place in the map. */
export const ENTRY_OVERHEAD_BYTES = 128

/** A record's encoded bytes, and its timestamp: a record met again under the same seq with another timestamp is another record. */
interface Held {
  bytes: Buffer
  timestamp: number
}

export class RecentEncodings {
  /** By seq, oldest first: a Map iterates in insertion order, and seqs go in rising. */
  private readonly bySeq = new Map<number, Held>()
  private bytes = 0
  private newest = 0

  constructor (private readonly maxBytes = RECENT_ENCODINGS_BYTES) {}

  /**
   * `encode`, answering from the cache when a record's bytes are there. Encoders may answer a view
   * of a buffer they write again, so what goes into the cache is a copy.
   */
  encoder<R extends RecordBytes> (encode: (record: R) => Buffer | undefined): (record: R) => Buffer | undefined {
    return record => {
      const known = this.bySeq.get(record.seq)
      if (known !== undefined && known.timestamp === record.timestamp) return known.bytes
      const bytes = encode(record)
      if (bytes !== undefined && record.seq > this.newest) this.keep(record.seq, { bytes: ownCopy(bytes), timestamp: record.timestamp })
      return bytes
    }
  }

  /** How many records' bytes are held, and the bytes they count for (ENTRY_OVERHEAD_BYTES each included). */
  get size (): { records: number, bytes: number } {
    return { records: this.bySeq.size, bytes: this.bytes }
  }

  private keep (seq: number, held: Held): void {
    if (cost(held) > this.maxBytes) return
    this.newest = seq
    this.bySeq.set(seq, held)
    this.bytes += cost(held)
    for (const [oldest, older] of this.bySeq) {
      if (this.bytes <= this.maxBytes) break
      this.bySeq.delete(oldest)
      this.bytes -= cost(older)
    }
  }
}

function cost (held: Held): number {
  return held.bytes.length + ENTRY_OVERHEAD_BYTES
}

/**
 * A copy in a buffer of its own: Buffer.from copies a short one into Node's shared 8 KiB pool, and
 * a cached line would keep the whole pool block alive.
 */
function ownCopy (bytes: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.length)
  bytes.copy(copy)
  return copy
}
