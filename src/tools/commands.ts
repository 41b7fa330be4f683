// The offline commands on a data directory: verify, stat, dump and repair. Each reads through the
// engine's own code (open-plan.ts, log-reader.ts, the record encoders), so what they report is what
// `serve` would find. All but repair read only and take no lock: they may run beside a live server.
import readline from 'node:readline/promises'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { summarize, type ConsumerSummary } from '../consumer-state.js'
import { DirLock } from '../wal/dir-lock.js'
import { nodeFileIO } from '../wal/file-io.js'
import { ChunkPool, readMsgpack, readNdjson } from '../wal/log-reader.js'
import type { WalLogger } from '../wal/logger.js'
import { applyOpenPlan } from '../wal/open-apply.js'
import { describeStep, inspectDirectory, isWhole, keptFrames, type Inspection } from './inspect.js'
import { salvage } from './salvage.js'

/** Exit codes of the tools: 0 whole (or done), 1 damage found (or repair declined), 2 bad usage or a failure. */
export const EXIT = { ok: 0, damaged: 1, usage: 2 } as const

export class UsageError extends Error {}

export const TOOL_USAGE: Record<string, string> = {
  verify: `Usage: vecwal verify DIR

Reads every segment of DIR: headers, every record's framing and CRC, seq continuity, and every
record's body against its type. Changes nothing and takes no lock, so it may run while a server
serves DIR. Prints what it found and what \`serve\` would cut or refuse, with file and offset.
Exit status: 0 the log is whole, 1 damage found, 2 bad usage or DIR unreadable.
`,
  stat: `Usage: vecwal stat DIR [--json]

Segments with their seq ranges, sizes and record counts, records by type, checkpoints, .broken
files and any damage. Reads only, takes no lock.
  --json   one JSON object, for scripts
`,
  dump: `Usage: vecwal dump DIR [--from SEQ] [--to SEQ] [--format ndjson|msgpack] [--checkpoints] [--force]

Prints the records of DIR exactly as GET /v1/recovery streams them: NDJSON lines (the default) or
concatenated msgpack maps. Reads only, takes no lock. Stops at damage, after printing every
record before it, and exits 1 naming the file and offset.
  --force         read past damage: print {"damage":{"file","offset","reason"}} (a msgpack map
                  of the same) where damage lies, then go on from the next whole, checksummed
                  record or file; every damage is named on stderr too, and the exit status is 1
  --from SEQ      the first seq to print (default: the oldest retained)
  --to SEQ        the last seq to print (default: the newest)
  --format F      ndjson (default) or msgpack
  --checkpoints   print checkpoint and consumer records too (the recovery stream leaves them out)
`,
  repair: `Usage: vecwal repair DIR [--yes]

Does what \`serve --repair\` does on opening, without serving: cuts a torn tail, and sets corruption
and everything after it aside in .broken files (never deleted), keeping the valid prefix. Takes the
directory's lock (refused while a server holds it), prints the plan, and asks before changing
anything. Exit status: 0 repaired or nothing to do, 1 declined, 2 bad usage or it could not
(a server holds the lock, a step failed: the message names it).
  --yes   do it without asking
`
}

type Write = (text: string) => void

interface Io { out: Write, err: Write }

function directoryArgument (positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError(`expected one data directory, got ${positionals.length === 0 ? 'none' : positionals.join(' ')}`)
  return positionals[0]
}

function seqOption (name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new UsageError(`--${name} must be a non-negative integer, not ${value}`)
  return Number(value)
}

function parse (argv: string[], options: ParseArgsConfig['options']): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

function segmentLines (inspection: Inspection): string[] {
  return inspection.segments.map(s =>
    `  ${s.name}  seqs ${s.lastSeq < s.baseSeq ? 'none' : `${s.baseSeq}-${s.lastSeq}`}  ${s.bytes} bytes  ${s.records} records`)
}

function damageLines (inspection: Inspection): string[] {
  const { plan, readDamage } = inspection
  const lines: string[] = []
  if (plan.corruption !== undefined) {
    const { file, offset, reason } = plan.corruption
    lines.push(`corrupt: ${file} at byte ${offset}: ${reason}`)
    lines.push('  serve refuses to start; `vecwal repair` (or serve --repair) would:')
    for (const step of plan.steps) lines.push(`  - ${describeStep(step)}`)
  } else {
    for (const step of plan.steps) lines.push(`torn: serve would ${describeStep(step)}`)
  }
  if (readDamage !== undefined) {
    lines.push(`unreadable record: ${readDamage.file} at byte ${readDamage.offset}: ${readDamage.reason}`)
    lines.push('  serve opens, but reading (the recovery stream) stops there')
  }
  return lines
}

