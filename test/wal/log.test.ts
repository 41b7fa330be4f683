// The engine's API, one behaviour at a time: checkpoints, reads, the write queue, the directory lock,
// retention, status, transactions, durability 'none', oversized records, file modes, closing.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import fc from 'fast-check'
import t from 'tap'
import { ownChild } from '../../scripts/children.js'
import type { EntryInput } from '../../src/entry.js'
import { SEGMENT_HEADER_BYTES } from '../../src/wal/format.js'
import { WriteAheadLog } from '../../src/wal/log.js'
import { OPEN_TRANSACTION_BYTES } from '../../src/transactions.js'
import type { WalLogger } from '../../src/wal/logger.js'
import { lockHeldElsewhere } from '../helpers/lock-probe.js'
import {
  bodyOf, brokenFiles, collect, entries, entry, openFailure, openLog, rawRecords, RecordingIO, segmentFiles,
  storedForm, tempDir, writeLog
} from '../helpers/wal.js'

const SEG = /\.seg$/

t.test('checkpoints', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir })
  for (const e of entries(10)) await log.append(e)

  await t.rejects(log.checkpoint(11), { code: 'WAL_CHECKPOINT_AHEAD' }, 'a checkpoint past the last seq is refused')
  const { checkpoint, seq } = await log.checkpoint(5)
  t.same([checkpoint, seq], [5, 11], 'the checkpoint is a record of its own')
  await t.rejects(log.checkpoint(4), { code: 'WAL_CHECKPOINT_BACKWARDS' }, 'a checkpoint may not move back')
  t.same((await log.checkpoint(5)).checkpoint, 5, 'repeating the same checkpoint is allowed')

  // Two at once: the later one cannot be overtaken, and a lower one behind them is refused at once.
  const a = log.checkpoint(7)
  const b = log.checkpoint(9)
  await t.rejects(log.checkpoint(8), { code: 'WAL_CHECKPOINT_BACKWARDS' }, 'a checkpoint below one still in flight is refused')
  await Promise.all([a, b])
  t.equal(log.checkpointSeq, 9)
  t.equal((await log.checkpoint()).checkpoint, log.lastSeq - 1, 'by default, the checkpoint is the last seq')
  const last = log.checkpointSeq
  await log.close()
  const reopened = await openLog(t, { dir })
  t.equal(reopened.checkpointSeq, last, 'the last checkpoint survives reopening')
})

t.test('reading', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir, segmentBytes: 300 })
  const empty = log.read()
  t.same([empty.lastSeq, empty.checkpoint, (await collect(empty.records)).length], [0, 0, 0], 'an empty log reads as empty')

  const written = entries(20)
  for (const e of written) await log.append(e)
  await log.checkpoint(8)

  const fromCheckpoint = log.read()
  t.same([fromCheckpoint.checkpoint, fromCheckpoint.lastSeq], [8, 21])
  t.same((await collect(fromCheckpoint.records)).map(bodyOf), written.slice(8).map(storedForm), 'by default, from the checkpoint on, checkpoint records skipped')
  const withCheckpoints = await collect(log.read({ after: 18, includeCheckpoints: true }).records)
  t.same(withCheckpoints.map(r => [r.seq, r.op]), [[19, written[18].op], [20, written[19].op], [21, 'checkpoint']], 'includeCheckpoints')
  t.same((await collect(log.read({ after: 9, limit: 3 }).records)).map(r => r.seq), [10, 11, 12], 'limit')
  t.same((await collect(log.read({ after: 21 }).records)), [], 'reading after the last seq yields nothing')
  t.throws(() => log.read({ after: 22 }), { code: 'WAL_RANGE_AHEAD' }, 'after past the last seq is refused')

  const oldest = log.status().segments[0].firstSeq
  t.ok(oldest > 1, `retention deleted seqs 1 to ${oldest - 1}`)
  t.throws(() => log.read({ after: oldest - 2 }), { code: 'WAL_RANGE_GONE' }, 'a range retention deleted is refused')
  t.equal((await collect(log.read({ after: oldest - 1, limit: 1 }).records))[0].seq, oldest, 'the oldest retained seq is still readable')

  const records = await collect(log.read({ after: 8 }).records)
  t.ok(records.every(r => r.timestamp > Date.now() - 60_000 && r.timestamp <= Date.now()), 'records carry their timestamp in ms')
  const vectors = records.flatMap(r => 'vector' in r ? [r.vector] : [])
  t.ok(vectors.length > 0 && vectors.every(v => v instanceof Float32Array), 'vectors come back as 32-bit floats')
})

