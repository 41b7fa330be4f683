// The offline tools (issue 10) on logs the tests write and then damage: verify changes nothing and
// may run beside a live server; dump prints exactly the recovery stream's bytes; stat counts what
// was written; repair does what serve --repair does, after asking.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import type { EntryInput } from '../../src/entry.js'
import { RECORD_HEADER_BYTES, RecordType, writeRecord } from '../../src/wal/format.js'
import { encodeEntry } from '../../src/payload/payload.js'
import { dump, repair, stat, verify } from '../../src/tools/commands.js'
import { startTestService } from '../helpers/http.js'
import { CLI } from '../helpers/project.js'
import { copyDir, flipBit, openLog, rawRecords, segmentFiles, tempDir, writeLog } from '../helpers/wal.js'

interface Run { code: number | null, stdout: Buffer, stderr: string }

function vecwal (args: string[], input = ''): Run {
  const run = spawnSync(process.execPath, [CLI, ...args], { input, timeout: 20_000, env: { PATH: process.env.PATH } })
  return { code: run.status, stdout: run.stdout, stderr: run.stderr.toString() }
}

/**
 * The same commands called in this process, for the generated cases: what the command does is the
 * same, without a Node start per case. The spawned CLI is checked by the tests above them.
 */
async function inProcess (command: 'verify' | 'stat' | 'dump' | 'repair', args: string[], answer = ''): Promise<Run> {
  const out: Buffer[] = []
  let stderr = ''
  const io = { out: (text: string) => { out.push(Buffer.from(text)) }, err: (text: string) => { stderr += text } }
  const code = command === 'verify'
    ? await verify(args, io)
    : command === 'stat'
      ? await stat(args, io)
      : command === 'dump'
        ? await dump(args, io, async chunk => { out.push(Buffer.from(chunk)) })
        : await repair(args, io, async () => answer)
  return { code, stdout: Buffer.concat(out), stderr }
}

/** Every file of a directory with its bytes: to tell that a tool changed nothing. */
/** The log's files and their bytes; LOCK, which is not part of the log (it stays after a close), left out. */
function snapshot (dir: string): Record<string, string> {
  return Object.fromEntries(fs.readdirSync(dir).filter(name => name !== 'LOCK').sort().map(name => [name, fs.readFileSync(path.join(dir, name)).toString('base64')]))
}

const entryArbitrary: fc.Arbitrary<EntryInput> = fc.oneof(
  fc.record({
    op: fc.constantFrom('insert' as const, 'update' as const),
    id: fc.string({ minLength: 1, maxLength: 12 }),
    vector: fc.array(fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), { minLength: 1, maxLength: 8 })
  }),
  fc.record({ op: fc.constant('delete' as const), id: fc.string({ minLength: 1, maxLength: 12 }) })
)
const logArbitrary = fc.array(entryArbitrary, { minLength: 3, maxLength: 60 })
const segmentBytes = 1024

t.test('every command has --help', async t => {
  for (const command of ['verify', 'stat', 'dump', 'repair']) {
    const run = vecwal([command, '--help'])
    t.equal(run.code, 0, `${command} --help exits 0`)
    t.match(run.stdout.toString(), new RegExp(`^Usage: vecwal ${command} DIR`))
  }
  const wrong = vecwal(['verify'])
  t.equal(wrong.code, 2, 'a missing directory is bad usage')
})

t.test('verify finds a whole log whole, beside a live server, and takes nothing from it', async t => {
  const service = await startTestService(t, { VECWAL_SEGMENT_BYTES: String(4096) })
  const written = fc.sample(logArbitrary, { numRuns: 1, seed: 7 })[0]
  for (const e of written) t.equal((await service.call('POST', '/v1/entries', e)).status, 201)
  const before = snapshot(service.dir)
  const run = vecwal(['verify', service.dir])
  t.equal(run.code, 0, 'verify exits 0 on a whole log')
  t.match(run.stdout.toString(), /^whole:/m)
  t.same(snapshot(service.dir), before, 'nothing changed, the LOCK left as the server holds it')
  t.equal((await service.call('POST', '/v1/entries', { op: 'delete', id: 'after' })).status, 201, 'the server writes on')
  const locked = vecwal(['repair', service.dir, '--yes'])
  t.equal(locked.code, 2, 'repair, which writes, is refused while the server holds the directory')
  t.match(locked.stderr, /held by another process/)
})

