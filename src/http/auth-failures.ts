// Failed authentications counted per client address, in windows of a minute. Past the limit an
// address may present only tokens it has already presented successfully: a client guessing tokens
// learns nothing more until its window ends, while a client that was working from the same address
// (a host or a proxy shared with a client whose token went stale) goes on working.

const WINDOW_MS = 60_000

interface AddressRecord {
  /** When the window of the failures counted began. */
  windowStart: number
  failures: number
  /** Indexes of the grants whose tokens this address has presented successfully; made at the first. */
  grantsUsed?: Set<number>
}

const NO_GRANTS: ReadonlySet<number> = new Set()

export interface AuthFailureLimits {
  /** Failed authentications an address may make in a minute; past them 429. */
  perMinute: number
  /** Addresses tracked at once; past it the one seen least recently is forgotten. */
  maxAddresses: number
}

export class AuthFailureTracker {
  private readonly addresses = new Map<string, AddressRecord>()

  constructor (readonly limits: AuthFailureLimits, private readonly now: () => number = Date.now) {}

  /** Addresses tracked now. */
  get size (): number {
    return this.addresses.size
  }

  /** Whole seconds until `address` is under the limit again; 0 while it is. */
  blockedFor (address: string): number {
    const record = this.addresses.get(address)
    if (record === undefined || record.failures < this.limits.perMinute) return 0
    const left = record.windowStart + WINDOW_MS - this.now()
    return left > 0 ? Math.ceil(left / 1000) : 0
  }

  /** The grants `address` has presented successfully, which it may still present past the limit. */
  grantsUsedBy (address: string): ReadonlySet<number> {
    return this.addresses.get(address)?.grantsUsed ?? NO_GRANTS
  }

  succeeded (address: string, grants: readonly number[]): void {
    const record = this.touch(address)
    record.grantsUsed ??= new Set()
    for (const grant of grants) record.grantsUsed.add(grant)
  }

  failed (address: string): void {
    const record = this.touch(address)
    const now = this.now()
    if (now - record.windowStart >= WINDOW_MS) {
      record.windowStart = now
      record.failures = 0
    }
    record.failures++
  }

  /** The record of `address`, made the most recently seen; the least recent goes past the cap. */
  private touch (address: string): AddressRecord {
    const record = this.addresses.get(address) ?? { windowStart: Number.NEGATIVE_INFINITY, failures: 0 }
    this.addresses.delete(address)
    if (this.addresses.size >= this.limits.maxAddresses) {
      const leastRecent = this.addresses.keys().next()
      if (leastRecent.done !== true) this.addresses.delete(leastRecent.value)
    }
    this.addresses.set(address, record)
    return record
  }
}
