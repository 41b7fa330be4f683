// Configuration from environment variables, checked at start (env-schema with a TypeBox schema):
// a bad value stops the service with a message naming the variable.
import fs from 'node:fs'
import tls from 'node:tls'
import envSchema from 'env-schema'
import { Type, type Static } from '@sinclair/typebox'
import { DEFAULT_HEARTBEAT_MS } from './http/routes/recovery.js'
import { parseTokens, type TokenGrant } from './http/auth.js'
import type { AuthFailureLimits } from './http/auth-failures.js'
import { ENTRY_LIMITS } from './entry.js'
import type { Durability } from './log.js'
import { JETSTREAM_DEFAULTS, type JetStreamOptions } from './jetstream/jetstream-log.js'
import { WAL_DEFAULTS } from './wal/log.js'

const MiB = 1024 * 1024

/**
 * Descriptors kept back from connections, besides one per recovery stream (its segment file): the
 * active segment, the next one while rotating, the directory for its fsync, the LOCK, Node's own
 * (stdio, event loop, thread pool, signals) and one for an accept the cap then refuses.
 */
const DESCRIPTOR_HEADROOM = 64

/** Where /proc is missing, the usual soft limit of open files. */
const ASSUMED_OPEN_FILE_LIMIT = 1024

/** The soft limit of open files of this process (`ulimit -n`), from /proc/self/limits. */
export function openFileLimit (): number {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'))
    if (match !== null) return Number(match[1])
  } catch {}
  return ASSUMED_OPEN_FILE_LIMIT
}

/** A duration: a whole number of hours, minutes, seconds or (with no unit) milliseconds. */
const DURATION = /^(\d{1,12})(h|m|s|ms)?$/
const DURATION_MS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 }

/** A duration's milliseconds; the schema has checked its form. */
export function durationMs (text: string): number {
  const [, amount, unit] = DURATION.exec(text) as RegExpExecArray
  return Number(amount) * DURATION_MS[unit ?? 'ms']
}

/**
 * The most idempotency keys a cap may ask for. Both key indexes (src/wal/idempotency.ts, and the
 * JetStream backend's) keep the keys in one Map, inserting a key before the oldest is evicted, so
 * a full index deletes one entry for each it adds. A V8 Map's table holds 2^24 entries, deleted
 * ones included until it is rebuilt, and it is rebuilt at the same size only when at least half
 * of it is deleted entries: past 2^23 live keys, the churn asks for a larger table, which throws a
 * RangeError (a write would answer 500). Tried: a cap of 2^23 holds under any number of writes,
 * 2^23 + 1 throws within 2^24 of them.
 */
const MAX_IDEMPOTENCY_KEYS = 2 ** 23

/** One or more nats:// or tls:// URLs (host[:port]), comma-separated. */
const NATS_URL = '(nats|tls)://[^,\\s/]+'
const NATS_SERVERS_PATTERN = `^${NATS_URL}(,${NATS_URL})*$`