t.test('verify reports a torn tail and corruption with file and offset, changing nothing', async t => {
  await fc.assert(fc.asyncProperty(logArbitrary, fc.nat(), fc.nat(), fc.boolean(), async (written, pick, cut, tornNotCorrupt) => {
    const dir = tempDir(t)
    await writeLog({ dir, segmentBytes }, written)
    const records = rawRecords(dir)
    const files = segmentFiles(dir)
    let expected: RegExp
    if (tornNotCorrupt) {
      const last = records.at(-1)!
      fs.truncateSync(path.join(dir, last.file), last.offset + 1 + (cut % (last.size - 1)))
      expected = new RegExp(`^torn: serve would cut the torn tail of ${last.file} at byte ${last.offset} `, 'm')
    } else {
      // A record of a sealed segment, when there is one: damage there is always corruption.
      const sealed = records.filter(r => r.file !== files.at(-1))
      const victim = (sealed.length > 0 ? sealed : records.slice(0, -1))[pick % Math.max(1, sealed.length > 0 ? sealed.length : records.length - 1)]
      if (victim === undefined) return true
      flipBit(path.join(dir, victim.file), victim.offset + 4 + (cut % (victim.size - 4)))
      expected = new RegExp(`^corrupt: ${victim.file} at byte ${victim.offset}: `, 'm')
    }
    const before = snapshot(dir)
    const run = await inProcess('verify', [dir])
    const ok = run.code === 1 && expected.test(run.stdout.toString()) && JSON.stringify(snapshot(dir)) === JSON.stringify(before)
    fs.rmSync(dir, { recursive: true, force: true })
    return ok
  }), { numRuns: 20 })
  t.pass('each damage found, placed and left as it was')
})

t.test('verify reads every record body, which opening does not: a checksummed frame of the wrong shape is found', async t => {
  await fc.assert(fc.asyncProperty(logArbitrary, entryArbitrary, async (written, misfiled) => {
    const dir = tempDir(t)
    await writeLog({ dir }, written)
    const [name] = segmentFiles(dir)
    const file = path.join(dir, name)
    const offset = fs.statSync(file).size
    // A whole frame, CRC and seq right, whose payload is not a body of the type its header names.
    const { bytes } = encodeEntry(misfiled)
    const frame = Buffer.alloc(RECORD_HEADER_BYTES + bytes.length)
    writeRecord(frame, 0, written.length + 1, Date.now(), misfiled.op === 'delete' ? RecordType.insert : RecordType.delete, bytes)
    fs.appendFileSync(file, frame)
    const run = await inProcess('verify', [dir])
    fs.rmSync(dir, { recursive: true, force: true })
    return run.code === 1 && run.stdout.toString().includes(`unreadable record: ${name} at byte ${offset}: record body does not match its type`)
  }), { numRuns: 10 })
  t.pass('each misfiled body found, with its file and offset')
})

