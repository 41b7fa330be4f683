// Helpers for HTTP tests: a real service on 127.0.0.1 (port 0) over a real data directory.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import fs from 'node:fs'
import { STATUS_CODES } from 'node:http'
import { pino } from 'pino'
import type { Test } from 'tap'
import { ownChild } from '../../scripts/children.js'
import { loadConfig } from '../../src/config.js'
import { startService, type EngineOverrides, type Service } from '../../src/main.js'
import { nodeFileIO, type FileIO } from '../../src/wal/file-io.js'
import { WriteAheadLog } from '../../src/wal/log.js'
import { deleteStream } from './nats-cluster.js'
import { CLI } from './project.js'
import { ioError, tempDir, type TeardownTarget } from './wal.js'

export interface TestService extends Service {
  dir: string
  /** The JetStream stream it runs on, after useJetStream. */
  stream?: string
  /** fetch against the service: `call('POST', '/v1/entries', body)`. */
  call: (method: string, route: string, body?: unknown, headers?: Record<string, string>) => Promise<Response>
}

/** Set by useJetStream: the NATS cluster every service the helpers start from then on runs on. */
let jetstreamServers: string[] | undefined

/**
 * From now on, every service startTestService starts runs on the JetStream backend, each on a fresh
 * stream of these servers (deleted when it stops): an HTTP suite written for any backend runs on
 * JetStream by being imported after this call (test/jetstream/http.test.ts).
 */
export function useJetStream (servers: string[]): void {
  jetstreamServers = servers
}

/** True after useJetStream: for the few assertions where the backends rightly differ (README: JetStream). */
export function onJetStream (): boolean {
  return jetstreamServers !== undefined
}

/** On JetStream a property test makes this many times fewer runs (propertyRuns). */
const JETSTREAM_RUNS_DIVISOR = 3

/**
 * A property test's run count on the backend the tests run on: all of `runs` on the segment engine,
 * a third (at least one) on JetStream, where each write waits for a quorum's ack: what such a test
 * varies (bodies, forms, routes) is the HTTP layer's, which the full count on the engine covers.
 */
export function propertyRuns (runs: number): number {
  return onJetStream() ? Math.max(1, Math.ceil(runs / JETSTREAM_RUNS_DIVISOR)) : runs
}

/**
 * The VECWAL_* variables that put a service on the backend the tests run on: none for the segment
 * engine; after useJetStream, the cluster and a stream named by the data directory, so that a
 * restart on the same directory reopens the same log. With `owned`, the stream is deleted at
 * teardown, as the directory is.
 */
export function backendEnv (t: TeardownTarget, dataDir: string, owned = true): Record<string, string> {
  const servers = jetstreamServers
  if (servers === undefined) return {}
  const stream = `test_${createHash('sha256').update(dataDir).digest('hex').slice(0, 24)}`
  if (owned) t.teardown(async () => { await deleteStream(servers, stream) })
  return { VECWAL_BACKEND: 'jetstream', VECWAL_NATS_SERVERS: servers.join(','), VECWAL_NATS_STREAM: stream }
}

/**
 * Starts the service with VECWAL_* overrides; it is stopped at teardown, and its directory removed
 * unless the caller passed one. `overrides` puts a file layer of the test's choosing under the engine.
 */
export async function startTestService (t: TeardownTarget, env: Record<string, string> = {}, dir?: string, overrides: EngineOverrides = {}): Promise<TestService> {
  const dataDir = dir ?? tempDir(t)
  const config = loadConfig({ VECWAL_PORT: '0', VECWAL_DATA_DIR: dataDir, VECWAL_LOG_LEVEL: 'silent', ...backendEnv(t, dataDir, dir === undefined), ...env })
  const service = await startService(config, pino({ level: 'silent' }), overrides)
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    await service.stop()
  }
  t.teardown(stop)
  return {
    ...service,
    stop,
    dir: dataDir,
    stream: config.jetstream?.stream,
    call: async (method, route, body, headers = {}) => await fetch(service.url + route, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body)
    })
  }
}

/** The service's log as the segment engine, for tests that look at its segments; throws on another backend. */
export function segmentLog (service: Service): WriteAheadLog {
  if (!(service.log instanceof WriteAheadLog)) throw new Error('the service is not on the segment backend')
  return service.log
}

/** Reads an NDJSON response line by line into objects. */
export async function ndjson (response: Response): Promise<Array<Record<string, unknown>>> {
  const text = await response.text()
  return text.split('\n').filter(line => line !== '').map(line => JSON.parse(line) as Record<string, unknown>)
}

/** Every record the service holds after `after` (default 0), as parsed lines. */
export async function recoverAll (service: TestService, after = 0): Promise<Array<Record<string, unknown>>> {
  const response = await service.call('GET', `/v1/recovery?after=${after}`)
  if (response.status !== 200) throw new Error(`recovery answered ${response.status}: ${await response.text()}`)
  return await ndjson(response)
}

