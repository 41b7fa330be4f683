// `npm run bench`: runs the scenarios of issue 4 against the built service and prints one markdown
// table, every headline figure a ratio against a reference measured in the same run.
import os from 'node:os'
import { followScenarios } from './follow-scenarios.js'
import { batchIngest, singleInserts } from './ingest-scenarios.js'
import { jetstreamScenarios } from './jetstream-scenarios.js'
import { parseOptions, USAGE, type BenchOptions, type ScenarioGroup } from './options.js'
import { open, READ_NOTES, recovery } from './read-scenarios.js'
import { markdownTable, type Row } from './table.js'

const GROUPS: Record<ScenarioGroup, (options: BenchOptions) => Promise<Row[]>> = {
  P1: singleInserts,
  P2: batchIngest,
  P3: recovery,
  P4: open,
  P5: followScenarios,
  PJ: jetstreamScenarios
}

/**
 * Past this the bench gives up, and the exit handler stops every child it started. Quick mode runs
 * every scenario, the follow delays (P5), the keyed loads and opens (P1k, P2k, P4k) and the
 * JetStream loads (PJ, a quarter minute of it) included, in under a minute on two idle cores: the
 * limit leaves room for a busy machine, within tap's 240 s a test file.
 */
const TIME_LIMIT_MS = { quick: 220_000, full: 20 * 60_000 }

function machine (): string[] {
  const cpus = os.cpus()
  return [
    `- date: ${new Date().toISOString()}`,
    `- cores: ${os.availableParallelism()} (${cpus[0]?.model.trim() ?? 'unknown CPU'})`,
    `- Node: ${process.version}, ${os.platform()} ${os.release()}`,
    `- load average before the run: ${os.loadavg().map(l => l.toFixed(2)).join(' ')}`
  ]
}

async function main (): Promise<void> {
  const options = parseOptions(process.argv.slice(2))
  if (options === 'help') {
    process.stdout.write(USAGE)
    return
  }
  setTimeout(() => {
    process.stderr.write('bench: over its time limit, stopping\n')
    process.exit(1)
  }, options.quick ? TIME_LIMIT_MS.quick : TIME_LIMIT_MS.full).unref()

  const header = machine()
  const started = performance.now()
  const rows: Row[] = []
  for (const group of options.groups) {
    const groupStarted = performance.now()
    rows.push(...await GROUPS[group](options))
    process.stderr.write(`bench: ${group} took ${((performance.now() - groupStarted) / 1000).toFixed(1)} s\n`)
  }
  const elapsed = (performance.now() - started) / 1000
  const settings = `- ${options.quick ? 'quick mode (tiny sizes, figures meaningless), ' : ''}` +
    `loads: ${options.warmupSeconds} s warm-up, then ${options.seconds} s measured in ${options.rounds} interleaved round${options.rounds === 1 ? '' : 's'}, from wrk (one thread)`
  process.stdout.write([
    '## vecwal bench',
    '',
    ...header,
    settings,
    `- load average after: ${os.loadavg().map(l => l.toFixed(2)).join(' ')}; the bench took ${elapsed.toFixed(0)} s`,
    '',
    markdownTable(rows),
    '',
    ...(options.groups.some(g => g === 'P3' || g === 'P4') ? READ_NOTES.map(note => `- ${note}`) : []),
    ''
  ].join('\n'))
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exit(1)
})
