// The file layer's one write call, writev of many chunks: whatever the chunks (empty ones, more of
// them than one pwritev takes, IOV_MAX being 1024 on Linux), the file holds exactly their bytes,
// back to back, where they were written.
import fs from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import { nodeFileIO } from '../../src/wal/file-io.js'
import { chunksLength, tempDir } from '../helpers/wal.js'

t.test('writeAll writes every chunk back to back at its position', async t => {
  const dir = tempDir(t)
  let file = 0
  let pastIovMax = 0
  const chunk = fc.uint8Array({ maxLength: 64 })
  await fc.assert(fc.asyncProperty(
    fc.oneof(fc.array(chunk, { maxLength: 20 }), fc.array(chunk, { minLength: 1025, maxLength: 3000 })),
    fc.nat(4096),
    async (chunks, position) => {
      if (chunks.length > 1024) pastIovMax++
      const name = path.join(dir, `f${file++}`)
      const fd = await nodeFileIO.create(name, 0o600)
      try {
        await nodeFileIO.writeAll(fd, chunks, position)
      } finally {
        await nodeFileIO.close(fd)
      }
      const bytes = fs.readFileSync(name)
      const expected = Buffer.concat(chunks)
      if (chunksLength(chunks) !== expected.length) throw new Error('chunksLength is not the bytes the chunks hold')
      if (bytes.length !== (expected.length === 0 ? 0 : position + expected.length)) throw new Error(`the file holds ${bytes.length} bytes for ${expected.length} at ${position}`)
      if (!bytes.subarray(position).equals(expected)) throw new Error('the bytes differ from the chunks\'')
      return true
    }), { numRuns: 40 })
  t.ok(pastIovMax > 0, `${pastIovMax} of the writes had more chunks than one writev takes`)
})