t.test('dump prints exactly the bytes of the recovery stream, in both forms', async t => {
  const service = await startTestService(t, { VECWAL_SEGMENT_BYTES: String(4096) })
  const written = fc.sample(logArbitrary, { numRuns: 1, seed: 11 })[0]
  for (const e of written) await service.call('POST', '/v1/entries', e)
  await service.call('POST', '/v1/checkpoints', { seq: 2 })
  await service.call('POST', '/v1/batch', { entries: written.slice(0, 3) })
  const after = 1
  const ndjson = Buffer.from(await (await fetch(`${service.url}/v1/recovery?after=${after}`)).arrayBuffer())
  const msgpack = Buffer.from(await (await fetch(`${service.url}/v1/recovery?after=${after}`, { headers: { accept: 'application/msgpack' } })).arrayBuffer())
  const dumped = vecwal(['dump', service.dir, '--from', String(after + 1)])
  t.equal(dumped.code, 0, dumped.stderr)
  t.ok(dumped.stdout.equals(ndjson), 'NDJSON: the same bytes')
  const packed = vecwal(['dump', service.dir, '--from', String(after + 1), '--format', 'msgpack'])
  t.ok(packed.stdout.equals(msgpack), 'msgpack: the same bytes')
  const ranged = vecwal(['dump', service.dir, '--from', '3', '--to', '4'])
  t.same(ranged.stdout.toString().trim().split('\n').map(l => (JSON.parse(l) as { seq: number }).seq), [3, 4], '--from and --to bound the seqs')
})

t.test('dump stops at damage, after every record before it, naming file and offset', async t => {
  await fc.assert(fc.asyncProperty(logArbitrary, fc.nat(), async (written, pick) => {
    const dir = tempDir(t)
    await writeLog({ dir, segmentBytes }, written)
    const records = rawRecords(dir)
    const victim = records[pick % (records.length - 1)]
    flipBit(path.join(dir, victim.file), victim.offset + 8)
    const run = await inProcess('dump', [dir])
    const seqs = run.stdout.toString().split('\n').filter(l => l !== '').map(l => (JSON.parse(l) as { seq: number }).seq)
    const firstOfSegment = records.find(r => r.file === victim.file)!
    // What serve --repair would keep: the records before the damage, or before its segment when the damage is its first record.
    const kept = victim.offset === firstOfSegment.offset ? firstOfSegment.seq - 1 : victim.seq - 1
    const ok = run.code === 1 && seqs.join() === Array.from({ length: kept }, (_, i) => i + 1).join() &&
      run.stderr.includes(`${victim.file} at byte ${victim.offset}`)
    fs.rmSync(dir, { recursive: true, force: true })
    return ok
  }), { numRuns: 10 })
  t.pass('every dump printed the records before the damage and named it')
})

t.test('dump --force reads past damage, marking it where the damaged record stood', async t => {
  await fc.assert(fc.asyncProperty(logArbitrary, fc.nat(), fc.nat(), async (written, pick, bit) => {
    const dir = tempDir(t)
    await writeLog({ dir, segmentBytes }, written)
    const whole = (await inProcess('dump', [dir])).stdout.toString().split('\n').filter(l => l !== '')
    const records = rawRecords(dir)
    const victim = records[pick % records.length]
    // A bit of the payload or the CRC: the frame stays where it is, its checksum fails.
    const at = victim.offset + (bit % 2 === 0 ? bit % 4 : 28 + (bit % (victim.size - 28)))
    flipBit(path.join(dir, victim.file), at)
    const run = await inProcess('dump', [dir, '--force'])
    const lines = run.stdout.toString().split('\n').filter(l => l !== '')
    const expected = whole.map((line, i) => i === victim.seq - 1 ? 'DAMAGE' : line)
    const got = lines.map(line => {
      const damage = (JSON.parse(line) as { damage?: { file: string, offset: number } }).damage
      return damage === undefined ? line : damage.file === victim.file && damage.offset === victim.offset ? 'DAMAGE' : `wrong mark ${line}`
    })
    fs.rmSync(dir, { recursive: true, force: true })
    return run.code === 1 && JSON.stringify(got) === JSON.stringify(expected) && run.stderr.includes(`${victim.file} at byte ${victim.offset}`)
  }), { numRuns: 25 })
  t.pass('every other record printed as served, the damaged one replaced by a mark naming its file and offset')
})

