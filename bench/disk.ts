// What the disk and the page cache give with no log code at all: the references of P2b (synced
// writes), P3 and P4 (reading segment files).
import fs from 'node:fs'
import path from 'node:path'

export interface Rate {
  bytes: number
  seconds: number
}

export function bytesPerSecond (rate: Rate): number {
  return rate.bytes / rate.seconds
}

/**
 * Appends `chunkBytes` at a time to a new file in `dir`, each write followed by fdatasync, for
 * about `seconds`: the durable bandwidth of one writer that syncs every chunk, as the log does
 * when each fsync carries one record of that size.
 */
export async function syncedWriteRate (dir: string, chunkBytes: number, seconds: number): Promise<Rate> {
  const file = path.join(dir, 'synced-writes.bin')
  const chunk = Buffer.alloc(chunkBytes, 0x5a)
  const handle = await fs.promises.open(file, 'wx', 0o600)
  try {
    let written = 0
    const started = performance.now()
    const deadline = started + seconds * 1000
    while (performance.now() < deadline) {
      await handle.write(chunk, 0, chunk.length, written)
      await handle.datasync()
      written += chunk.length
    }
    return { bytes: written, seconds: (performance.now() - started) / 1000 }
  } finally {
    await handle.close()
    await fs.promises.rm(file, { force: true })
  }
}

const READ_CHUNK_BYTES = 1024 * 1024

/**
 * Reads every segment file of a log directory once, 1 MiB at a time as the engine does, and does
 * nothing with the bytes: the floor under streaming or checking them.
 */
export async function rawSegmentReadRate (dir: string): Promise<Rate> {
  const files = fs.readdirSync(dir).filter(name => name.endsWith('.seg')).sort()
  const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES)
  let bytes = 0
  const started = performance.now()
  for (const name of files) {
    const handle = await fs.promises.open(path.join(dir, name), 'r')
    try {
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, null)
        if (bytesRead === 0) break
        bytes += bytesRead
      }
    } finally {
      await handle.close()
    }
  }
  return { bytes, seconds: (performance.now() - started) / 1000 }
}