t.test('a read whose segments retention deletes under it stops with WAL_RANGE_GONE', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir, segmentBytes: 200 })
  for (const e of entries(30)) await log.append(e)
  const iterator = log.read({ after: 0 }).records[Symbol.asyncIterator]()
  t.equal((await iterator.next()).value?.seq, 1)
  await log.checkpoint()
  const rest = (async () => { while ((await iterator.next()).done !== true); })()
  await t.rejects(rest, { code: 'WAL_RANGE_GONE' })
})

t.test('a full write queue refuses at once', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir, queueLimitBytes: 100 })
  const big: EntryInput = { op: 'insert', id: 'big', vector: new Array(100).fill(1) }
  const first = log.append(big)
  t.ok(log.status().queuedBytes > 100, 'an empty queue takes even a record larger than its limit')
  await t.rejects(log.append(entry(1)), { code: 'WAL_QUEUE_FULL' }, 'the next append is refused while it waits')

  const txId = log.transactions.begin()
  log.transactions.stage(txId, [entry(2)])
  await t.rejects(log.transactions.commit(txId), { code: 'WAL_QUEUE_FULL' })
  t.equal(log.transactions.count, 1, 'a commit refused by a full queue leaves the transaction open to retry')
  t.equal(await first, 1)
  t.equal(log.status().queuedBytes, 0, 'the queue drains')
  t.same(await log.transactions.commit(txId), { seq: 2, count: 1, replayed: false }, 'the retried commit goes through')
  t.equal(await log.append(entry(3)), 3)
})

t.test('the directory lock', async t => {
  t.test('a second open in the same process is refused, and leaves the first one its lock', async t => {
    const dir = tempDir(t)
    const log = await WriteAheadLog.open({ dir })
    t.match(await openFailure({ dir }), { code: 'WAL_LOCKED' })
    t.match(await openFailure({ dir }), { code: 'WAL_LOCKED' }, 'a refusal does not drop the holder\'s lock')
    t.ok(lockHeldElsewhere(dir), 'another process still sees the lock held')
    t.equal(log.state, 'ok')
    await log.close()
    t.notOk(lockHeldElsewhere(dir), 'close releases the lock')
    t.ok(fs.existsSync(path.join(dir, 'LOCK')), 'and leaves the LOCK file in place')
    const again = await openLog(t, { dir })
    t.equal(again.state, 'ok', 'and the directory opens again')
  })

  t.test('what a LOCK file says is never trusted: any content, naming any process, neither blocks nor takes an open', async t => {
    const holder = ownChild(spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' }))
    t.teardown(() => { holder.kill() })
    const live = holder.pid ?? 0
    const stat = fs.readFileSync(`/proc/${live}/stat`, 'utf8')
    const liveStart = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
    const gone = spawnSync(process.execPath, ['-e', '']).pid ?? 0
    const content = fc.oneof(
      fc.constantFrom(live, gone, process.pid, 1).map(pid => JSON.stringify({ pid, start: pid === live ? liveStart : '' })),
      fc.record({ pid: fc.integer({ min: 1, max: 2 ** 22 }), host: fc.string(), started: fc.string() }).map(h => JSON.stringify(h)),
      fc.string()
    )
    await fc.assert(fc.asyncProperty(content, async text => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vecwal-lock-'))
      try {
        fs.writeFileSync(path.join(dir, 'LOCK'), text)
        const log = await WriteAheadLog.open({ dir })
        const recorded = JSON.parse(fs.readFileSync(path.join(dir, 'LOCK'), 'utf8'))
        t.same(recorded, { pid: process.pid, host: os.hostname(), started: recorded.started }, 'the LOCK names its holder')
        t.match(await openFailure({ dir }), { code: 'WAL_LOCKED', message: new RegExp(`LOCK records pid ${process.pid} on `) }, 'while it is held, every other open is refused')
        await log.close()
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }), { numRuns: 30 })
  })
})

t.test('retainSegments keeps the newest sealed segments a checkpoint covers', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir, segmentBytes: 200, retainSegments: 2 })
  for (const e of entries(30)) await log.append(e)
  const before = log.status().segments.length
  await log.checkpoint()
  const after = log.status().segments
  t.ok(before > 5, `${before} segments before the checkpoint`)
  t.equal(after.length, 3, 'two sealed segments and the active one remain')
  t.same(segmentFiles(dir), after.map(s => s.name), 'and only they remain on disk')
  await log.close()

  const reopened = await openLog(t, { dir, segmentBytes: 200, retainSegments: 0 })
  const held = reopened.status().segments
  t.same(held.map(s => s.lastSeq >= 30 && s.firstSeq <= 30), [true, false], 'opening applies retention too (a crash may have come before the deletions), up to the segment holding the last entry record')
})

