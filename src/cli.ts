#!/usr/bin/env node
// The `vecwal` command.
import { ConfigError, describeVariables, loadConfig, unknownVariables } from './config.js'
import { CorruptLogError, DirectoryLockedError, OpenStepError } from './errors.js'

const usage = `vecwal: a durable write-ahead log for vector indexes, served over HTTP

Usage:
  vecwal [serve] [--repair]   start the service (the default command)
  vecwal verify DIR           check every segment and record of DIR, changing nothing
  vecwal stat DIR [--json]    segments, seq ranges, sizes, records by type, checkpoints
  vecwal dump DIR [...]       print the records as the recovery stream does
  vecwal repair DIR [--yes]   what serve --repair does on opening, without serving
  vecwal --help               this text; vecwal COMMAND --help for a command's

  --repair   open a damaged log anyway: keep the valid prefix and set everything after
             the damage aside in .broken files (never deleted); same as VECWAL_REPAIR=true

verify, stat and dump read only and take no lock: they may run beside a live server.

Environment variables:
${describeVariables().join('\n')}
`

async function serve (repair: boolean): Promise<void> {
  const config = loadConfig()
  // Loaded only to serve: `--help` and a bad variable answer without loading the server.
  const { createLogger, startService } = await import('./main.js')
  if (repair) config.repair = true
  const logger = createLogger(config.logLevel)
  for (const name of unknownVariables(process.env)) logger.warn({ variable: name }, 'unknown VECWAL_ variable ignored (misspelt?)')
  const service = await startService(config, logger)
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'stopping: finishing and fsyncing what is queued')
    service.stop().then(() => process.exit(0), (err: unknown) => {
      logger.fatal({ err }, 'stopping failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })
}

function explain (err: unknown): string {
  if (err instanceof ConfigError) return err.message
  if (err instanceof CorruptLogError) {
    return `the log is damaged: ${err.message}\n` +
      'Nothing past the damage is served. To open anyway, keeping the valid prefix and setting the rest ' +
      'aside in .broken files, start with --repair (or VECWAL_REPAIR=true).'
  }
  if (err instanceof DirectoryLockedError) return `${err.message}; two writers would destroy the log`
  if (err instanceof OpenStepError) return err.message
  return err instanceof Error ? (err.stack ?? err.message) : String(err)
}

const TOOLS = new Set(['verify', 'stat', 'dump', 'repair'])

const args = process.argv.slice(2)
if (TOOLS.has(args[0])) {
  // Loaded only for the tools: they need neither the server nor the configuration.
  const { runTool } = await import('./tools/commands.js')
  process.exitCode = await runTool(args[0], args.slice(1))
} else if (args.includes('--help') || args.includes('-h') || args[0] === 'help') {
  process.stdout.write(usage)
} else {
  const [command = 'serve', ...rest] = args[0]?.startsWith('-') === true ? ['serve', ...args] : args
  const unknown = rest.filter(a => a !== '--repair')
  if (command !== 'serve' || unknown.length > 0) {
    process.stderr.write(`vecwal: unknown command or option: ${[command, ...unknown].join(' ')}\n\n${usage}`)
    process.exit(2)
  }
  serve(rest.includes('--repair')).catch((err: unknown) => {
    process.stderr.write(`vecwal: ${explain(err)}\n`)
    process.exit(1)
  })
}