export const ConfigSchema = Type.Object({
  VECWAL_HOST: Type.String({ default: '127.0.0.1', minLength: 1, description: 'address to listen on' }),
  VECWAL_PORT: Type.Integer({ default: 8080, minimum: 0, maximum: 65535, description: 'port to listen on (0: any free port)' }),
  VECWAL_DATA_DIR: Type.String({ default: './data', minLength: 1, description: 'directory of the segment files' }),
  VECWAL_DURABILITY: Type.Union([Type.Literal('fsync'), Type.Literal('none')], { default: WAL_DEFAULTS.durability, description: 'fsync: answer writes after fdatasync; none: after the write call (tests and benchmarks only)' }),
  VECWAL_SEGMENT_BYTES: Type.Integer({ default: WAL_DEFAULTS.segmentBytes, minimum: 4096, description: 'rotate to a new segment before one would pass this size' }),
  VECWAL_RETAIN_SEGMENTS: Type.Integer({ default: WAL_DEFAULTS.retainSegments, minimum: 0, description: 'sealed segments kept after every consumer\'s checkpoint covers them' }),
  VECWAL_RETAIN_MAX_BYTES: Type.Integer({ default: WAL_DEFAULTS.retainMaxBytes, minimum: 0, description: 'once the log holds more bytes, retention deletes its oldest sealed segments even past consumers\' checkpoints (such a consumer then reads 410 WAL_RANGE_GONE); 0: never. Segment backend only: refused with VECWAL_BACKEND=jetstream' }),
  VECWAL_QUEUE_LIMIT_BYTES: Type.Integer({ default: WAL_DEFAULTS.queueLimitBytes, minimum: 4096, description: 'write queue limit; past it writes get 503 with Retry-After' }),
  // The service keeps room for checkpoints by default; the engine, for a library caller, keeps none.
  VECWAL_MIN_FREE_BYTES: Type.Integer({ default: 64 * MiB, minimum: 0, description: 'below this many free bytes on the data directory\'s file system, writes get 507 WAL_DISK_FULL while checkpoints still pass (0: never)' }),
  VECWAL_BODY_LIMIT_BYTES: Type.Integer({ default: 16 * MiB, minimum: 1024, description: 'largest request body; past it 413' }),
  VECWAL_BODY_BUDGET_BYTES: Type.Integer({ default: 256 * MiB, minimum: 1024, description: 'bytes of request bodies received at once, all requests together (each reserves its Content-Length, or the body limit if unknown); past it 503 with Retry-After' }),
  VECWAL_IDLE_TIMEOUT_MS: Type.Integer({ default: 60_000, minimum: 100, description: 'a connection that sends nothing and takes nothing this long is closed: a stalled upload, a recovery reader that stopped reading, a kept-alive connection between requests (at least 1 s there)' }),
  VECWAL_DIMENSIONS: Type.Optional(Type.Integer({ minimum: 1, maximum: ENTRY_LIMITS.vectorMaxLength, description: 'when set, every vector must have exactly this many values' })),
  VECWAL_LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l)), { default: 'info', description: 'pino log level' }),
  VECWAL_REPAIR: Type.Boolean({ default: false, description: 'open past corruption: keep the valid prefix, set the rest aside in .broken files' }),
  VECWAL_TX_MAX_BYTES: Type.Integer({ default: WAL_DEFAULTS.transactions.maxBytes, minimum: 1024, description: 'bytes one transaction may stage' }),
  VECWAL_TX_TOTAL_BYTES: Type.Integer({ default: WAL_DEFAULTS.transactions.maxTotalBytes, minimum: 1024, description: 'bytes all open transactions may hold together: what they staged, and 1 KiB each' }),
  VECWAL_TX_IDLE_MS: Type.Integer({ default: WAL_DEFAULTS.transactions.idleMs, minimum: 10, description: 'a transaction untouched this long is aborted' }),
  VECWAL_TOKENS: Type.Optional(Type.String({ description: 'bearer tokens with scopes: write:TOKEN1,read:TOKEN2,admin:TOKEN3' })),
  VECWAL_TOKENS_FILE: Type.Optional(Type.String({ minLength: 1, description: 'a file holding the same, one grant a line' })),
  VECWAL_PROTECT_METRICS: Type.Boolean({ default: false, description: 'with tokens, /metrics needs the read scope too' }),
  VECWAL_AUTH_FAILURES_PER_MINUTE: Type.Integer({ default: 60, minimum: 1, description: 'with tokens, failed authentications a client address may make in a minute; past them 429 with Retry-After, and only tokens that address has already used are accepted' }),
  VECWAL_AUTH_TRACKED_ADDRESSES: Type.Integer({ default: 10_000, minimum: 1, description: 'client addresses whose authentications are tracked at once; past it the one seen least recently is forgotten' }),
  VECWAL_TLS_CERT: Type.Optional(Type.String({ minLength: 1, description: 'PEM certificate file; with VECWAL_TLS_KEY serves HTTPS' })),
  VECWAL_TLS_KEY: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key file' })),
  VECWAL_GROUP_COMMIT: Type.Boolean({ default: true, description: 'false gives every write its own fsync: a benchmark reference, never for production' }),
  VECWAL_MAX_STREAMS: Type.Integer({ default: 16, minimum: 1, description: 'recovery streams open at once, follow streams included; past it 503 with Retry-After' }),
  VECWAL_HEARTBEAT_MS: Type.Optional(Type.Integer({ minimum: 10, description: `a follow stream (follow=true) silent this long sends a heartbeat; must be below VECWAL_IDLE_TIMEOUT_MS (default: ${DEFAULT_HEARTBEAT_MS}, or half VECWAL_IDLE_TIMEOUT_MS if that is less)` })),
  VECWAL_MAX_CONNECTIONS: Type.Optional(Type.Integer({ minimum: 1, description: `connections open at once; past it a new one is closed at once (default: the soft limit of open files less VECWAL_MAX_STREAMS and ${DESCRIPTOR_HEADROOM}, kept for segment files and the runtime)` })),
  VECWAL_IDEMPOTENCY_WINDOW: Type.String({ default: '24h', pattern: DURATION.source, description: 'how long an idempotency key is remembered after its write (while its record is retained): a duration like 24h, 90m, 30s, or milliseconds' }),
  VECWAL_IDEMPOTENCY_MAX_KEYS: Type.Integer({ default: WAL_DEFAULTS.idempotency.maxKeys, minimum: 1, maximum: MAX_IDEMPOTENCY_KEYS, description: `idempotency keys remembered at most (about 100 bytes each and one a character; at most ${MAX_IDEMPOTENCY_KEYS}, a JavaScript Map's limit); past it the oldest are forgotten early, counted in vecwal_idempotency_keys_evicted_total` }),
  VECWAL_REQUEST_TIMEOUT_MS: Type.Integer({ default: 120_000, minimum: 100, description: 'a request (headers and body) not received whole this long after it began gets 408 and its connection is closed; responses are not limited' }),
  VECWAL_BACKEND: Type.Union([Type.Literal('segments'), Type.Literal('jetstream')], { default: 'segments', description: 'segments: the embedded engine, files in VECWAL_DATA_DIR; jetstream: a NATS JetStream stream (VECWAL_NATS_*)' }),
  VECWAL_NATS_SERVERS: Type.Optional(Type.String({ pattern: NATS_SERVERS_PATTERN, description: 'jetstream: comma-separated NATS URLs, e.g. nats://nats-1:4222,nats://nats-2:4222' })),
  VECWAL_NATS_STREAM: Type.String({ default: 'vecwal', pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'jetstream: the stream\'s name (letters, digits, _ and -), created if it does not exist' }),
  VECWAL_NATS_REPLICAS: Type.Integer({ default: JETSTREAM_DEFAULTS.replicas, minimum: 1, maximum: 5, description: 'jetstream: the stream\'s replicas when it is created; an existing stream must have as many' }),
  VECWAL_NATS_TIMEOUT_MS: Type.Integer({ default: JETSTREAM_DEFAULTS.timeoutMs, minimum: 100, description: 'jetstream: how long a write waits for its ack before 503 WAL_UNAVAILABLE' }),
  VECWAL_NATS_CREDS: Type.Optional(Type.String({ minLength: 1, description: 'jetstream: a NATS credentials file (JWT and NKey seed)' })),
  VECWAL_NATS_USER: Type.Optional(Type.String({ minLength: 1, description: 'jetstream: NATS user, with VECWAL_NATS_PASSWORD' })),
  VECWAL_NATS_PASSWORD: Type.Optional(Type.String({ minLength: 1, description: 'jetstream: NATS password' })),
  VECWAL_NATS_TOKEN: Type.Optional(Type.String({ minLength: 1, description: 'jetstream: NATS token' })),
  VECWAL_NATS_TLS_CA: Type.Optional(Type.String({ minLength: 1, description: 'jetstream: PEM CA file the servers\' certificates are checked against (and TLS required)' })),
  VECWAL_NATS_TLS_CERT: Type.Optional(Type.String({ minLength: 1, description: 'jetstream: PEM client certificate file, with VECWAL_NATS_TLS_KEY, for servers that verify clients (mutual TLS; and TLS required)' })),
  VECWAL_NATS_TLS_KEY: Type.Optional(Type.String({ minLength: 1, description: 'jetstream: PEM private key file of VECWAL_NATS_TLS_CERT' }))
})

