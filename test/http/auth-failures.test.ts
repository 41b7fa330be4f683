// The tracker of failed authentications on its own, with a clock of the test's: an address is
// limited after its quota of failures within a minute and free again once the minute has passed,
// and however many addresses fail or succeed, the tracker holds at most its cap of them, the ones
// seen most recently.
import fc from 'fast-check'
import t from 'tap'
import { AuthFailureTracker } from '../../src/http/auth-failures.js'

const address = fc.oneof(fc.ipV4(), fc.ipV6())

t.test('the addresses tracked stay at the cap, the most recently seen kept', async t => {
  await fc.assert(fc.property(fc.integer({ min: 1, max: 64 }), fc.array(address, { minLength: 1, maxLength: 2000 }), (cap, failing) => {
    const tracker = new AuthFailureTracker({ perMinute: 1, maxAddresses: cap }, () => 0)
    for (const a of failing) {
      tracker.failed(a)
      if (tracker.size > cap) return false
    }
    const lastSeen = [...new Set([...failing].reverse())]
    const kept = new Set(lastSeen.slice(0, cap))
    // perMinute 1: an address still tracked is limited, one forgotten is not.
    return tracker.size === Math.min(cap, lastSeen.length) && lastSeen.every(a => (tracker.blockedFor(a) > 0) === kept.has(a))
  }), { numRuns: 200 })
  t.pass('held for 200 generated runs')
})

t.test('successful addresses count toward the cap too', async t => {
  const op = fc.record({ address, succeeded: fc.boolean(), grant: fc.nat(7) })
  await fc.assert(fc.property(fc.integer({ min: 1, max: 32 }), fc.array(op, { minLength: 1, maxLength: 1000 }), (cap, ops) => {
    const tracker = new AuthFailureTracker({ perMinute: 3, maxAddresses: cap }, () => 0)
    for (const { address, succeeded, grant } of ops) {
      if (succeeded) tracker.succeeded(address, [grant])
      else tracker.failed(address)
      if (tracker.size > cap) return false
    }
    const last = ops[ops.length - 1]
    return !last.succeeded || tracker.grantsUsedBy(last.address).has(last.grant)
  }), { numRuns: 200 })
  t.pass('held for 200 generated runs')
})

t.test('limited after the quota within a minute, with the seconds left; free once the minute has passed', async t => {
  await fc.assert(fc.property(fc.integer({ min: 1, max: 30 }), fc.array(fc.nat(2000), { minLength: 29, maxLength: 29 }), address, (perMinute, gaps, a) => {
    let now = 1_000_000
    const tracker = new AuthFailureTracker({ perMinute, maxAddresses: 10 }, () => now)
    const start = now
    for (let failure = 1; failure <= perMinute; failure++) {
      if (tracker.blockedFor(a) !== 0) return false
      tracker.failed(a)
      if (failure < perMinute) now += gaps[failure - 1]
    }
    const left = Math.ceil((start + 60_000 - now) / 1000)
    if (tracker.blockedFor(a) !== left || left < 1 || left > 60) return false
    now = start + 60_000
    if (tracker.blockedFor(a) !== 0) return false
    // A new window: its first failure counts alone.
    tracker.failed(a)
    return tracker.blockedFor(a) === (perMinute === 1 ? 60 : 0)
  }), { numRuns: 300 })
  t.pass('held for 300 generated runs')
})
