// Damage that a crash cannot explain (a bad record before the tail, damage in a sealed segment, a
// damaged header, a seq gap) refuses to open, naming the file and the byte offset; the repair
// option opens anyway, keeping the valid prefix and setting the rest aside, never deleting it.
import fs from 'node:fs'
import path from 'node:path'
import { unpackMultiple } from 'msgpackr'
import t, { type Test as Tap } from 'tap'
import { CorruptLogError } from '../../src/errors.js'
import { encodeSegmentHeader, RecordType, writeRecord, RECORD_HEADER_BYTES } from '../../src/wal/format.js'
import { encodeEntry } from '../../src/payload/payload.js'
import {
  bodyOf, brokenFiles, collect, copyDir, entries, entry, flipBit, openFailure, openLog, rawRecords, segmentFiles,
  storedForm, tempDir, writeLog, type RawRecord, type TeardownTarget
} from '../helpers/wal.js'

const segmentBytes = 500
const written = entries(15)

/** A closed log of three segments or more (sealed ones, then the active one) and its records on disk. */
async function template (t: TeardownTarget): Promise<{ dir: string, files: string[], records: RawRecord[] }> {
  const dir = tempDir(t)
  await writeLog({ dir, segmentBytes }, written)
  const files = segmentFiles(dir)
  if (files.length < 3) throw new Error('the template needs three segments')
  return { dir, files, records: rawRecords(dir) }
}

function inFile (records: RawRecord[], file: string): RawRecord[] {
  return records.filter(r => r.file === file)
}

/** Every file of a directory and its bytes; LOCK aside, which names whichever open took the lock last. */
function snapshot (dir: string): Map<string, Buffer> {
  return new Map(fs.readdirSync(dir).filter(name => name !== 'LOCK').map(name => [name, fs.readFileSync(path.join(dir, name))]))
}

/** Opening refuses with exactly this file and offset, and changes nothing on disk. */
async function expectRefusal (t: Tap, dir: string, file: string, offset: number, reason: RegExp): Promise<void> {
  const before = snapshot(dir)
  const err = await openFailure({ dir, segmentBytes })
  t.same(snapshot(dir), before, 'refusing to open changed nothing on disk')
  t.type(err, CorruptLogError)
  if (!(err instanceof CorruptLogError)) return
  t.equal(err.code, 'WAL_CORRUPT')
  t.equal(err.file, file, 'the error names the file')
  t.equal(err.offset, offset, 'the error names the byte offset')
  t.match(err.reason, reason)
  t.ok(err.message.includes(file) && err.message.includes(String(offset)), err.message)
}

/** With repair, the log holds exactly the records before `seq` and goes on from there. */
async function expectRepairedPrefix (t: Tap, dir: string, seq: number): Promise<void> {
  const log = await openLog(t, { dir, segmentBytes, repair: true })
  t.equal(log.lastSeq, seq - 1, `repair keeps seqs 1 to ${seq - 1}`)
  t.same((await collect(log.read({ after: 0 }).records)).map(bodyOf), written.slice(0, seq - 1).map(storedForm))
  t.equal(await log.append(entry(99)), seq, 'the next append continues the kept prefix')
  await log.close()
  const reopened = await openLog(t, { dir, segmentBytes })
  t.same((await collect(reopened.read({ after: 0 }).records)).map(bodyOf), [...written.slice(0, seq - 1), entry(99)].map(storedForm), 'and the repaired log reopens without repair')
  await reopened.close()
}

function bytesOf (file: string, from = 0): Buffer {
  return fs.readFileSync(file).subarray(from)
}

t.test('a flipped bit before the last record of the active segment', async t => {
  const { dir, files, records } = await template(t)
  const active = files.at(-1) ?? ''
  const inActive = inFile(records, active)
  t.ok(inActive.length >= 2, 'the active segment holds two records or more')
  const victim = inActive[inActive.length - 2]
  flipBit(path.join(dir, active), victim.offset + victim.size - 2, 4)
  const original = bytesOf(path.join(dir, active), victim.offset)

  await expectRefusal(t, copyDir(t, dir), active, victim.offset, /checksum.*whole record follows/)
  await expectRepairedPrefix(t, dir, victim.seq)
  t.same(brokenFiles(dir), [`${active}.at-${victim.offset}.broken`])
  t.ok(bytesOf(path.join(dir, `${active}.at-${victim.offset}.broken`)).equals(original), 'the bytes from the damage on are kept aside')
})