type Env = Static<typeof ConfigSchema>

export interface Config {
  host: string
  port: number
  dataDir: string
  durability: Durability
  segmentBytes: number
  retainSegments: number
  retainMaxBytes: number
  queueLimitBytes: number
  minFreeBytes: number
  bodyLimitBytes: number
  bodyBudgetBytes: number
  idleTimeoutMs: number
  dimensions?: number
  logLevel: string
  repair: boolean
  transactions: { maxBytes: number, maxTotalBytes: number, idleMs: number }
  tokens: TokenGrant[]
  protectMetrics: boolean
  authFailures: AuthFailureLimits
  tls?: { cert: Buffer, key: Buffer }
  groupCommit: boolean
  maxStreams: number
  heartbeatMs: number
  maxConnections: number
  requestTimeoutMs: number
  idempotency: { windowMs: number, maxKeys: number }
  /** Set when VECWAL_BACKEND is jetstream: where the log lives instead of dataDir. */
  jetstream?: Omit<JetStreamOptions, 'queueLimitBytes' | 'transactions' | 'logger' | 'observer'>
}

export class ConfigError extends Error {}

/** The variables the schema does not know: most likely misspelt. */
export function unknownVariables (env: NodeJS.ProcessEnv): string[] {
  return Object.keys(env).filter(k => k.startsWith('VECWAL_') && !(k in ConfigSchema.properties))
}