t.test('stat counts segments, records by type, checkpoints, and lists the consumers as the log would rebuild them', async t => {
  await fc.assert(fc.asyncProperty(logArbitrary, fc.nat(), async (written, at) => {
    const dir = tempDir(t)
    const log = await openLog(t, { dir, segmentBytes, retainSegments: 1000 })
    await log.consumers.create('reader')
    const checkpointAfter = at % written.length
    for (const [i, e] of written.entries()) {
      await log.append(e)
      if (i === checkpointAfter) await log.checkpoint()
    }
    await log.consumers.checkpoint('reader', 1)
    const consumers = log.consumers.list().map(({ lagSeqs, lagBytes, ...summary }) => summary)
    await log.close()
    const run = await inProcess('stat', [dir, '--json'])
    const stat = JSON.parse(run.stdout.toString()) as { lastSeq: number, checkpoint: number, recordsByType: Record<string, number>, segments: Array<{ name: string }>, whole: boolean, consumers: unknown[] }
    const expected = { insert: 0, update: 0, delete: 0, batch: 0, checkpoint: 2, consumer: 1 }
    for (const e of written) expected[e.op]++
    const text = (await inProcess('stat', [dir])).stdout.toString()
    const ok = run.code === 0 && stat.whole && stat.lastSeq === written.length + 3 && stat.checkpoint === checkpointAfter + 2 &&
      JSON.stringify(stat.recordsByType) === JSON.stringify(expected) && stat.segments.map(s => s.name).join() === segmentFiles(dir).join() &&
      JSON.stringify(stat.consumers) === JSON.stringify(consumers) && text.includes('consumers: 2\n') && text.includes('  reader: checkpoint 1 (created at 0; last checkpoint 20')
    fs.rmSync(dir, { recursive: true, force: true })
    return ok
  }), { numRuns: 10 })
  t.pass('every stat matched what was written')
})

t.test('repair asks, and then leaves the directory as serve --repair would', async t => {
  await fc.assert(fc.asyncProperty(logArbitrary, fc.nat(), async (written, pick) => {
    const dir = tempDir(t)
    await writeLog({ dir, segmentBytes }, written)
    const records = rawRecords(dir)
    const victim = records[pick % (records.length - 1)]
    flipBit(path.join(dir, victim.file), victim.offset + 30)
    const reference = copyDir(t, dir)
    const declined = await inProcess('repair', [dir], 'n')
    const unchanged = JSON.stringify(snapshot(dir)) === JSON.stringify(snapshot(reference))
    const done = await inProcess('repair', [dir], 'y')
    const whole = (await inProcess('verify', [dir])).code === 0
    // Both opened once more, so that a log left with no segment gets its new one in each.
    for (const [target, repairing] of [[reference, true], [dir, false]] as const) await (await openLog(t, { dir: target, segmentBytes, repair: repairing })).close()
    const same = JSON.stringify(snapshot(dir)) === JSON.stringify(snapshot(reference))
    fs.rmSync(dir, { recursive: true, force: true })
    fs.rmSync(reference, { recursive: true, force: true })
    return declined.code === 1 && unchanged && done.code === 0 && same && whole
  }), { numRuns: 15 })
  t.pass('declined: nothing changed; accepted: the same files as serve --repair, and verify finds it whole')
})

t.test('repair as a process reads its answer from stdin', async t => {
  const dir = tempDir(t)
  await writeLog({ dir }, fc.sample(logArbitrary, { numRuns: 1, seed: 5 })[0])
  const [name] = segmentFiles(dir)
  fs.appendFileSync(path.join(dir, name), Buffer.from([9, 9, 9]))
  const declined = vecwal(['repair', dir], 'n\n')
  t.equal(declined.code, 1)
  t.match(declined.stdout.toString(), /cut the torn tail of .* at byte \d+/)
  const done = vecwal(['repair', dir], 'y\n')
  t.equal(done.code, 0, done.stderr)
  t.equal(vecwal(['verify', dir]).code, 0, 'whole after the repair')
})
