// A test file that tap ends at its timeout, that crashes, or that exits without its teardowns leaves
// none of the children its helpers started running (a paused NATS node included) and none of their
// directories behind: scripts/children.ts ends them by their pid as the file ends. The file is
// test/helpers/abandoned-test-file.ts, run here as tap runs a file and, for the timeout, ended as
// tap ends one (@tapjs/core's Spawn.timeout).
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ownChild } from '../../scripts/children.js'
import type { Ending, Started } from '../helpers/abandoned-test-file.js'
import { OutputTail, sleep, type Exit } from '../helpers/child-service.js'
import { ROOT, untappedEnv } from '../helpers/project.js'

const FILE = path.join(ROOT, 'dist', 'test', 'helpers', 'abandoned-test-file.js')
/** What tap's Spawn gives a file to tell its timeout message from any other. */
const TAP_CHILD = { TAP_CHILD_ID: '1', TAP_CHILD_KEY: 'abandoned-children' }
/** tap's pause between its timeout message, its SIGALRM and its SIGKILL. */
const TAP_STEP_MS = 500
/** How long the file may take to start its children. */
const START_TIMEOUT_MS = 60_000
/** How long the processes the file's children were adopted by may take to reap them. */
const GONE_TIMEOUT_MS = 10_000

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false
    throw err
  }
}

/** Polls until `pid` is no more (a killed orphan stays a zombie until whoever adopted it reaps it). */
async function goneWithin (pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (alive(pid)) {
    if (Date.now() > deadline) return false
    await sleep(50)
  }
  return true
}

/** Resolves with the first of `promise` and `ms` elapsing (then undefined). */
async function within<T> (promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<undefined>(resolve => { timer = setTimeout(() => { resolve(undefined) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

/** What tap does to a file at its timeout: a message on the IPC channel, then SIGALRM, then SIGKILL, each if the file still runs. */
async function endAsTapAtTimeout (file: ChildProcess, exited: Promise<Exit>): Promise<void> {
  file.send({ tapAbort: 'timeout', key: TAP_CHILD.TAP_CHILD_KEY, child: TAP_CHILD.TAP_CHILD_ID })
  for (const signal of ['SIGALRM', 'SIGKILL'] as const) {
    if (await within(exited, TAP_STEP_MS) !== undefined) return
    file.kill(signal)
  }
}

/** How each ending shows: tap's own SIGALRM at its timeout, else an exit code (tap's 1 for a file exiting with a test unfinished). */
const EXPECTED_EXIT: Record<Ending, Exit> = {
  hang: { code: null, signal: 'SIGALRM' },
  exit: { code: 1, signal: null },
  crash: { code: 1, signal: null }
}

const WHAT: Record<Ending, string> = {
  hang: 'a test file that tap ends at its timeout',
  exit: 'a test file that calls process.exit()',
  crash: 'a test program that throws an uncaught error'
}

for (const ending of ['hang', 'exit', 'crash'] as const) {
  t.test(`${WHAT[ending]} leaves no child and no directory behind`, async t => {
    // Spawned as tap's Spawn spawns a file: the IPC channel on fd 3.
    const file = ownChild(spawn(process.execPath, [FILE, ending], {
      env: { ...untappedEnv(), TAP: '1', TAP_BAIL: '0', ...TAP_CHILD },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc']
    }))
    const output = new OutputTail()
    file.stdout?.on('data', (chunk: Buffer) => { output.append(chunk) })
    file.stderr?.on('data', (chunk: Buffer) => { output.append(chunk) })
    const exited = new Promise<Exit>(resolve => { file.once('exit', (code, signal) => { resolve({ code, signal }) }) })
    const started = new Promise<Started | undefined>(resolve => {
      file.on('message', (message: Partial<Started>) => { if (Array.isArray(message.pids)) resolve(message as Started) })
      void exited.then(() => { resolve(undefined) })
    })
    const children = await within(started, START_TIMEOUT_MS)
    if (children === undefined) throw new Error(`the file did not start its children\n${output.toString()}`)
    t.ok(children.pids.every(alive), `its service and its paused NATS node ran (pids ${children.pids.join(', ')})`)

    if (ending === 'hang') await endAsTapAtTimeout(file, exited)
    t.same(await exited, EXPECTED_EXIT[ending], 'the file ended as it was made to', { output: output.toString() })
    for (const pid of children.pids) {
      const gone = await goneWithin(pid, GONE_TIMEOUT_MS)
      t.ok(gone, `pid ${pid} is gone (ESRCH)`)
      // The defect this test is for: not left running for the files after it.
      if (!gone) {
        process.kill(pid, 'SIGCONT')
        process.kill(pid, 'SIGKILL')
      }
    }
    for (const dir of children.dirs) {
      t.notOk(fs.existsSync(dir), `${dir} is removed`)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
}