export function loadConfig (env: NodeJS.ProcessEnv = process.env, openFiles: number = openFileLimit()): Config {
  let vars: Env
  try {
    vars = envSchema<Env>({ schema: ConfigSchema, data: env, dotenv: false })
  } catch (err) {
    throw new ConfigError(`bad configuration: ${(err as Error).message}`)
  }
  if ((vars.VECWAL_TLS_CERT === undefined) !== (vars.VECWAL_TLS_KEY === undefined)) {
    throw new ConfigError('bad configuration: VECWAL_TLS_CERT and VECWAL_TLS_KEY go together')
  }
  let tokens: TokenGrant[]
  try {
    tokens = parseTokens(vars.VECWAL_TOKENS ?? '')
  } catch (err) {
    throw new ConfigError(`bad configuration: VECWAL_TOKENS: ${(err as Error).message}`)
  }
  if (vars.VECWAL_TOKENS_FILE !== undefined) {
    try {
      tokens.push(...parseTokens(fs.readFileSync(vars.VECWAL_TOKENS_FILE, 'utf8')))
    } catch (err) {
      throw new ConfigError(`bad configuration: VECWAL_TOKENS_FILE: ${(err as Error).message}`)
    }
  }
  const maxConnections = vars.VECWAL_MAX_CONNECTIONS ?? openFiles - vars.VECWAL_MAX_STREAMS - DESCRIPTOR_HEADROOM
  if (maxConnections < 1) {
    throw new ConfigError(`bad configuration: VECWAL_MAX_CONNECTIONS: the open files limit of ${openFiles} leaves no descriptor for connections ` +
      `once VECWAL_MAX_STREAMS (${vars.VECWAL_MAX_STREAMS}) and ${DESCRIPTOR_HEADROOM} for files and the runtime are kept back; raise it (ulimit -n)`)
  }
  const heartbeatMs = vars.VECWAL_HEARTBEAT_MS ?? Math.min(DEFAULT_HEARTBEAT_MS, Math.floor(vars.VECWAL_IDLE_TIMEOUT_MS / 2))
  if (heartbeatMs >= vars.VECWAL_IDLE_TIMEOUT_MS) {
    throw new ConfigError(`bad configuration: VECWAL_HEARTBEAT_MS (${heartbeatMs}) must be below VECWAL_IDLE_TIMEOUT_MS (${vars.VECWAL_IDLE_TIMEOUT_MS}), or idle followers are cut`)
  }
  let tls: Config['tls']
  if (vars.VECWAL_TLS_CERT !== undefined && vars.VECWAL_TLS_KEY !== undefined) {
    try {
      tls = { cert: fs.readFileSync(vars.VECWAL_TLS_CERT), key: fs.readFileSync(vars.VECWAL_TLS_KEY) }
    } catch (err) {
      throw new ConfigError(`bad configuration: VECWAL_TLS_CERT/VECWAL_TLS_KEY: ${(err as Error).message}`)
    }
  }
  return {
    jetstream: vars.VECWAL_BACKEND === 'jetstream' ? jetstreamConfig(vars) : undefined,
    host: vars.VECWAL_HOST,
    port: vars.VECWAL_PORT,
    dataDir: vars.VECWAL_DATA_DIR,
    durability: vars.VECWAL_DURABILITY,
    segmentBytes: vars.VECWAL_SEGMENT_BYTES,
    retainSegments: vars.VECWAL_RETAIN_SEGMENTS,
    retainMaxBytes: vars.VECWAL_RETAIN_MAX_BYTES,
    queueLimitBytes: vars.VECWAL_QUEUE_LIMIT_BYTES,
    minFreeBytes: vars.VECWAL_MIN_FREE_BYTES,
    bodyLimitBytes: vars.VECWAL_BODY_LIMIT_BYTES,
    bodyBudgetBytes: vars.VECWAL_BODY_BUDGET_BYTES,
    idleTimeoutMs: vars.VECWAL_IDLE_TIMEOUT_MS,
    dimensions: vars.VECWAL_DIMENSIONS,
    logLevel: vars.VECWAL_LOG_LEVEL,
    repair: vars.VECWAL_REPAIR,
    transactions: { maxBytes: vars.VECWAL_TX_MAX_BYTES, maxTotalBytes: vars.VECWAL_TX_TOTAL_BYTES, idleMs: vars.VECWAL_TX_IDLE_MS },
    tokens,
    protectMetrics: vars.VECWAL_PROTECT_METRICS,
    authFailures: { perMinute: vars.VECWAL_AUTH_FAILURES_PER_MINUTE, maxAddresses: vars.VECWAL_AUTH_TRACKED_ADDRESSES },
    tls,
    groupCommit: vars.VECWAL_GROUP_COMMIT,
    maxStreams: vars.VECWAL_MAX_STREAMS,
    heartbeatMs,
    maxConnections,
    requestTimeoutMs: vars.VECWAL_REQUEST_TIMEOUT_MS,
    idempotency: { windowMs: durationMs(vars.VECWAL_IDEMPOTENCY_WINDOW), maxKeys: vars.VECWAL_IDEMPOTENCY_MAX_KEYS }
  }
}