t.test('status', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir, segmentBytes: 300 })
  for (const e of entries(12)) await log.append(e)
  await log.checkpoint(3)
  const txId = log.transactions.begin()
  log.transactions.stage(txId, [entry(1)])
  const status = log.status()
  t.match(status, { lastSeq: 13, checkpoint: 3, state: 'ok', durability: 'fsync', queuedBytes: 0, openTransactions: 1 })
  t.same(status.segments.map(s => s.name), segmentFiles(dir), 'every segment on disk, oldest first')
  t.same(status.segments.map(s => s.bytes), segmentFiles(dir).map(f => fs.statSync(path.join(dir, f)).size), 'with its size')
  t.equal(status.bytes, status.segments.reduce((sum, s) => sum + s.bytes, 0))
  const onDisk = rawRecords(dir)
  t.same(status.segments.map(s => [s.firstSeq, s.lastSeq]), status.segments.map(s => {
    const seqs = onDisk.filter(r => r.file === s.name).map(r => r.seq)
    return [seqs[0], seqs.at(-1)]
  }), 'and its first and last seq')
  await log.close()
  t.equal(log.status().state, 'closed')
})

t.test('transactions', async t => {
  const dir = tempDir(t)
  // Room for two open transactions and 1,500 staged bytes.
  const log = await openLog(t, { dir, transactions: { maxBytes: 1_000, maxTotalBytes: 2 * OPEN_TRANSACTION_BYTES + 1_500, idleMs: 400 } })
  const tx = log.transactions
  const sized = (values: number): EntryInput => ({ op: 'insert', id: 'x', vector: new Array(values).fill(1) })

  t.test('limits', async t => {
    const a = tx.begin()
    t.throws(() => tx.stage(a, [sized(300)]), { code: 'WAL_TX_TOO_LARGE' }, 'one transaction may not stage past maxBytes')
    t.equal(tx.stage(a, [sized(150)]), 1, 'a refused stage stages nothing')
    t.throws(() => tx.stage(a, [sized(50), sized(100)]), { code: 'WAL_TX_TOO_LARGE' })
    t.equal(tx.stage(a, [sized(10)]), 2, 'all or nothing')
    const b = tx.begin()
    t.equal(tx.stage(b, [sized(150)]), 1)
    t.throws(() => tx.stage(b, [sized(30)]), { code: 'WAL_TX_MEMORY_FULL' }, 'all transactions may not stage past maxTotalBytes')
    tx.abort(a)
    t.equal(tx.stage(b, [sized(30)]), 2, 'aborting frees what the transaction held')
    tx.abort(b)
    t.equal(tx.stagedBytes, 0)
  })

  t.test('empty transactions count against maxTotalBytes too', async t => {
    const opened: string[] = []
    // Each holds OPEN_TRANSACTION_BYTES: two, and a little staged, fill the room.
    for (let i = 0; i < 2; i++) opened.push(tx.begin())
    t.equal(tx.stage(opened[0], [sized(300 - 100)]), 1)
    t.throws(() => tx.begin(), { code: 'WAL_TX_MEMORY_FULL' }, 'no room for a third, even empty')
    tx.abort(opened[0])
    opened[0] = tx.begin()
    t.pass('aborting one makes room for another')
    for (const txId of opened) tx.abort(txId)
    t.equal(tx.stagedBytes, 0)
  })

  t.test('empty and unknown transactions', async t => {
    const a = tx.begin()
    await t.rejects(tx.commit(a), { code: 'WAL_TX_EMPTY' })
    tx.stage(a, [entry(1)])
    t.equal((await tx.commit(a)).count, 1, 'an empty commit left the transaction open')
    await t.rejects(tx.commit(a), { code: 'WAL_TX_NOT_FOUND' }, 'a committed transaction is gone')
    t.throws(() => tx.stage('no-such-tx', [entry(1)]), { code: 'WAL_TX_NOT_FOUND' })
    t.throws(() => tx.abort('no-such-tx'), { code: 'WAL_TX_NOT_FOUND' })
  })

  t.test('idle expiry', async t => {
    const a = tx.begin()
    // Gaps well inside the idle time, adding up to well past it: wide margins for a loaded machine.
    for (let i = 0; i < 7; i++) {
      await sleep(100)
      tx.stage(a, [entry(i)])
    }
    t.equal(tx.count, 1, 'staging keeps a transaction alive past its idle time')
    await sleep(1_000)
    t.equal(tx.count, 0, 'an idle transaction is aborted')
    t.equal(tx.stagedBytes, 0, 'and frees its memory')
    await t.rejects(tx.commit(a), { code: 'WAL_TX_NOT_FOUND' })
  })

  t.test('staged vectors are copied', async t => {
    const vector = [1, 2, 3]
    const a = tx.begin()
    tx.stage(a, [{ op: 'insert', id: 'copied', vector }])
    vector[0] = 99
    const { seq } = await tx.commit(a)
    const [record] = await collect(log.read({ after: seq - 1 }).records)
    t.same(bodyOf(record), { op: 'batch', entries: [{ op: 'insert', id: 'copied', vector: [1, 2, 3] }], txId: a })
  })
})

