// The free-space check (VECWAL_MIN_FREE_BYTES) asks the file system rarely, not once per append,
// and counts the bytes written in between, so that a burst cannot run past the minimum unseen.
import fc from 'fast-check'
import t from 'tap'
import { entries, entry, openLog, tempDir } from '../helpers/wal.js'

t.test('free space is asked once per check period, and lowered by what is written in between', async t => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 120 }), fc.integer({ min: 0, max: 6000 }), async (count, headroom) => {
    let asked = 0
    const minFreeBytes = 1024 * 1024
    const log = await openLog(t, { dir: tempDir(t), minFreeBytes, freeSpaceCheckMs: 60_000, freeBytes: async () => { asked++; return minFreeBytes + headroom } })
    const start = log.status().bytes
    const problems: string[] = []
    let accepted = 0
    for (const e of entries(count)) {
      const written = log.status().bytes - start
      try {
        await log.append(e)
        accepted++
        if (written > headroom) problems.push(`accepted after ${written} bytes of ${headroom}`)
      } catch (err) {
        if ((err as { code?: string }).code !== 'WAL_DISK_FULL') throw err
        if (written <= headroom) problems.push(`refused after only ${written} bytes of ${headroom}`)
        break
      }
    }
    const checkpoint = await log.checkpoint()
    await log.close()
    if (asked !== 1) problems.push(`asked ${asked} times`)
    if (checkpoint.checkpoint !== accepted) problems.push('the checkpoint was not written')
    return problems.length === 0
  }), { numRuns: 25 })
  t.pass('one statfs per period; appends refused exactly once the bytes written pass the headroom; checkpoints still written')
})

t.test('a check period over asks again, and space freed lets appends through', async t => {
  let free = 0
  const log = await openLog(t, { dir: tempDir(t), minFreeBytes: 4096, freeSpaceCheckMs: 1, freeBytes: async () => free })
  await t.rejects(log.append(entry(0)), { code: 'WAL_DISK_FULL' })
  free = 1024 * 1024
  await new Promise(resolve => setTimeout(resolve, 5))
  t.equal(await log.append(entry(1)), 1, 'accepted once the file system has room again')
})