/** The JetStream backend's settings, each file checked readable now rather than at the first connect. */
function jetstreamConfig (vars: Env): NonNullable<Config['jetstream']> {
  if (vars.VECWAL_NATS_SERVERS === undefined) throw new ConfigError('bad configuration: VECWAL_NATS_SERVERS is required with VECWAL_BACKEND=jetstream')
  // Purging by bytes would need each message's size below the point; JetStream tells only totals.
  if (vars.VECWAL_RETAIN_MAX_BYTES > 0) {
    throw new ConfigError('bad configuration: VECWAL_RETAIN_MAX_BYTES is for the segment backend; with VECWAL_BACKEND=jetstream retention purges only below the lowest consumer checkpoint (README: JetStream)')
  }
  if ((vars.VECWAL_NATS_USER === undefined) !== (vars.VECWAL_NATS_PASSWORD === undefined)) {
    throw new ConfigError('bad configuration: VECWAL_NATS_USER and VECWAL_NATS_PASSWORD go together')
  }
  if ((vars.VECWAL_NATS_TLS_CERT === undefined) !== (vars.VECWAL_NATS_TLS_KEY === undefined)) {
    throw new ConfigError('bad configuration: VECWAL_NATS_TLS_CERT and VECWAL_NATS_TLS_KEY go together')
  }
  for (const name of ['VECWAL_NATS_CREDS', 'VECWAL_NATS_TLS_CA', 'VECWAL_NATS_TLS_CERT', 'VECWAL_NATS_TLS_KEY'] as const) {
    const file = vars[name]
    if (file === undefined) continue
    try {
      fs.accessSync(file, fs.constants.R_OK)
    } catch (err) {
      throw new ConfigError(`bad configuration: ${name}: ${(err as Error).message}`)
    }
  }
  if (vars.VECWAL_NATS_TLS_CERT !== undefined && vars.VECWAL_NATS_TLS_KEY !== undefined) {
    // A key that is not the certificate's would otherwise show only as a failed handshake.
    try {
      tls.createSecureContext({ cert: fs.readFileSync(vars.VECWAL_NATS_TLS_CERT), key: fs.readFileSync(vars.VECWAL_NATS_TLS_KEY) })
    } catch (err) {
      throw new ConfigError(`bad configuration: VECWAL_NATS_TLS_CERT/VECWAL_NATS_TLS_KEY: ${(err as Error).message}`)
    }
  }
  return {
    servers: vars.VECWAL_NATS_SERVERS.split(','),
    stream: vars.VECWAL_NATS_STREAM,
    replicas: vars.VECWAL_NATS_REPLICAS,
    timeoutMs: vars.VECWAL_NATS_TIMEOUT_MS,
    credsFile: vars.VECWAL_NATS_CREDS,
    user: vars.VECWAL_NATS_USER,
    pass: vars.VECWAL_NATS_PASSWORD,
    token: vars.VECWAL_NATS_TOKEN,
    tlsCaFile: vars.VECWAL_NATS_TLS_CA,
    tlsCertFile: vars.VECWAL_NATS_TLS_CERT,
    tlsKeyFile: vars.VECWAL_NATS_TLS_KEY
  }
}

/** The variables with their defaults and descriptions, for `vecwal --help` and the README. */
export function describeVariables (): string[] {
  return Object.entries(ConfigSchema.properties).map(([name, schema]) => {
    const { default: fallback, description } = schema as { default?: unknown, description?: string }
    return `  ${name.padEnd(26)} ${description ?? ''}${fallback === undefined ? '' : ` (default ${String(fallback)})`}`
  })
}