t.test('a flipped bit in a sealed segment, even in its last record', async t => {
  for (const which of ['first', 'last'] as const) {
    const { dir, files, records } = await template(t)
    const sealed = files[1]
    const inSealed = inFile(records, sealed)
    const victim = which === 'first' ? inSealed[0] : inSealed[inSealed.length - 1]
    flipBit(path.join(dir, sealed), victim.offset + RECORD_HEADER_BYTES + 1)
    const damagedTail = bytesOf(path.join(dir, sealed), victim.offset)
    const later = files.slice(2).map(f => bytesOf(path.join(dir, f)))

    await expectRefusal(t, copyDir(t, dir), sealed, victim.offset, /checksum/)
    await expectRepairedPrefix(t, dir, victim.seq)
    const aside = brokenFiles(dir)
    const cut = which === 'first' ? `${sealed}.broken` : `${sealed}.at-${victim.offset}.broken`
    t.same(aside, [cut, ...files.slice(2).map(f => `${f}.broken`)].sort(), `${which} record: the rest of the log is set aside`)
    t.ok(bytesOf(path.join(dir, cut), which === 'first' ? victim.offset : 0).equals(damagedTail), 'the damaged bytes are kept')
    t.same(files.slice(2).map(f => bytesOf(path.join(dir, `${f}.broken`))), later, 'later segments are kept whole')
  }
})

t.test('a damaged segment header', async t => {
  const { dir, files, records } = await template(t)
  flipBit(path.join(dir, files[1]), 9)
  await expectRefusal(t, copyDir(t, dir), files[1], 0, /header checksum/)
  await expectRepairedPrefix(t, dir, inFile(records, files[1])[0].seq)
  t.same(brokenFiles(dir), files.slice(1).map(f => `${f}.broken`))
})

t.test('a damaged header of the newest segment, which holds records', async t => {
  const { dir, files, records } = await template(t)
  const active = files.at(-1) ?? ''
  flipBit(path.join(dir, active), 0)
  await expectRefusal(t, copyDir(t, dir), active, 0, /header checksum/)
  await expectRepairedPrefix(t, dir, inFile(records, active)[0].seq)
})

t.test('a missing segment: a seq gap', async t => {
  const { dir, files, records } = await template(t)
  fs.rmSync(path.join(dir, files[1]))
  await expectRefusal(t, copyDir(t, dir), files[2], 0, /does not follow/)
  await expectRepairedPrefix(t, dir, inFile(records, files[1])[0].seq)
  t.ok(brokenFiles(dir).includes(`${files[2]}.broken`), 'the segment after the gap is kept aside')
})

t.test('a header whose base seq does not match the file name', async t => {
  const { dir, files, records } = await template(t)
  const active = files.at(-1) ?? ''
  const fd = fs.openSync(path.join(dir, active), 'r+')
  fs.writeSync(fd, encodeSegmentHeader(999), 0, 24, 0)
  fs.closeSync(fd)
  await expectRefusal(t, copyDir(t, dir), active, 0, /does not match the file name/)
  await expectRepairedPrefix(t, dir, inFile(records, active)[0].seq)
})

t.test('a whole record out of seq order at the very end is corruption, not a torn tail', async t => {
  const { dir, files, records } = await template(t)
  const active = files.at(-1) ?? ''
  const last = records[records.length - 1]
  const payload = encodeEntry(entry(50))
  const record = Buffer.alloc(RECORD_HEADER_BYTES + payload.bytes.length)
  writeRecord(record, 0, last.seq + 2, Date.now(), RecordType.insert, payload.bytes)
  fs.appendFileSync(path.join(dir, active), record)
  await expectRefusal(t, copyDir(t, dir), active, last.offset + last.size, new RegExp(`seq ${last.seq + 2} where ${last.seq + 1} was expected`))
  await expectRepairedPrefix(t, dir, last.seq + 1)
})

t.test('a CRC-valid record whose body is not of its type: every read form stops there, naming it', async t => {
  const { dir, records } = await template(t)
  // Only a bug or deliberate tampering makes one: the frame says update, its body says insert.
  const victim = records.find(r => r.seq === 5)
  if (victim === undefined) throw new Error('seq 5 is not on disk')
  const file = path.join(dir, victim.file)
  const bytes = fs.readFileSync(file)
  const timestamp = Number(bytes.readBigUInt64LE(victim.offset + 16))
  const payload = Buffer.from(bytes.subarray(victim.offset + RECORD_HEADER_BYTES, victim.offset + victim.size))
  writeRecord(bytes, victim.offset, victim.seq, timestamp, RecordType.update, payload)
  fs.writeFileSync(file, bytes)

  const log = await openLog(t, { dir, segmentBytes })
  for (const form of ['records', 'ndjson', 'msgpack'] as const) {
    const items: unknown[] = []
    const read = (async () => { for await (const item of log.read({ after: 0 })[form]) items.push(item) })()
    await t.rejects(read, { code: 'WAL_CORRUPT', file: victim.file, offset: victim.offset, reason: 'record body does not match its type' }, `${form}: the read stops at seq 5, naming it`)
    const seqs = form === 'records'
      ? (items as Array<{ seq: number }>).map(r => r.seq)
      : form === 'ndjson'
        ? Buffer.concat(items as Buffer[]).toString('utf8').split('\n').filter(line => line !== '').map(line => (JSON.parse(line) as { seq: number }).seq)
        : (unpackMultiple(Buffer.concat(items as Buffer[])) as Array<{ seq: number }>).map(r => r.seq)
    t.same(seqs, [1, 2, 3, 4], `${form}: exactly the records before it were served`)
  }
})
