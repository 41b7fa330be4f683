// The reference of P1 and P2: the service's own Fastify app, built by buildApp (the same routes,
// schemas, validators, content-type parsers, hooks and metrics), with a stand-in for the log that
// answers every append at once from a counter. Whatever the service loses against it is what the
// log behind the routes costs. Run as a child by the bench: node dist/bench/ceiling-server.js
import { loadConfig } from '../src/config.js'
import { buildApp } from '../src/http/app.js'
import { createMetrics } from '../src/http/metrics.js'
import { createLogger } from '../src/main.js'
import type { Log } from '../src/log.js'

let lastSeq = 0

// Only what the write and health routes call. Any other route reaching for the log fails loudly.
const noLog: Pick<Log, 'state' | 'appendWith' | 'appendBatchWith' | 'transactions'> = {
  state: 'ok',
  transactions: {} as Log['transactions'],
  appendWith: async () => ({ seq: ++lastSeq, replayed: false }),
  appendBatchWith: async entries => ({ seq: ++lastSeq, replayed: false, count: entries.length })
}

const config = loadConfig()
const logger = createLogger(config.logLevel)
const app = await buildApp({
  log: noLog as Log,
  logger,
  metrics: createMetrics(() => undefined),
  bodyLimitBytes: config.bodyLimitBytes,
  idleTimeoutMs: config.idleTimeoutMs,
  dimensions: config.dimensions
})
await app.listen({ host: config.host, port: config.port })
const address = app.server.address()
const port = typeof address === 'object' && address !== null ? address.port : config.port
logger.info({ url: `http://${config.host}:${port}` }, 'ceiling server is serving')

process.once('SIGTERM', () => {
  app.close().then(() => process.exit(0), (err: unknown) => {
    logger.fatal({ err }, 'stopping failed')
    process.exit(1)
  })
})
