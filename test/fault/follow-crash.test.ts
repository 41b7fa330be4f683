// A follower is never sent a record that a crash then loses. The service runs as a child whose
// fsyncs are slow (so a kill lands while writes are written but not durable) and which notes how
// much of each segment every completed fsync made durable. Writers post and followers of all three
// forms read; the child is killed with SIGKILL; each segment is cut back to its durable length (what
// a power cut at that moment could leave); the log is reopened. Every record any follower got must
// be there, the same, and the followers' records run gap-free from where they started.
import fs from 'node:fs'
import path from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import fc from 'fast-check'
import { entry, entryBody, type Entry } from '../helpers/bodies.js'
import { startChild } from '../helpers/child-service.js'
import { ACCEPT, openStream, parseFollowed, type FollowForm } from '../helpers/follow.js'
import { durableBytes, segmentSizes, SYNCED_SERVICE, syncedServiceEnv } from '../helpers/synced-log.js'
import { collect, openLog, tempDir } from '../helpers/wal.js'

const FORMS: readonly FollowForm[] = ['ndjson', 'msgpack', 'sse']
const CYCLES = 2
const WRITERS = 4

/** Cuts each segment back to the bytes its last completed fsync made durable; removes one never synced. */
function cutToDurable (dir: string, syncedLog: string): void {
  const durable = durableBytes(syncedLog)
  for (const name of segmentSizes(dir).keys()) {
    const bytes = durable.get(name)
    if (bytes === undefined) fs.rmSync(path.join(dir, name))
    else fs.truncateSync(path.join(dir, name), bytes)
  }
}

t.test('followers never get a record a crash loses', async t => {
  const dir = tempDir(t)
  const syncedLog = path.join(tempDir(t), 'synced.log')
  const generated = fc.sample(entry, { numRuns: 2000, seed: 99 })
  let next = 0
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const child = await startChild({
      dataDir: dir,
      launcher: SYNCED_SERVICE,
      env: { VECWAL_SEGMENT_BYTES: '8192', ...syncedServiceEnv(40, syncedLog) }
    })
    t.teardown(async () => { await child.kill9() })
    const followers = await Promise.all(FORMS.map(async form => await openStream(child.url, '/v1/recovery?after=0&follow=true', { accept: ACCEPT[form] })))
    let stop = false
    const writers = Promise.all(Array.from({ length: WRITERS }, async () => {
      while (!stop && next < generated.length) {
        const e: Entry = generated[next++]
        try {
          await fetch(`${child.url}/v1/entries`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: entryBody(e, 'json', k => k).toString() })
        } catch {
          return
        }
      }
    }))
    // Killed while writes wait on their slow fsyncs.
    await new Promise(resolve => setTimeout(resolve, 700 + cycle * 230))
    await child.kill9()
    stop = true
    await writers
    const seen = await Promise.all(FORMS.map(async (form, i) => parseFollowed(form, await followers[i].ended)))
    cutToDurable(dir, syncedLog)
    const log = await openLog(t, { dir })
    // What is on disk, as each form prints it (SSE's data is the NDJSON line).
    const onDisk = { ndjson: new Map<number, unknown>(), msgpack: new Map<number, unknown>() }
    for (const form of ['ndjson', 'msgpack'] as const) {
      const bytes = Buffer.concat(await collect(log.read({ after: 0 })[form]))
      for (const record of parseFollowed(form, bytes).records) onDisk[form].set(record.seq, record)
    }
    await log.close()
    t.ok(onDisk.ndjson.size > 0, `cycle ${cycle}: ${onDisk.ndjson.size} records durable`)
    for (const [i, form] of FORMS.entries()) {
      const { records } = seen[i]
      const disk = onDisk[form === 'msgpack' ? 'msgpack' : 'ndjson']
      t.same(records.map(r => r.seq), Array.from({ length: records.length }, (_, k) => k + 1), `cycle ${cycle}, ${form}: ${records.length} records, gap-free from seq 1`)
      const lost = records.filter(r => !isDeepStrictEqual(disk.get(r.seq), r))
      t.same(lost.map(r => r.seq), [], `cycle ${cycle}, ${form}: every record it got is on disk after the crash, unchanged`)
    }
  }
})
