// Reading a segment's frames a chunk at a time: a record bigger than a chunk is read whole, and the
// buffer grown for it goes back to the chunk size after it, so a reader holds one big record only
// while it reads that record.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { nodeFileIO, type FileIO } from '../../src/wal/file-io.js'
import { writeRecord, RECORD_HEADER_BYTES } from '../../src/wal/format.js'
import { FrameReader } from '../../src/wal/frame-reader.js'
import { encodeEntry } from '../../src/payload/payload.js'
import { tempDir } from '../helpers/wal.js'

const CHUNK = 4096

t.test('a record bigger than a chunk is read whole, and the buffer shrinks back after it', async t => {
  // Small records, one big one, then small ones enough to fill several chunks.
  const payloads = [8, 8, 4000, ...new Array(400).fill(8)].map((values, i) => encodeEntry({ op: 'insert', id: `r${i}`, vector: new Array(values).fill(i) }).bytes)
  const file = path.join(tempDir(t), 'frames.bin')
  const bytes = Buffer.alloc(payloads.reduce((sum, p) => sum + RECORD_HEADER_BYTES + p.length, 0))
  let at = 0
  payloads.forEach((payload, i) => { at = writeRecord(bytes, at, i + 1, 1764000000000, 1, payload) })
  fs.writeFileSync(file, bytes)

  const asked: number[] = []
  const io: FileIO = { ...nodeFileIO, read: async (fd, into, offset, length, position) => { asked.push(length); return await nodeFileIO.read(fd, into, offset, length, position) } }
  const fd = await io.openRead(file)
  try {
    const frames = new FrameReader(io, fd, 0, bytes.length, CHUNK)
    const seqs: number[] = []
    for (;;) {
      const step = frames.buffered() ?? await frames.next()
      if (step.kind !== 'record') break
      seqs.push(step.frame.seq)
      if (step.frame.seq === 3) t.ok(step.frame.size > CHUNK, `the big record (${step.frame.size} bytes) came whole`)
    }
    t.same(seqs, payloads.map((_, i) => i + 1))
    t.ok(asked.some(length => length > CHUNK), 'one read was bigger than a chunk, for the big record')
    const after = asked.slice(asked.findIndex(length => length > CHUNK) + 1)
    t.ok(after.length > 1 && after.every(length => length <= CHUNK), `the ${after.length} reads after it asked a chunk at most (${Math.max(...after)} bytes)`)
  } finally {
    await io.close(fd)
  }
})