function typeCounts (inspection: Inspection): string {
  const counts = Object.entries(inspection.recordsByType).filter(([, n]) => n > 0).map(([op, n]) => `${op} ${n}`)
  const total = Object.values(inspection.recordsByType).reduce((a, b) => a + b, 0)
  return `${total}${counts.length > 0 ? ` (${counts.join(', ')})` : ''}`
}

export async function verify (argv: string[], io: Io): Promise<number> {
  const { positionals } = parse(argv, {})
  const inspection = await inspectDirectory(directoryArgument(positionals))
  io.out(`${inspection.dir}: ${inspection.segments.length} segments kept\n`)
  io.out(segmentLines(inspection).map(l => `${l}\n`).join(''))
  io.out(`records: ${typeCounts(inspection)}\n`)
  if (isWhole(inspection)) {
    io.out('whole: every header, frame, CRC, seq and record body checks out; serve would open it as it is\n')
    return EXIT.ok
  }
  io.out(damageLines(inspection).map(l => `${l}\n`).join(''))
  return EXIT.damaged
}

/** The consumers opening would rebuild, by name: what the kept checkpoint and consumer records state. */
function consumerList (inspection: Inspection): ConsumerSummary[] {
  return summarize(inspection.plan.consumers, (inspection.plan.segments[0]?.baseSeq ?? 1) - 1)
}

export async function stat (argv: string[], io: Io): Promise<number> {
  const { positionals, values } = parse(argv, { json: { type: 'boolean' } })
  const inspection = await inspectDirectory(directoryArgument(positionals))
  const checkpoint = inspection.plan.checkpoint
  if (values.json === true) {
    io.out(`${JSON.stringify({
      dir: inspection.dir,
      segments: inspection.segments.map(s => ({ name: s.name, firstSeq: s.baseSeq, lastSeq: s.lastSeq, bytes: s.bytes, records: s.records })),
      bytes: inspection.segments.reduce((sum, s) => sum + s.bytes, 0),
      lastSeq: inspection.lastSeq,
      checkpoint,
      checkpoints: inspection.checkpoints,
      consumers: consumerList(inspection),
      recordsByType: inspection.recordsByType,
      brokenFiles: inspection.brokenFiles,
      whole: isWhole(inspection),
      damage: damageLines(inspection)
    })}\n`)
    return EXIT.ok
  }
  const bytes = inspection.segments.reduce((sum, s) => sum + s.bytes, 0)
  io.out(`${inspection.dir}: ${inspection.segments.length} segments, ${bytes} bytes, last seq ${inspection.lastSeq}\n`)
  io.out(segmentLines(inspection).map(l => `${l}\n`).join(''))
  io.out(`records: ${typeCounts(inspection)}\n`)
  const last = inspection.checkpoints.at(-1)
  io.out(`checkpoint: ${checkpoint}${last === undefined ? '' : ` (${inspection.checkpoints.length} checkpoint records, the last at seq ${last.seq})`}\n`)
  const consumers = consumerList(inspection)
  io.out(`consumers: ${consumers.length}\n`)
  for (const c of consumers) {
    io.out(`  ${c.name}: checkpoint ${c.checkpoint} (created at ${c.start}; last checkpoint ${c.checkpointedAt ?? 'never'}${c.passedByRetention ? '; passed by retention' : ''})\n`)
  }
  if (inspection.brokenFiles.length > 0) io.out(`set aside earlier: ${inspection.brokenFiles.join(', ')}\n`)
  io.out(damageLines(inspection).map(l => `${l}\n`).join(''))
  return EXIT.ok
}

