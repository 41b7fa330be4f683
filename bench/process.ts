// The processes and directories the bench makes: server children (the service or the ceiling
// server) on 127.0.0.1, peers it compares against (redis-server, postgres), their readiness and RSS,
// and temp directories, all owned through scripts/children.ts: gone when the bench ends, however
// it ends.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ownChild, ownTempDir } from '../scripts/children.js'

export { removeTempDir } from '../scripts/children.js'

export const SERVICE_SCRIPT = fileURLToPath(new URL('../src/cli.js', import.meta.url))
export const CEILING_SCRIPT = fileURLToPath(new URL('./ceiling-server.js', import.meta.url))

const READY_TIMEOUT_MS = 120_000
const STOP_TIMEOUT_MS = 30_000
/** Lines of a child's output kept to explain its failure. */
const OUTPUT_LINES_KEPT = 20

export function makeTempDir (name: string): string {
  return ownTempDir(`vecwal-bench-${name}-`)
}

export interface ServerChild {
  url: string
  pid: number
  /** Milliseconds from spawn until /health/ready first answered 200. */
  readyMs: number
  /** SIGTERM, then SIGKILL if the child has not exited within the stop timeout. */
  stop: () => Promise<void>
}

export interface SpawnOptions {
  script: string
  args?: string[]
  /** VECWAL_* variables; the bench's own VECWAL_* environment is not passed on. */
  env: Record<string, string>
  nodeFlags?: string[]
}

/**
 * Spawns `node script` and resolves once it serves: it prints a JSON log line carrying its `url`
 * (the service's "vecwal is serving", the ceiling server's equivalent), then /health/ready
 * answers 200.
 */
export async function spawnServer (options: SpawnOptions): Promise<ServerChild> {
  const env: NodeJS.ProcessEnv = { ...options.env }
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('VECWAL_')) env[name] = value
  const spawnedAt = performance.now()
  const child = spawn(process.execPath, [...(options.nodeFlags ?? []), options.script, ...(options.args ?? [])], {
    env,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const { exited, output } = track(child)
  try {
    const url = await withTimeout(firstUrl(child, exited), READY_TIMEOUT_MS, 'printing its URL')
    await withTimeout(untilReady(url), READY_TIMEOUT_MS, 'answering /health/ready')
    return {
      url,
      pid: child.pid ?? -1,
      readyMs: performance.now() - spawnedAt,
      stop: async () => { await stopChild(child, exited) }
    }
  } catch (err) {
    await stopChild(child, exited)
    throw new Error(`${path.basename(options.script)} did not start: ${(err as Error).message}\n${output().join('\n')}`)
  }
}

export interface PeerChild {
  pid: number
  /** SIGTERM, then SIGKILL if the child has not exited within the stop timeout. */
  stop: () => Promise<void>
}

/** The system user a peer runs as (postgres refuses root), when the bench runs as root. */
export interface PeerUser {
  uid: number
  gid: number
}

/**
 * Spawns a peer the bench compares against (redis-server, postgres), tracked like the servers so
 * that it cannot outlive the bench, and resolves once a line of its output matches `ready`.
 */
export async function spawnPeer (command: string, args: string[], ready: RegExp, user?: PeerUser): Promise<PeerChild> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...user })
  const { exited, output } = track(child)
  const readyLine = new Promise<void>((resolve, reject) => {
    const look = (text: string): void => { if (ready.test(text)) resolve() }
    child.stdout?.on('data', look)
    child.stderr?.on('data', look)
    void exited.then(() => { reject(new Error(`exited with ${child.exitCode ?? child.signalCode}`)) })
  })
  try {
    await withTimeout(readyLine, READY_TIMEOUT_MS, `printing ${String(ready)}`)
    return { pid: child.pid ?? -1, stop: async () => { await stopChild(child, exited) } }
  } catch (err) {
    await stopChild(child, exited)
    throw new Error(`${command} did not start: ${(err as Error).message}\n${output().join('\n')}`)
  }
}

/**
 * Owns `child` (ended with the bench); answers when it exits, and the tail of its output to explain
 * a failure.
 */
function track (child: ChildProcess): { exited: Promise<void>, output: () => string[] } {
  ownChild(child)
  const exited = new Promise<void>(resolve => {
    child.once('exit', () => { resolve() })
    child.once('error', () => { resolve() })
  })
  return { exited, output: keepTail(child) }
}

async function stopChild (child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}

/** Reads stdout and stderr to their end (a full pipe would block the child) and keeps the last lines. */
function keepTail (child: ChildProcess): () => string[] {
  const lines: string[] = []
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8')
    stream?.on('data', (text: string) => {
      lines.push(...text.split('\n').filter(line => line !== ''))
      lines.splice(0, Math.max(0, lines.length - OUTPUT_LINES_KEPT))
    })
  }
  return () => lines
}

function firstUrl (child: ChildProcess, exited: Promise<void>): Promise<string> {
  return new Promise((resolve, reject) => {
    let pending = ''
    const onData = (text: string): void => {
      pending += text
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      for (const line of lines) {
        const url = urlOf(line)
        if (url !== undefined) {
          child.stdout?.off('data', onData)
          resolve(url)
          return
        }
      }
    }
    child.stdout?.on('data', onData)
    void exited.then(() => { reject(new Error(`exited with ${child.exitCode ?? child.signalCode}`)) })
  })
}

function urlOf (line: string): string | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const url = (JSON.parse(line) as { url?: unknown }).url
    return typeof url === 'string' ? url : undefined
  } catch {
    return undefined
  }
}

async function untilReady (url: string): Promise<void> {
  for (;;) {
    const response = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined)
    if (response?.status === 200) return
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`timed out after ${ms} ms ${what}`)) }, ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A process's resident set size in bytes, from /proc (Linux); undefined once it has exited. */
export function residentBytes (pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match === null ? undefined : Number(match[1]) * 1024
  } catch {
    return undefined
  }
}

/** Samples a process's RSS every `intervalMs` until stopped; `stop` returns the highest sample. */
export function sampleResidentBytes (pid: number, intervalMs = 20): { stop: () => number } {
  let peak = residentBytes(pid) ?? 0
  const timer = setInterval(() => { peak = Math.max(peak, residentBytes(pid) ?? 0) }, intervalMs)
  return {
    stop () {
      clearInterval(timer)
      return Math.max(peak, residentBytes(pid) ?? 0)
    }
  }
}
