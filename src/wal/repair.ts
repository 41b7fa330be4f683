// Cutting damage off the log without losing it: whatever leaves the log (a torn tail, or with the
// repair option everything after corruption) is kept beside it in a `.broken` file, never deleted.
// Each step names itself and its file when it fails (OpenStepError).
import path from 'node:path'
import { OpenStepError } from '../errors.js'
import type { FileIO } from './file-io.js'

const COPY_CHUNK_BYTES = 1024 * 1024

async function step<T> (description: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (err) {
    throw new OpenStepError(description, err)
  }
}

async function freeName (io: FileIO, dir: string, wanted: string): Promise<string> {
  const taken = new Set(await step(`list ${dir}`, async () => await io.readdir(dir)))
  if (!taken.has(wanted)) return wanted
  for (let n = 1; ; n++) {
    const name = `${wanted}.${n}`
    if (!taken.has(name)) return name
  }
}

/**
 * Copies bytes [offset, end of file) of a segment to `<segment>.at-<offset>.broken` and makes the
 * copy and its directory entry durable. Returns the copy's name. A copy that fails part way is
 * removed, so that no empty or partial `.broken` file is left to pass for a whole one.
 */
export async function copyTail (io: FileIO, dir: string, name: string, offset: number): Promise<string> {
  const brokenName = await freeName(io, dir, `${name}.at-${offset}.broken`)
  const brokenPath = path.join(dir, brokenName)
  const fd = await step(`open ${name} to copy its tail`, async () => await io.openRead(path.join(dir, name)))
  try {
    const out = await step(`create ${brokenName}`, async () => await io.create(brokenPath, 0o600))
    try {
      await step(`copy bytes from ${offset} of ${name} to ${brokenName}`, async () => {
        const size = await io.size(fd)
        const chunk = Buffer.allocUnsafe(COPY_CHUNK_BYTES)
        for (let at = offset; at < size;) {
          const got = await io.read(fd, chunk, 0, Math.min(chunk.length, size - at), at)
          if (got === 0) break
          await io.writeAll(out, [chunk.subarray(0, got)], at - offset)
          at += got
        }
        await io.fdatasync(out)
      })
    } catch (err) {
      await io.close(out).catch(() => {})
      await io.unlink(brokenPath).catch(() => {})
      throw err
    }
    await step(`close ${brokenName}`, async () => { await io.close(out) })
    await step(`fsync ${dir} for ${brokenName}`, async () => { await io.fsyncDir(dir) })
  } finally {
    await io.close(fd)
  }
  return brokenName
}

/** Truncates a segment at `offset` and makes that durable. */
export async function truncateSegment (io: FileIO, dir: string, name: string, offset: number): Promise<void> {
  const fd = await step(`open ${name} to truncate it`, async () => await io.openWrite(path.join(dir, name)))
  try {
    await step(`truncate ${name} at byte ${offset}`, async () => {
      await io.ftruncate(fd, offset)
      await io.fdatasync(fd)
    })
  } finally {
    await io.close(fd)
  }
}

/** Renames a whole segment to `<segment>.broken` so that it is no longer part of the log. */
export async function setSegmentAside (io: FileIO, dir: string, name: string): Promise<string> {
  const brokenName = await freeName(io, dir, `${name}.broken`)
  await step(`rename ${name} to ${brokenName}`, async () => { await io.rename(path.join(dir, name), path.join(dir, brokenName)) })
  await step(`fsync ${dir} for ${brokenName}`, async () => { await io.fsyncDir(dir) })
  return brokenName
}
