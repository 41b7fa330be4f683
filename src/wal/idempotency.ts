// The idempotency keys a log remembers: for each, the seq its write got and the digest of that
// write's content, so that a retry is answered as the write was. The keys live in the records
// themselves (docs/format.md, "Idempotency keys"); this index is rebuilt from them at open and
// forgets a key when its window ends, when retention deletes its record, or, past the cap on keys
// held, oldest first.
import type { WalLogger } from './logger.js'

export interface IdempotencyLimits {
  /** A key is remembered this long after its write, in milliseconds. */
  windowMs: number
  /**
   * Keys held at most; past it the oldest are forgotten early (evicted). A key costs about 100
   * bytes of heap and one a character (measured on Node 20: 137 for a 36-character UUID).
   */
  maxKeys: number
}

/** A remembered write: what a retry with its key is answered from. */
export interface KeyedWrite {
  seq: number
  /** The first 16 bytes of the SHA-256 of the content, as latin1 text. */
  contentDigest: string
  /** When the write was made (ms since the epoch): its record's timestamp, or its acknowledgement. */
  writtenAt: number
}

/** Evictions are logged at most this often: under steady overload, once a minute, not once a write. */
const EVICTION_WARNING_MS = 60_000

export class KeyIndex {
  // A Map iterates in insertion order, and keys are inserted as their writes are acknowledged,
  // nearly in seq and time order: the oldest are found first, for expiry, retention and eviction.
  // Each key maps to a slot of the arrays below rather than to an object of its own: half a
  // million keys rebuilt at open are then half a million fewer objects for the collector to move.
  private readonly keys = new Map<string, number>()
  private seqs = new Float64Array(64)
  private writtenAts = new Float64Array(64)
  private digests: string[] = []
  /** Slots given back, taken again before a new one. */
  private readonly freeSlots: number[] = []
  /** Slots handed out so far: the next new slot is this one. */
  private slotsUsed = 0
  /** Writes with a key in flight, and what settles when each is answered. */
  private readonly inFlight = new Map<string, { contentDigest: string, settled: Promise<void> }>()
  private lastWarning = Number.NEGATIVE_INFINITY
  private evictedSinceWarning = 0

  constructor (
    private readonly limits: IdempotencyLimits,
    private readonly now: () => number,
    private readonly logger: WalLogger,
    private readonly onEvicted: (keys: number) => void
  ) {}

  get size (): number {
    return this.keys.size
  }

  /** The remembered write of `key`, unless its window has ended or its record is older than `oldestSeq`. */
  find (key: string, oldestSeq: number): KeyedWrite | undefined {
    this.expire()
    const slot = this.keys.get(key)
    if (slot === undefined) return undefined
    const seq = this.seqs[slot]
    const writtenAt = this.writtenAts[slot]
    if (seq < oldestSeq || writtenAt + this.limits.windowMs <= this.now()) {
      this.forget(key, slot)
      return undefined
    }
    return { seq, contentDigest: this.digests[slot], writtenAt }
  }

  /** The write with `key` in flight, if there is one. */
  pending (key: string): { contentDigest: string, settled: Promise<void> } | undefined {
    return this.inFlight.get(key)
  }

  /** Marks a write with `key` in flight until the returned function is called. */
  begin (key: string, contentDigest: string): () => void {
    let settle = (): void => {}
    const settled = new Promise<void>(resolve => { settle = resolve })
    this.inFlight.set(key, { contentDigest, settled })
    return () => {
      this.inFlight.delete(key)
      settle()
    }
  }

  /** Remembers a durable write. Past the cap, the oldest key is forgotten. */
  remember (key: string, write: KeyedWrite): void {
    if (write.writtenAt + this.limits.windowMs <= this.now()) return
    // Inserted again, it moves to the end: the order stays the writes' order.
    const known = this.keys.get(key)
    if (known !== undefined) this.forget(key, known)
    const slot = this.takeSlot()
    this.seqs[slot] = write.seq
    this.writtenAts[slot] = write.writtenAt
    this.digests[slot] = write.contentDigest
    this.keys.set(key, slot)
    if (this.keys.size > this.limits.maxKeys) this.evictOldest()
  }

  /** Forgets the keys of records below `oldestSeq`: retention deleted them. */
  forgetBefore (oldestSeq: number): void {
    for (const [key, slot] of this.keys) {
      if (this.seqs[slot] >= oldestSeq) break
      this.forget(key, slot)
    }
  }

  /** Forgets the keys whose window has ended, from the oldest while they have. */
  private expire (): void {
    const before = this.now() - this.limits.windowMs
    for (const [key, slot] of this.keys) {
      if (this.writtenAts[slot] > before) break
      this.forget(key, slot)
    }
  }

  private forget (key: string, slot: number): void {
    this.keys.delete(key)
    this.digests[slot] = ''
    this.freeSlots.push(slot)
  }

  /** A free slot; the arrays grow by doubling, to one more than the cap at most (eviction follows an insert). */
  private takeSlot (): number {
    const free = this.freeSlots.pop()
    if (free !== undefined) return free
    if (this.slotsUsed === this.seqs.length) {
      const length = this.seqs.length * 2
      const seqs = new Float64Array(length)
      seqs.set(this.seqs)
      const writtenAts = new Float64Array(length)
      writtenAts.set(this.writtenAts)
      this.seqs = seqs
      this.writtenAts = writtenAts
    }
    return this.slotsUsed++
  }

  private evictOldest (): void {
    this.expire()
    let evicted = 0
    for (const [key, slot] of this.keys) {
      if (this.keys.size <= this.limits.maxKeys) break
      this.forget(key, slot)
      evicted++
    }
    if (evicted === 0) return
    this.onEvicted(evicted)
    this.evictedSinceWarning += evicted
    const now = this.now()
    if (now - this.lastWarning >= EVICTION_WARNING_MS) {
      this.logger.warn({ maxKeys: this.limits.maxKeys, evicted: this.evictedSinceWarning },
        'idempotency keys are being forgotten before their window ends (VECWAL_IDEMPOTENCY_MAX_KEYS): a retry of their writes would write again')
      this.lastWarning = now
      this.evictedSinceWarning = 0
    }
  }
}
