// Reading what test/helpers/synced-service.ts notes: one "<segment> <bytes>" line each time an
// fdatasync of a segment completes. Shared by the follow crash test (cut each segment back to what
// a power cut would keep) and the keyed kill -9 cycles (did the kill land inside an fdatasync?).
import fs from 'node:fs'
import path from 'node:path'
import { ROOT } from './project.js'

/** The launcher that runs the service under synced-service.ts (a ChildService `launcher`). */
export const SYNCED_SERVICE = [process.execPath, path.join(ROOT, 'dist', 'test', 'helpers', 'synced-service.js')]

/** The env that makes synced-service.ts delay each fdatasync by `delayMs` and note it in `syncedLog`. */
export function syncedServiceEnv (delayMs: number, syncedLog: string): Record<string, string> {
  return { VECWAL_TEST_FSYNC_DELAY_MS: String(delayMs), VECWAL_TEST_SYNCED_LOG: syncedLog }
}

/** Each segment's bytes as its last completed fdatasync left them durable; a segment never synced is absent. */
export function durableBytes (syncedLog: string): Map<string, number> {
  const durable = new Map<string, number>()
  if (!fs.existsSync(syncedLog)) return durable
  for (const line of fs.readFileSync(syncedLog, 'utf8').split('\n')) {
    const [name, bytes] = line.split(' ')
    if (name !== '' && bytes !== undefined) durable.set(name, Number(bytes))
  }
  return durable
}

/** The size of each segment file in `dir`. */
export function segmentSizes (dir: string): Map<string, number> {
  return new Map(fs.readdirSync(dir).filter(n => n.endsWith('.seg')).map(n => [n, fs.statSync(path.join(dir, n)).size]))
}

/**
 * Whether a process killed (SIGKILL keeps the page cache) was inside an fdatasync: some segment
 * holds bytes past both its size when the process started (`before`) and its last completed sync.
 * The writer calls fdatasync right after each write, and the delay comes first inside it, so bytes
 * written and not yet synced are bytes whose sync was under way.
 */
export function killedInSync (dir: string, syncedLog: string, before: ReadonlyMap<string, number>): boolean {
  const durable = durableBytes(syncedLog)
  for (const [name, size] of segmentSizes(dir)) {
    if (size > Math.max(before.get(name) ?? 0, durable.get(name) ?? 0)) return true
  }
  return false
}