t.test('durability none acknowledges without fsync and says so', async t => {
  const dir = tempDir(t)
  const io = new RecordingIO()
  const warnings: object[] = []
  const logger: WalLogger = { info () {}, error () {}, warn (fields) { warnings.push(fields) } }
  const log = await openLog(t, { dir, io, durability: 'none', logger })
  t.same(warnings, [{ durability: 'none' }], 'opening warns')
  const syncs = io.completed('fdatasync', SEG)
  const written = entries(50)
  await Promise.all(written.map(async e => await log.append(e)))
  t.equal(io.completed('fdatasync', SEG), syncs, 'no fdatasync for records')
  t.equal(log.status().durability, 'none')
  t.same((await collect(log.read({ after: 0 }).records)).map(bodyOf), written.map(storedForm))
})

t.test('a record larger than segmentBytes gets a segment of its own', async t => {
  const dir = tempDir(t)
  const log = await openLog(t, { dir, segmentBytes: 1_000 })
  await log.append(entry(0))
  const hugeSeq = await log.append({ op: 'insert', id: 'huge', vector: new Array(1_000).fill(2) })
  await log.append(entry(1))
  await log.close()
  const onDisk = rawRecords(dir)
  const huge = onDisk.find(r => r.seq === hugeSeq)
  t.same(onDisk.filter(r => r.file === huge?.file).map(r => r.seq), [hugeSeq], 'the huge record is alone in its segment')
  t.equal(huge?.offset, SEGMENT_HEADER_BYTES)
  t.equal(new Set(onDisk.map(r => r.file)).size, 3, 'the records before and after it are in other segments')
  const reopened = await openLog(t, { dir, segmentBytes: 1_000 })
  t.equal(reopened.lastSeq, 3)
})

