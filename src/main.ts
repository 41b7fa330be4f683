// Wires the service together: configuration, logger, backend (the segment engine or JetStream),
// HTTP server.
import { pino, type Logger } from 'pino'
import type { Config } from './config.js'
import { buildApp, type App } from './http/app.js'
import { createMetrics } from './http/metrics.js'
import { JetStreamLog } from './jetstream/jetstream-log.js'
import type { Log, LogObserver } from './log.js'
import { WriteAheadLog, type WalOptions } from './wal/log.js'

export interface Service {
  app: App
  log: Log
  logger: Logger
  /** Where the server listens, e.g. http://127.0.0.1:8080 */
  url: string
  /** Stops accepting, lets requests in flight finish, makes everything queued durable, closes the log. */
  stop: () => Promise<void>
}

export function createLogger (level: string): Logger {
  // Tokens never reach the logs, whatever logs a request or its headers.
  return pino({ level, redact: { paths: ['req.headers.authorization', 'headers.authorization'], censor: '[redacted]' } })
}

/** What a test may put under the engine: a file layer that fails or forgets on purpose. */
export type EngineOverrides = Pick<WalOptions, 'io'>

async function openBackend (config: Config, logger: Logger, observer: LogObserver, overrides: EngineOverrides): Promise<Log> {
  if (config.jetstream !== undefined) {
    return await JetStreamLog.open({
      ...config.jetstream,
      queueLimitBytes: config.queueLimitBytes,
      transactions: config.transactions,
      idempotency: config.idempotency,
      logger: logger.child({ component: 'jetstream' }),
      observer
    })
  }
  return await WriteAheadLog.open({
    dir: config.dataDir,
    durability: config.durability,
    segmentBytes: config.segmentBytes,
    retainSegments: config.retainSegments,
    retainMaxBytes: config.retainMaxBytes,
    queueLimitBytes: config.queueLimitBytes,
    minFreeBytes: config.minFreeBytes,
    maxBatchRecords: config.groupCommit ? undefined : 1,
    transactions: config.transactions,
    idempotency: config.idempotency,
    repair: config.repair,
    logger: logger.child({ component: 'wal' }),
    observer,
    ...overrides
  })
}

export async function startService (config: Config, logger: Logger = createLogger(config.logLevel), overrides: EngineOverrides = {}): Promise<Service> {
  let log: Log | undefined
  const metrics = createMetrics(() => log?.status(), () => log?.consumers.list())
  log = await openBackend(config, logger, metrics.observer, overrides)
  const opened = log
  let app: App
  try {
    app = await buildApp({
      log: opened,
      logger,
      metrics,
      bodyLimitBytes: config.bodyLimitBytes,
      idleTimeoutMs: config.idleTimeoutMs,
      maxStreams: config.maxStreams,
      heartbeatMs: config.heartbeatMs,
      bodyBudgetBytes: config.bodyBudgetBytes,
      maxConnections: config.maxConnections,
      requestTimeoutMs: config.requestTimeoutMs,
      dimensions: config.dimensions,
      tokens: config.tokens,
      protectMetrics: config.protectMetrics,
      authFailures: config.authFailures,
      https: config.tls
    })
    await app.listen({ host: config.host, port: config.port })
  } catch (err) {
    await opened.close()
    throw err
  }
  if (config.tokens.length === 0) {
    logger.warn({ host: config.host }, 'no VECWAL_TOKENS: every route is open to anyone who can reach this address')
  }
  if (!config.groupCommit && config.jetstream === undefined) logger.warn('group commit is off: every write pays its own fsync (a benchmark reference)')
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.port
  const host = config.host.includes(':') ? `[${config.host}]` : config.host
  const url = `${config.tls === undefined ? 'http' : 'https'}://${host}:${port}`
  const where = config.jetstream === undefined ? { dataDir: config.dataDir, durability: config.durability } : { stream: config.jetstream.stream, servers: config.jetstream.servers }
  logger.info({ url, ...where, maxConnections: config.maxConnections, maxStreams: config.maxStreams }, 'vecwal is serving')
  return {
    app,
    log: opened,
    logger,
    url,
    async stop () {
      await app.close()
      await opened.close()
      logger.info('vecwal stopped: everything acknowledged is durable')
    }
  }
}
