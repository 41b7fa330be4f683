// Where a .cpuprofile (node --cpu-prof; `run.js --profile DIR` writes one per service child) spent
// its time: the top functions by self time and by total time, and self time by package.
// Run: node dist/bench/profile-top.js DIR/P1.cpuprofile [--top 25] [--callers TEXT]
// --callers TEXT also lists the call paths (three frames up) into the functions whose name
// contains TEXT, by self time: who makes a costly function run.
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

const IDLE = '(idle)'

/** A function named by where it is defined: `name file:line`. */
function functionKey (frame: CallFrame): string {
  const where = shortUrl(frame.url)
  const name = frame.functionName !== '' ? frame.functionName : where === '' ? '(native code)' : '(anonymous)'
  return where === '' ? name : `${name} ${where}:${frame.lineNumber + 1}`
}

function shortUrl (url: string): string {
  const file = url.replace(/^file:\/\//, '')
  const modules = file.lastIndexOf('/node_modules/')
  if (modules !== -1) return file.slice(modules + '/node_modules/'.length)
  return file.startsWith('/') ? path.relative(process.cwd(), file) : file
}

/** The package a function belongs to: an npm package, node's own code, a directory of ours, native code, or a V8 pseudo-frame. */
function packageOf (frame: CallFrame): string {
  const file = shortUrl(frame.url)
  if (file === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native code)'
  if (file.startsWith('node:')) return 'node (built-in)'
  if (frame.url.includes('/node_modules/')) {
    const parts = file.split('/')
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]
  }
  return path.dirname(file)
}

interface Tally {
  self: Map<string, number>
  total: Map<string, number>
  packages: Map<string, number>
  /** Call paths into the functions --callers names. */
  callers: Map<string, number>
  busyUs: number
  idleUs: number
}

const CALLER_DEPTH = 3

function tally (profile: CpuProfile, callersOf: string | undefined): Tally {
  const byId = new Map(profile.nodes.map(node => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const result: Tally = { self: new Map(), total: new Map(), packages: new Map(), callers: new Map(), busyUs: 0, idleUs: 0 }
  const add = (map: Map<string, number>, key: string, us: number): void => { map.set(key, (map.get(key) ?? 0) + us) }
  // A sample's time is the gap to the next sample, as DevTools counts it.
  for (let i = 0; i < profile.samples.length - 1; i++) {
    const us = profile.timeDeltas[i + 1]
    const leaf = byId.get(profile.samples[i])
    if (leaf === undefined) continue
    if (leaf.callFrame.functionName === IDLE) {
      result.idleUs += us
      continue
    }
    result.busyUs += us
    add(result.self, functionKey(leaf.callFrame), us)
    add(result.packages, packageOf(leaf.callFrame), us)
    // Each function once per sample, however deep it recurses.
    const stack: string[] = []
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const node = byId.get(id)
      if (node !== undefined) stack.push(functionKey(node.callFrame))
    }
    for (const key of new Set(stack)) add(result.total, key, us)
    if (callersOf !== undefined && leaf.callFrame.functionName.includes(callersOf)) {
      add(result.callers, stack.slice(0, CALLER_DEPTH + 1).join(' <- '), us)
    }
  }
  return result
}

function top (map: Map<string, number>, n: number, busyUs: number, skip: (key: string) => boolean = () => false): string[] {
  return [...map].filter(([key]) => !skip(key)).sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([key, us]) => `${(us / 1000).toFixed(0).padStart(8)} ms ${(100 * us / busyUs).toFixed(1).padStart(5)}%  ${key}`)
}

// Frames that are on every stack say nothing about where the time goes.
const EVERYWHERE = /^\((root|program)\)|^(processTicksAndRejections|listOnTimeout|processTimers) /

function main (): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' }, callers: { type: 'string' } }
  })
  const n = Number(values.top)
  if (positionals.length === 0 || !Number.isInteger(n) || n <= 0) {
    process.stderr.write('usage: node dist/bench/profile-top.js FILE.cpuprofile... [--top N] [--callers TEXT]\n')
    process.exit(2)
  }
  for (const file of positionals) {
    const t = tally(JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile, values.callers)
    process.stdout.write([
      `## ${path.basename(file)}: ${(t.busyUs / 1e6).toFixed(2)} s busy, ${(t.idleUs / 1e6).toFixed(2)} s idle`,
      '', 'self time by package:', ...top(t.packages, 12, t.busyUs),
      '', 'self time by function:', ...top(t.self, n, t.busyUs),
      '', 'total time by function:', ...top(t.total, n, t.busyUs, key => EVERYWHERE.test(key)),
      ...(values.callers === undefined ? [] : ['', `call paths into ${values.callers}:`, ...top(t.callers, n, t.busyUs)]),
      '', ''
    ].join('\n'))
  }
}

main()
