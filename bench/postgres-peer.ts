// The peer P3's NDJSON stream is held against: PostgreSQL 15 (Debian's `postgresql`) printing the
// same rows with `COPY (SELECT ...) TO STDOUT`, as the text of float4[] and as row_to_json, both
// with the shortest decimal that round-trips each float32 (extra_float_digits 1, the default since
// PostgreSQL 12). The rows are read back from the log P3 streams, so both print the same float32
// values. PostgreSQL is started by the bench in a temp directory, listening only on a unix socket
// there, and stopped by it; as root (in CI) it runs as the `postgres` user the package creates,
// since it refuses to run as root.
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import type { StoredEntry } from '../src/entry.js'
import { WriteAheadLog } from '../src/wal/log.js'
import { makeTempDir, removeTempDir, spawnPeer, type PeerUser } from './process.js'

const BIN_DIR = '/usr/lib/postgresql/15/bin'
const SYSTEM_USER = 'postgres'
const TABLE = 'entries'
const COMMAND_TIMEOUT_MS = 600_000
/** Enough digits to print any float32 so that PostgreSQL's float4 input reads back the same value. */
const FLOAT32_LOAD_DIGITS = 9
const NEWLINE = 0x0a

/** The two ways the rows are printed: the columns as COPY's text, and one JSON object a row. */
export type CopyForm = 'float4[]' | 'row_to_json'

const COPY_QUERIES: Record<CopyForm, string> = {
  // No ORDER BY: a sequential scan gives the rows in the order they were loaded, the log's order.
  'float4[]': `COPY (SELECT id, vector, metadata, seq FROM ${TABLE}) TO STDOUT`,
  row_to_json: `COPY (SELECT row_to_json(e) FROM ${TABLE} e) TO STDOUT`
}

export interface CopyRead {
  rows: number
  bytes: number
  seconds: number
}

export interface PostgresPeer {
  /** Appends to the table every entry of the log in `dataDir` after `afterSeq`; returns the log's last seq. */
  loadLog: (dataDir: string, afterSeq: number) => Promise<number>
  /** One `COPY ... TO STDOUT` of the whole table, read to its end by a client counting lines. */
  copyOut: (form: CopyForm) => Promise<CopyRead>
  stop: () => Promise<void>
}

async function systemUser (): Promise<PeerUser | undefined> {
  if (process.getuid?.() !== 0) return undefined
  const id = async (flag: string): Promise<number> => Number((await promisify(execFile)('id', [flag, SYSTEM_USER])).stdout.trim())
  return { uid: await id('-u'), gid: await id('-g') }
}

export async function startPostgresPeer (): Promise<PostgresPeer> {
  const dir = makeTempDir('postgres')
  try {
    const user = await systemUser()
    if (user !== undefined) fs.chownSync(dir, user.uid, user.gid)
    const dataDir = path.join(dir, 'data')
    await promisify(execFile)(path.join(BIN_DIR, 'initdb'), [
      '-D', dataDir, '-U', SYSTEM_USER, '--auth=trust', '--no-sync', '--no-instructions', '-E', 'UTF8', '--locale=C'
    ], { ...user, timeout: COMMAND_TIMEOUT_MS })
    // Only the unix socket. extra_float_digits 1 (the default, stated) prints shortest round-trip
    // decimals. Durability settings only speed up the load: nothing measured writes. No autovacuum:
    // the table is vacuumed once after each load, so that no scan sets hint bits or meets a vacuum.
    const server = await spawnPeer(path.join(BIN_DIR, 'postgres'), [
      '-D', dataDir, '-k', dir, '-c', 'listen_addresses=', '-c', 'extra_float_digits=1', '-c', 'fsync=off', '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off', '-c', 'autovacuum=off'
    ], /database system is ready to accept connections/, user)
    const psql = (args: string[]): string[] => ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', dir, '-U', SYSTEM_USER, '-d', 'postgres', ...args]
    const command = async (sql: string): Promise<void> => {
      await promisify(execFile)(path.join(BIN_DIR, 'psql'), psql(['-c', sql]), { timeout: COMMAND_TIMEOUT_MS })
    }
    try {
      await command(`CREATE UNLOGGED TABLE ${TABLE} (id text, vector float4[], metadata jsonb, seq bigint)`)
    } catch (err) {
      await server.stop()
      throw err
    }
    return {
      loadLog: async (logDir, afterSeq) => {
        const lastSeq = await copyIn(psql(['-c', `COPY ${TABLE} FROM STDIN`]), logDir, afterSeq)
        await command(`VACUUM (FREEZE, ANALYZE) ${TABLE}`)
        return lastSeq
      },
      copyOut: async form => await countLines(psql(['-c', COPY_QUERIES[form]])),
      stop: async () => {
        await server.stop()
        removeTempDir(dir)
      }
    }
  } catch (err) {
    removeTempDir(dir)
    throw err
  }
}

