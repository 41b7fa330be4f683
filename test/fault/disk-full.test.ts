// A disk filling up, against the real service as a child process on a real tmpfs (issue 10, item
// 5). Below VECWAL_MIN_FREE_BYTES writes get 507 WAL_DISK_FULL with Retry-After, the log is not
// failed, a checkpoint still passes and lets retention free space, and writes go on after it. And
// the service restarts on a nearly full disk with a torn tail, which it cuts without a copy.
import fs from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import { startChild } from '../helpers/child-service.js'
import { fillDisk, smallDisk } from '../helpers/small-disk.js'
import { segmentFiles, writeLog } from '../helpers/wal.js'

const KiB = 1024
const MAX_POSTS = 400

const entryArbitrary = fc.record({
  op: fc.constantFrom('insert', 'update'),
  id: fc.string({ minLength: 1, maxLength: 40 }),
  vector: fc.array(fc.integer({ min: -1000, max: 1000 }).map(n => n / 8), { minLength: 32, maxLength: 96, size: "max" })
})

async function post (url: string, route: string, body?: unknown): Promise<{ status: number, json: Record<string, unknown>, retryAfter: string | null }> {
  const res = await fetch(`${url}${route}`, {
    method: 'POST',
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000)
  })
  return { status: res.status, json: await res.json() as Record<string, unknown>, retryAfter: res.headers.get('retry-after') }
}

t.test('writes are refused with 507 before the disk is full; a checkpoint frees space and they go on', async t => {
  const disk = smallDisk(t, 1024 * KiB)
  const dataDir = path.join(disk, 'data')
  const child = await startChild({
    dataDir,
    env: { VECWAL_SEGMENT_BYTES: String(16 * KiB), VECWAL_MIN_FREE_BYTES: String(256 * KiB) }
  })
  t.teardown(async () => { await child.stop() })

  const seqs: number[] = []
  let refusal: Awaited<ReturnType<typeof post>> | undefined
  for (let i = 0; i < MAX_POSTS && refusal === undefined; i++) {
    const entries = fc.sample(entryArbitrary, { numRuns: 20, seed: i })
    const answer = await post(child.url, '/v1/batch', { entries })
    if (answer.status === 201) seqs.push(answer.json.seq as number)
    else refusal = answer
  }
  t.equal(refusal?.status, 507, `the disk ran short within ${MAX_POSTS} batches`)
  t.equal(refusal?.json.code, 'WAL_DISK_FULL')
  t.equal(refusal?.retryAfter, '5')
  t.same(seqs, seqs.map((_, i) => i + 1), 'every batch before the refusal was acknowledged, seqs gap-free')

  const ready = await fetch(`${child.url}/health/ready`)
  await ready.arrayBuffer()
  t.equal(ready.status, 200, 'the log is not failed: it refused before any write could fail')

  t.match(await (await fetch(`${child.url}/metrics`)).text(), /^vecwal_disk_full 1$/m, 'the metric says writes are refused')

  const checkpoint = await post(child.url, '/v1/checkpoints')
  t.equal(checkpoint.status, 201, 'a checkpoint passes below the minimum')
  t.ok((checkpoint.json.deletedSegments as number) > 0, 'and retention deleted what it covers')

  const after = await post(child.url, '/v1/entries', { op: 'insert', id: 'after', vector: [1, 2] })
  t.equal(after.status, 201, 'writes are accepted again once space is free')
  t.equal(after.json.seq, seqs.length + 2, 'the next seq follows the checkpoint record')
  t.match(await (await fetch(`${child.url}/metrics`)).text(), /^vecwal_disk_full 0$/m)
})

t.test('the service starts on a nearly full disk, cutting a torn tail it has no room to copy', async t => {
  const disk = smallDisk(t, 512 * KiB)
  const dataDir = path.join(disk, 'data')
  const written = fc.sample(entryArbitrary, { numRuns: 30, seed: 3 })
  await writeLog({ dir: dataDir }, written)
  const segment = path.join(dataDir, segmentFiles(dataDir)[0])
  const whole = fs.statSync(segment).size
  // Three pages: more than the page that taking the lock frees when it rewrites LOCK.
  fs.appendFileSync(segment, Buffer.from(fc.sample(fc.integer({ min: 1, max: 255 }), { numRuns: 3 * 4096, seed: 4 })))
  fillDisk(disk)
  const child = await startChild({ dataDir, env: { VECWAL_MIN_FREE_BYTES: '0' } })
  t.teardown(async () => { await child.stop() })
  const status = await (await fetch(`${child.url}/v1/status`)).json() as { lastSeq: number }
  t.equal(status.lastSeq, written.length, 'every whole record is there')
  t.equal(fs.statSync(segment).size, whole, 'the torn tail is cut')
  t.same(fs.readdirSync(dataDir).filter(name => name.includes('.broken')), [], 'no empty .broken file left behind')
  t.match(child.stdoutText, /WITHOUT keeping a copy/, 'and the log says so')
})