t.test('file modes', async t => {
  const root = tempDir(t)
  const dir = path.join(root, 'data', 'wal')
  await writeLog({ dir, segmentBytes: 200 }, entries(10))
  const last = rawRecords(dir).at(-1)
  fs.truncateSync(path.join(dir, last?.file ?? ''), (last?.offset ?? 0) + 5)
  const log = await openLog(t, { dir })
  const mode = (file: string): number => fs.statSync(file).mode & 0o777
  t.equal(mode(dir), 0o700, 'the data directory is 0700')
  t.same(segmentFiles(dir).map(f => mode(path.join(dir, f))), segmentFiles(dir).map(() => 0o600), 'segments are 0600')
  t.same(brokenFiles(dir).map(f => mode(path.join(dir, f))), [0o600], '.broken files are 0600')
  t.equal(mode(path.join(dir, 'LOCK')), 0o600, 'the LOCK file is 0600')
  await log.close()
})

t.test('closing', async t => {
  const dir = tempDir(t)
  const log = await WriteAheadLog.open({ dir })
  const pending = entries(50).map(async e => await log.append(e))
  const txId = log.transactions.begin()
  log.transactions.stage(txId, [entry(1)])
  await log.close()
  t.equal((await Promise.all(pending)).length, 50, 'close waits until every queued append is durable')
  t.equal(log.transactions.count, 0, 'and drops open transactions')
  await t.rejects(log.append(entry(1)), { code: 'WAL_CLOSED' })
  await t.rejects(log.close(), { code: 'WAL_CLOSED' })
  const reopened = await openLog(t, { dir })
  t.equal(reopened.lastSeq, 50)
})

t.test('the observer hears of every commit and fsync', async t => {
  const dir = tempDir(t)
  let records = 0
  let bytes = 0
  let syncs = 0
  const log = await openLog(t, {
    dir,
    observer: {
      committed (n, b) { records += n; bytes += b },
      synced (seconds) { if (seconds >= 0) syncs++ }
    }
  })
  await Promise.all(entries(100).map(async e => await log.append(e)))
  t.equal(records, 100)
  t.equal(bytes, log.status().bytes - SEGMENT_HEADER_BYTES, 'committed bytes are the records\' bytes on disk')
  t.ok(syncs >= 1 && syncs < 100, `${syncs} fsyncs reported`)
})

t.test('an entry that would not read back as given is refused, and nothing is written', async t => {
  const log = await openLog(t, { dir: tempDir(t) })
  const bad: Array<[string, EntryInput]> = [
    ['NaN', { op: 'insert', id: 'a', vector: [1, NaN] }],
    ['Infinity in a Float32Array', { op: 'update', id: 'a', vector: Float32Array.from([Infinity]) }],
    ['past the float32 range', { op: 'insert', id: 'a', vector: [3.5e38] }],
    ['a lone surrogate in the id', { op: 'delete', id: 'a\ud800' }],
    ['a lone surrogate in a metadata key', { op: 'insert', id: 'a', vector: [1], metadata: { '\udc00': 'v' } }],
    ['a lone surrogate in a metadata value', { op: 'insert', id: 'a', vector: [1], metadata: { k: '\ud83d' } }]
  ]
  for (const [label, entry] of bad) {
    await t.rejects(log.append(entry), { code: 'WAL_INVALID_ENTRY' }, label)
    await t.rejects(log.appendBatch([{ op: 'delete', id: 'fine' }, entry]), { code: 'WAL_INVALID_ENTRY' }, `${label}, in a batch`)
    const txId = log.transactions.begin()
    t.throws(() => log.transactions.stage(txId, [entry]), { code: 'WAL_INVALID_ENTRY' }, `${label}, staged`)
    log.transactions.abort(txId)
  }
  t.equal(log.lastSeq, 0, 'nothing was written')
  t.equal(await log.append({ op: 'insert', id: 'a pair 🎉', vector: [1, -0, 3.4028234663852886e38], metadata: { '🔑': 'ok' } }), 1, 'well-formed pairs and the float32 extremes are fine')
})