/** COPY's text format: backslash, tab, newline and carriage return are escaped. */
function copyText (value: string): string {
  return value.replace(/[\\\t\n\r]/g, char => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[char] ?? char)
}

function copyRow (entry: StoredEntry, seq: number): string {
  const vector = entry.op === 'delete' ? '\\N' : `{${Array.from(entry.vector, value => value.toPrecision(FLOAT32_LOAD_DIGITS)).join(',')}}`
  const metadata = entry.op === 'delete' || entry.metadata === undefined ? '\\N' : copyText(JSON.stringify(entry.metadata))
  return `${copyText(entry.id)}\t${vector}\t${metadata}\t${seq}\n`
}

/** Feeds psql's COPY FROM STDIN with the log's entries after `afterSeq`, a record at a time, at psql's pace. */
async function copyIn (args: string[], logDir: string, afterSeq: number): Promise<number> {
  const log = await WriteAheadLog.open({ dir: logDir, durability: 'none' })
  const child = spawn(path.join(BIN_DIR, 'psql'), args, { stdio: ['pipe', 'ignore', 'pipe'], timeout: COMMAND_TIMEOUT_MS })
  const exited = exitOf(child)
  // A psql that fails early is reported by `exited` (its stderr), not by a write to its closed pipe.
  child.stdin.on('error', () => {})
  try {
    const read = log.read({ after: afterSeq })
    for await (const record of read.records) {
      const entries = record.op === 'batch' ? record.entries : record.op === 'checkpoint' || record.op === 'consumer' ? [] : [record]
      const text = entries.map(entry => copyRow(entry, record.seq)).join('')
      if (!child.stdin.write(text)) await Promise.race([new Promise(resolve => child.stdin.once('drain', resolve)), exited])
    }
    child.stdin.end()
    await exited
    return read.lastSeq
  } finally {
    child.stdin.destroy()
    await log.close()
  }
}

async function countLines (args: string[]): Promise<CopyRead> {
  const started = performance.now()
  const child = spawn(path.join(BIN_DIR, 'psql'), args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: COMMAND_TIMEOUT_MS })
  const exited = exitOf(child)
  let rows = 0
  let bytes = 0
  child.stdout.on('data', (chunk: Buffer) => {
    bytes += chunk.length
    for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) rows++
  })
  await exited
  return { rows, bytes, seconds: (performance.now() - started) / 1000 }
}

/** Resolves when psql exits with 0; rejects with its stderr otherwise. */
function exitOf (child: ReturnType<typeof spawn>): Promise<void> {
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (text: string) => { stderr += text })
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', code => {
      if (code === 0) resolve()
      else reject(new Error(`psql exited with ${code ?? child.signalCode}: ${stderr.trim()}`))
    })
  })
  // Awaited by the caller once its writes are done; a failure before then must not crash the bench unhandled.
  exited.catch(() => {})
  return exited
}