export async function dump (argv: string[], io: Io, write: (chunk: Buffer) => Promise<void>): Promise<number> {
  const { positionals, values } = parse(argv, {
    from: { type: 'string' },
    to: { type: 'string' },
    format: { type: 'string' },
    checkpoints: { type: 'boolean' },
    force: { type: 'boolean' }
  })
  const format = (values.format as string | undefined) ?? 'ndjson'
  if (format !== 'ndjson' && format !== 'msgpack') throw new UsageError(`--format must be ndjson or msgpack, not ${format}`)
  const from = seqOption('from', values.from as string | undefined)
  const to = seqOption('to', values.to as string | undefined)
  const dir = directoryArgument(positionals)
  if (values.force === true) {
    const marks = await salvage(dir, { format, from: from ?? 0, to: to ?? Number.MAX_SAFE_INTEGER, includeCheckpoints: values.checkpoints === true }, write)
    for (const { file, offset, reason } of marks) io.err(`vecwal dump: damage: ${file} at byte ${offset}: ${reason}\n`)
    return marks.length === 0 ? EXIT.ok : EXIT.damaged
  }
  const inspection = await inspectDirectory(dir)
  const oldest = inspection.segments[0]?.baseSeq ?? 1
  if (from !== undefined && from < oldest) io.err(`vecwal dump: seqs before ${oldest} were deleted by retention; starting at ${oldest}\n`)
  const frames = keptFrames(inspection.dir, inspection.plan.segments, values.checkpoints === true, from, to)
  const pool = new ChunkPool()
  const chunks = format === 'ndjson' ? readNdjson(frames, pool) : readMsgpack(frames, pool)
  try {
    for await (const chunk of chunks) {
      await write(chunk)
      pool.give(chunk)
    }
  } catch (err) {
    const { file, offset, reason } = err as { file?: string, offset?: number, reason?: string }
    if (file === undefined) throw err
    io.err(`vecwal dump: stopped at damage: ${file} at byte ${String(offset)}: ${String(reason)}\n`)
    return EXIT.damaged
  }
  const newest = inspection.segments.at(-1)?.lastSeq ?? 0
  if (inspection.plan.steps.length > 0 && (to === undefined || to > newest)) {
    io.err(`vecwal dump: stopped at damage after seq ${newest}:\n${damageLines(inspection).join('\n')}\n`)
    return EXIT.damaged
  }
  return EXIT.ok
}

function printingLogger (out: Write): WalLogger {
  const line = (fields: object, message: string): void => { out(`${message}: ${JSON.stringify(fields)}\n`) }
  return { info: line, warn: line, error: line }
}

export async function repair (argv: string[], io: Io, ask: (question: string) => Promise<string>): Promise<number> {
  const { positionals, values } = parse(argv, { yes: { type: 'boolean' } })
  const dir = directoryArgument(positionals)
  const lock = DirLock.acquire(dir)
  try {
    const inspection = await inspectDirectory(dir)
    const { plan } = inspection
    if (plan.steps.length === 0) {
      io.out(`${dir}: nothing to repair, serve would open it as it is\n`)
      if (inspection.readDamage !== undefined) io.out(`${damageLines(inspection).join('\n')}\n  (repair cuts what opening finds; this record lies inside the kept log)\n`)
      return EXIT.ok
    }
    io.out(`${dir}: ${plan.corruption === undefined ? 'a torn tail' : `corrupt at ${plan.corruption.file} byte ${plan.corruption.offset}: ${plan.corruption.reason}`}\n`)
    io.out('repair will:\n')
    for (const step of plan.steps) io.out(`  - ${describeStep(step)}\n`)
    io.out(`keeping seqs up to ${plan.nextSeq - 1}; nothing is deleted, what leaves the log stays in .broken files\n`)
    if (values.yes !== true) {
      const answer = await ask('Proceed? [y/N] ')
      if (!/^y(es)?$/i.test(answer.trim())) {
        io.out('nothing changed\n')
        return EXIT.damaged
      }
    }
    await applyOpenPlan(nodeFileIO, dir, plan, { repair: true, logger: printingLogger(io.out) })
    io.out(`repaired: the log ends at seq ${plan.nextSeq - 1}\n`)
    return EXIT.ok
  } finally {
    lock.release()
  }
}

/** Runs a tool command with the process's streams; resolves with its exit code. */
export async function runTool (command: string, argv: string[]): Promise<number> {
  const io: Io = { out: text => { process.stdout.write(text) }, err: text => { process.stderr.write(text) } }
  // A reader that stopped reading (`| head`) has all it wanted.
  process.stdout.on('error', err => {
    if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err
    process.exit(EXIT.ok)
  })
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(TOOL_USAGE[command])
    return EXIT.ok
  }
  try {
    switch (command) {
      case 'verify': return await verify(argv, io)
      case 'stat': return await stat(argv, io)
      case 'dump': return await dump(argv, io, writeStdout)
      default: return await repair(argv, io, askStdin)
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`vecwal ${command}: ${err.message}\n\n${TOOL_USAGE[command]}`)
      return EXIT.usage
    }
    io.err(`vecwal ${command}: ${err instanceof Error ? err.message : String(err)}\n`)
    return EXIT.usage
  }
}

/** Writes a chunk to stdout, waiting for it to drain when the reader is slower. */
async function writeStdout (chunk: Buffer): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    process.stdout.write(chunk, err => { err == null ? resolve() : reject(err) })
  })
}

async function askStdin (question: string): Promise<string> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout })
  try {
    return await rl.question(question)
  } finally {
    rl.close()
  }
}
