// Cutting damage off the log without losing it: whatever leaves the log (a torn tail, or with the
// repair option everything after corruption) is kept beside it in a `.broken` file, never deleted.
import path from 'node:path'
import type { FileIO } from './file-io.js'

const COPY_CHUNK_BYTES = 1024 * 1024

async function freeName (io: FileIO, dir: string, wanted: string): Promise<string> {
  const taken = new Set(await io.readdir(dir))
  if (!taken.has(wanted)) return wanted
  for (let n = 1; ; n++) {
    const name = `${wanted}.${n}`
    if (!taken.has(name)) return name
  }
}

/**
 * Copies bytes [offset, end of file) of a segment to `<segment>.at-<offset>.broken`, makes the copy
 * durable, then truncates the segment at `offset` and makes that durable. Returns the copy's name.
 */
export async function cutSegmentAt (io: FileIO, dir: string, name: string, offset: number): Promise<string> {
  const segmentPath = path.join(dir, name)
  const brokenName = await freeName(io, dir, `${name}.at-${offset}.broken`)
  const fd = await io.openWrite(segmentPath)
  try {
    const size = await io.size(fd)
    const out = await io.create(path.join(dir, brokenName), 0o600)
    try {
      const chunk = Buffer.allocUnsafe(COPY_CHUNK_BYTES)
      for (let at = offset; at < size;) {
        const got = await io.read(fd, chunk, 0, Math.min(chunk.length, size - at), at)
        if (got === 0) break
        await io.writeAll(out, chunk.subarray(0, got), at - offset)
        at += got
      }
      await io.fdatasync(out)
    } finally {
      await io.close(out)
    }
    await io.fsyncDir(dir)
    await io.ftruncate(fd, offset)
    await io.fdatasync(fd)
  } finally {
    await io.close(fd)
  }
  return brokenName
}

/** Renames a whole segment to `<segment>.broken` so that it is no longer part of the log. */
export async function setSegmentAside (io: FileIO, dir: string, name: string): Promise<string> {
  const brokenName = await freeName(io, dir, `${name}.broken`)
  await io.rename(path.join(dir, name), path.join(dir, brokenName))
  await io.fsyncDir(dir)
  return brokenName
}