/** The log's last seq, as /v1/status reports it. */
export async function lastSeq (service: TestService): Promise<number> {
  const response = await service.call('GET', '/v1/status')
  return ((await response.json()) as { lastSeq: number }).lastSeq
}

/**
 * Asserts that `response` is an error answer: the status, JSON `{statusCode, code, error, message}`
 * and nothing else, the stable `code`, and a message that names `names` (a field, say) when given.
 */
export async function assertError (t: Test, response: Response, statusCode: number, code: string, names?: string | RegExp): Promise<Record<string, unknown>> {
  t.equal(response.status, statusCode, `status ${statusCode}`)
  t.match(response.headers.get('content-type'), /^application\/json/, 'an error is JSON')
  const body = await response.json() as Record<string, unknown>
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], 'exactly statusCode, code, error, message')
  t.equal(body.statusCode, statusCode, 'statusCode matches the status')
  t.equal(body.code, code, `code ${code}`)
  t.equal(body.error, STATUS_CODES[statusCode], 'error is the status text')
  t.type(body.message, 'string')
  if (names !== undefined) t.match(body.message, names, `the message names ${String(names)}`)
  return body
}

/** A file layer whose fdatasync fails with EIO once `fail()` is called. */
export function failingIO (): { io: FileIO, fail: () => void } {
  let failing = false
  const io: FileIO = {
    ...nodeFileIO,
    async fdatasync (fd) {
      if (failing) throw ioError('EIO', 'fdatasync', 'i/o error')
      await nodeFileIO.fdatasync(fd)
    }
  }
  return { io, fail: () => { failing = true } }
}

/** A file layer whose fdatasyncs wait while `hold()` is in force, until `release()`. */
export function gatedIO (): { io: FileIO, hold: () => void, release: () => void } {
  let gate: Promise<void> | undefined
  let open: () => void = () => {}
  const io: FileIO = {
    ...nodeFileIO,
    async fdatasync (fd) {
      if (gate !== undefined) await gate
      await nodeFileIO.fdatasync(fd)
    }
  }
  return {
    io,
    hold: () => { gate = new Promise(resolve => { open = resolve }) },
    release: () => {
      gate = undefined
      open()
    }
  }
}

/**
 * Finite float32 values with random bits, seeded: subnormals, huge and tiny values, and bytes that
 * look like msgpack heads all occur, as in real embeddings' bytes they can.
 */
function randomFloat32s (seed: number, count: number): number[] {
  let state = (seed * 0x9e3779b1 + 0x6d2b79f5) >>> 0
  const bits = new Uint32Array(1)
  const value = new Float32Array(bits.buffer)
  const out: number[] = []
  while (out.length < count) {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0
    let x = state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    bits[0] = (x ^ (x >>> 14)) >>> 0
    if (Number.isFinite(value[0])) out.push(value[0])
  }
  return out
}

/** A deterministic entry: inserts, updates and deletes in turn, vectors of random float32 bits seeded by `i`. */
export function sampleEntry (i: number, dims = 4): Record<string, unknown> {
  const id = `e${i}`
  if (i % 5 === 4) return { op: 'delete', id }
  const vector = randomFloat32s(i, dims)
  const op = i % 3 === 2 ? 'update' : 'insert'
  return i % 2 === 0 ? { op, id, vector, metadata: { n: String(i), tag: `t${i % 4}` } } : { op, id, vector }
}

/** An entry with its vector values rounded to 32-bit floats: what a posted entry is stored as. */
export function asStored (entry: Record<string, unknown>): Record<string, unknown> {
  if (!Array.isArray(entry.vector)) return entry
  return { ...entry, vector: (entry.vector as number[]).map(v => Math.fround(v)) }
}

/** The environment without any VECWAL_ variable, plus `env`: a child sees only what the test sets. */
function cliEnv (env: Record<string, string>): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VECWAL_')))
  return { ...clean, ...env }
}

export interface CliResult { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

/** Runs the CLI to its end (killed after `timeoutMs`). */
export async function runCli (args: string[], env: Record<string, string>, timeoutMs = 15_000): Promise<CliResult> {
  return await waitForExit(spawnCli(args, env), timeoutMs)
}

export function spawnCli (args: string[], env: Record<string, string>): ChildProcess {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npx tsc -p tsconfig.json)`)
  return ownChild(spawn(process.execPath, [CLI, ...args], { env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] }))
}

/** Collects a child's output and waits for its exit; kills it with SIGKILL after `timeoutMs`. */
export async function waitForExit (child: ChildProcess, timeoutMs = 15_000): Promise<CliResult> {
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
  const [code, signal] = await once(child, 'exit') as [number | null, NodeJS.Signals | null]
  clearTimeout(timer)
  return { code, signal, stdout, stderr }
}
