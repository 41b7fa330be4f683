// The real service as a child process (`node dist/src/cli.js serve`), for the tests that kill it,
// overload it or start it on a damaged directory. It listens on 127.0.0.1 only, on a port found
// free just before the start (and found again if another process took it in between).
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import { ownChild } from '../../scripts/children.js'
import { CLI, freePort } from './project.js'

export function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

export interface Exit { code: number | null, signal: NodeJS.Signals | null }

/** What a child wrote, kept to its last 256 KiB, for assertions and for explaining a failure. */
export class OutputTail {
  private text = ''
  append (chunk: Buffer): void {
    this.text += chunk.toString('utf8')
    if (this.text.length > 256 * 1024) this.text = this.text.slice(-256 * 1024)
  }

  toString (): string {
    return this.text
  }
}

export interface RunOptions {
  dataDir: string
  /** More VECWAL_* variables (the port, data dir and log level are set already). */
  env?: Record<string, string>
  args?: string[]
  /**
   * A command the service runs under, its arguments first: e.g. `unshare --pid --fork
   * --mount-proc --kill-child` gives it a PID namespace of its own, as a container would.
   */
  launcher?: string[]
  /** The child's limit of open files (soft and hard), set with prlimit(1). */
  openFiles?: number
}

/** A child started with `vecwal serve` (or other arguments), whether or not it became ready. */
export class ChildService {
  readonly exited: Promise<Exit>
  private readonly stdout = new OutputTail()
  private readonly stderr = new OutputTail()
  private exit: Exit | undefined

  private constructor (readonly process: ChildProcess, readonly port: number, private readonly launched: boolean) {
    process.stdout?.on('data', (chunk: Buffer) => { this.stdout.append(chunk) })
    process.stderr?.on('data', (chunk: Buffer) => { this.stderr.append(chunk) })
    this.exited = new Promise(resolve => {
      // 'close' rather than 'exit': by then everything the child wrote has been read.
      process.once('close', (code, signal) => {
        this.exit = { code, signal }
        resolve(this.exit)
      })
    })
  }

  static spawn (options: RunOptions, port: number): ChildService {
    const command = [...(options.launcher ?? []), process.execPath, CLI, ...(options.args ?? ['serve'])]
    // prlimit sets the limit and then becomes what follows it (exec), as a launcher does.
    if (options.openFiles !== undefined) command.unshift('prlimit', `--nofile=${options.openFiles}:${options.openFiles}`, '--')
    const child = ownChild(spawn(command[0], command.slice(1), {
      env: {
        PATH: process.env.PATH,
        VECWAL_HOST: '127.0.0.1',
        VECWAL_PORT: String(port),
        VECWAL_DATA_DIR: options.dataDir,
        VECWAL_LOG_LEVEL: 'warn',
        ...options.env
      },
      stdio: ['ignore', 'pipe', 'pipe']
    }))
    return new ChildService(child, port, options.launcher !== undefined)
  }

  get pid (): number {
    const pid = this.process.pid
    if (pid === undefined) throw new Error('the child has no pid (spawn failed)')
    return pid
  }

  get url (): string {
    return `http://127.0.0.1:${this.port}`
  }

  get output (): string {
    return `--- stdout ---\n${this.stdout.toString()}--- stderr ---\n${this.stderr.toString()}`
  }

  get stderrText (): string {
    return this.stderr.toString()
  }

  get stdoutText (): string {
    return this.stdout.toString()
  }

  get running (): boolean {
    return this.exit === undefined
  }

  /** Resolves once /health/ready answers 200; rejects if the child exits first or time runs out. */
  async ready (timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`the service exited (${JSON.stringify(this.exit)}) before it was ready\n${this.output}`)
      try {
        const res = await fetch(`${this.url}/health/ready`, { signal: AbortSignal.timeout(5000) })
        await res.arrayBuffer()
        if (res.status === 200) return
      } catch {}
      await sleep(25)
    }
    throw new Error(`the service was not ready within ${timeoutMs} ms\n${this.output}`)
  }

  /**
   * Signals the service itself: under a launcher, the launcher's one child once it has forked (a
   * launcher killed first would take the service with it by its own rules, not by this signal).
   */
  private signal (signal: NodeJS.Signals): void {
    let target = this.pid
    if (this.launched) {
      try {
        target = Number(fs.readFileSync(`/proc/${target}/task/${target}/children`, 'utf8').split(' ')[0]) || target
      } catch {}
    }
    try {
      process.kill(target, signal)
    } catch (err) {
      // Gone already, between the check of `running` and now: what the signal was for.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err
    }
  }

  /** SIGKILL: no handler runs, nothing is flushed by the process. Resolves once it is gone. */
  async kill9 (): Promise<Exit> {
    if (this.running) this.signal('SIGKILL')
    return await this.exited
  }

  /** SIGTERM, the graceful stop; SIGKILL if it has not exited within the timeout. */
  async stop (timeoutMs = 30_000): Promise<Exit> {
    if (!this.running) return await this.exited
    this.signal('SIGTERM')
    const timer = setTimeout(() => { this.process.kill('SIGKILL') }, timeoutMs)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }

  /** Resident memory of the child in bytes (VmRSS of /proc/<pid>/status). */
  rssBytes (): number {
    return rssOf(this.pid)
  }

  /** The child's open file descriptors (entries of /proc/<pid>/fd). */
  openFds (): number {
    return fs.readdirSync(`/proc/${this.pid}/fd`).length
  }
}

export function rssOf (pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)
  if (match === null) throw new Error(`no VmRSS in /proc/${pid}/status`)
  return Number(match[1]) * 1024
}

/**
 * Starts the service and waits until it is ready. A port can be taken between the search and the
 * child's listen (other tests run alongside): then it starts again on another port.
 */
export async function startChild (options: RunOptions, timeoutMs = 60_000): Promise<ChildService> {
  for (let attempt = 1; ; attempt++) {
    const child = ChildService.spawn(options, await freePort())
    try {
      await child.ready(timeoutMs)
      return child
    } catch (err) {
      await child.kill9()
      if (attempt < 5 && child.output.includes('EADDRINUSE')) continue
      throw err
    }
  }
}

/**
 * Runs the CLI until it exits by itself (a refusal to start), or kills it after the timeout;
 * resolves with its exit and output.
 */
export async function runToExit (options: RunOptions, timeoutMs = 60_000): Promise<{ exit: Exit, stderr: string, stdout: string }> {
  const child = ChildService.spawn(options, await freePort())
  const timer = setTimeout(() => { child.process.kill('SIGKILL') }, timeoutMs)
  try {
    const exit = await child.exited
    return { exit, stderr: child.stderrText, stdout: child.stdoutText }
  } finally {
    clearTimeout(timer)
  }
}
