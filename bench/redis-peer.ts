// The peer P2b is held against: Redis 7 (Debian's redis-server) appending to a stream with XADD,
// every write fsynced before its answer (appendonly, appendfsync always), driven by
// redis-benchmark with 64 clients pipelining 16 commands each, one entry per XADD of the same size
// as one of P2b's stored entries. Redis is started on a private unix socket in a temp directory
// and stopped by the bench.
import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import path from 'node:path'
import { promisify } from 'node:util'
import type { Round } from './load.js'
import { makeTempDir, removeTempDir, spawnPeer } from './process.js'

const CLIENTS = 64
const PIPELINE = 16
/** Commands in the first run, which also gives the rate that sizes the runs after it. */
const CALIBRATION_COMMANDS = 20_000

export interface RedisPeer {
  /** One XADD load of about `seconds`, as a round of the interleaved loads. */
  run: (seconds: number) => Promise<Round>
  stop: () => Promise<void>
}

export async function startRedisPeer (entryBytes: number): Promise<RedisPeer> {
  const dir = makeTempDir('redis')
  const socket = path.join(dir, 'redis.sock')
  const server = await spawnPeer('redis-server', [
    '--port', '0', '--unixsocket', socket, '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always',
    '--save', '', '--daemonize', 'no', '--logfile', ''
  ], /ready to accept connections/i).catch((err: unknown) => {
    removeTempDir(dir)
    throw err
  })
  // Printable bytes (redis-benchmark takes the value as an argument), as many as an entry stores.
  const value = crypto.randomBytes(entryBytes).toString('base64').slice(0, entryBytes)
  let perSecond = 0
  const xadd = async (commands: number): Promise<Round> => {
    const { stdout } = await promisify(execFile)('redis-benchmark', [
      '-s', socket, '-c', String(CLIENTS), '-P', String(PIPELINE), '-n', String(commands), '--csv',
      'XADD', 'vecwal-bench', '*', 'entry', value
    ], { timeout: 600_000, maxBuffer: 1024 * 1024 })
    const row = stdout.trim().split('\n').at(-1)?.split('","').map(cell => cell.replaceAll('"', ''))
    const rps = Number(row?.[1])
    if (row === undefined || !Number.isFinite(rps) || rps <= 0) throw new Error(`redis-benchmark printed no rate:\n${stdout}`)
    perSecond = rps
    return { ok: commands, seconds: commands / rps, failures: 0, p50Ms: Number(row[4]), p99Ms: Number(row[6]) }
  }
  await xadd(CALIBRATION_COMMANDS)
  return {
    run: async seconds => await xadd(Math.max(CLIENTS * PIPELINE, Math.round(perSecond * seconds))),
    stop: async () => {
      await server.stop()
      removeTempDir(dir)
    }
  }
}
