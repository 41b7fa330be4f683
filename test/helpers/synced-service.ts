// The real service as a child process for the follow crash test and the keyed kill -9 cycles
// (test/helpers/synced-log.ts reads what it notes; run as a ChildService launcher:
// `node dist/test/helpers/synced-service.js`, the CLI's own arguments ignored). Each fdatasync of a
// segment first waits VECWAL_TEST_FSYNC_DELAY_MS, and once it is done appends "<segment> <bytes>"
// to the file VECWAL_TEST_SYNCED_LOG: how much of each segment a power cut would keep. The engine
// shows records to readers only after that line is written, so a test that cuts each segment back
// to its last line after a kill -9 finds everything a follower may have been sent.
import fs from 'node:fs'
import path from 'node:path'
import { loadConfig } from '../../src/config.js'
import { createLogger, startService } from '../../src/main.js'
import { nodeFileIO, type FileIO } from '../../src/wal/file-io.js'

const delayMs = Number(process.env.VECWAL_TEST_FSYNC_DELAY_MS ?? '0')
const syncedLog = fs.openSync(process.env.VECWAL_TEST_SYNCED_LOG ?? 'synced.log', 'a')
/** The segment each descriptor of the writer is open on. */
const segments = new Map<number, string>()

const io: FileIO = {
  ...nodeFileIO,
  async create (file, mode) {
    const fd = await nodeFileIO.create(file, mode)
    segments.set(fd, path.basename(file))
    return fd
  },
  async openWrite (file) {
    const fd = await nodeFileIO.openWrite(file)
    segments.set(fd, path.basename(file))
    return fd
  },
  async close (fd) {
    segments.delete(fd)
    await nodeFileIO.close(fd)
  },
  async fdatasync (fd) {
    await new Promise(resolve => setTimeout(resolve, delayMs))
    await nodeFileIO.fdatasync(fd)
    const segment = segments.get(fd)
    if (segment !== undefined) fs.writeSync(syncedLog, `${segment} ${fs.fstatSync(fd).size}\n`)
  }
}

const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('VECWAL_TEST_')))
const config = loadConfig(env)
const service = await startService(config, createLogger(config.logLevel), { io })
process.once('SIGTERM', () => { void service.stop().then(() => process.exit(0)) })
