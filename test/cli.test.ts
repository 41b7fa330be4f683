// The CLI's help and configuration errors: --help lists the commands and every variable, and a bad
// value or an unknown command stops it with a message naming what was wrong.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ConfigError, ConfigSchema, loadConfig } from '../src/config.js'
import { runCli } from './helpers/http.js'
import { tempDir } from './helpers/wal.js'

t.test('vecwal --help lists the commands and every variable', async t => {
  const help = await runCli(['--help'], {})
  t.equal(help.code, 0)
  t.match(help.stdout, /vecwal \[serve\]/)
  t.match(help.stdout, /--help/)
  t.match(help.stdout, /--repair/)
  for (const name of Object.keys(ConfigSchema.properties)) t.match(help.stdout, new RegExp(`^\\s+${name}\\s`, 'm'), name)
  const documented = ['VECWAL_HOST', 'VECWAL_PORT', 'VECWAL_DATA_DIR', 'VECWAL_DURABILITY', 'VECWAL_SEGMENT_BYTES', 'VECWAL_RETAIN_SEGMENTS',
    'VECWAL_QUEUE_LIMIT_BYTES', 'VECWAL_BODY_LIMIT_BYTES', 'VECWAL_DIMENSIONS', 'VECWAL_LOG_LEVEL']
  t.same(documented.filter(name => !(name in ConfigSchema.properties)), [], 'the issue\'s variables are all configurable')
  t.match(help.stdout, /VECWAL_HOST\s.*\(default 127\.0\.0\.1\)/)
  t.match(help.stdout, /VECWAL_PORT\s.*\(default 8080\)/)
  t.match(help.stdout, /VECWAL_BODY_LIMIT_BYTES\s.*\(default 16777216\)/)
})

t.test('a bad value stops the CLI with a message naming the variable', async t => {
  const base = tempDir(t)
  // Each run is a whole Node start: run them side by side. Other bad values are checked in process below.
  const runs = ([['VECWAL_PORT', 'abc'], ['VECWAL_DURABILITY', 'maybe']] as const).map(([name, value]) => {
    const dataDir = path.join(base, name)
    return { name, value, dataDir, result: runCli(['serve'], { VECWAL_PORT: '0', [name]: value, VECWAL_DATA_DIR: dataDir }) }
  })
  for (const { name, value, dataDir, result } of runs) {
    await t.test(`${name}=${value}`, async t => {
      const { code, stderr } = await result
      t.equal(code, 1, 'exit code 1')
      t.match(stderr, name, 'the message names the variable')
      t.notOk(fs.existsSync(dataDir), 'nothing was opened')
    })
  }
  const cases: Array<[string, string]> = [
    ['VECWAL_PORT', '70000'],
    ['VECWAL_PORT', '80.5'],
    ['VECWAL_SEGMENT_BYTES', '100'],
    ['VECWAL_LOG_LEVEL', 'loud'],
    ['VECWAL_DIMENSIONS', '0'],
    ['VECWAL_PROTECT_METRICS', 'perhaps'],
    ['VECWAL_TOKENS', 'write:short'],
    ['VECWAL_TOKENS', 'root:rrrrrrrr'],
    ['VECWAL_TOKENS_FILE', '/nonexistent/vecwal-tokens'],
    ['VECWAL_IDLE_TIMEOUT_MS', '10'],
    ['VECWAL_AUTH_FAILURES_PER_MINUTE', '0'],
    ['VECWAL_AUTH_TRACKED_ADDRESSES', '2.5'],
    ['VECWAL_HEARTBEAT_MS', '5'],
    // Past 2^23 keys, the key index's Map would need a table larger than V8 allows (src/config.ts).
    ['VECWAL_IDEMPOTENCY_MAX_KEYS', String(2 ** 23 + 1)],
    // The default idle timeout is 60 s: a heartbeat as long would let it cut idle followers.
    ['VECWAL_HEARTBEAT_MS', '60000']
  ]
  for (const [name, value] of cases) {
    let error: unknown
    try {
      loadConfig({ [name]: value })
    } catch (err) {
      error = err
    }
    t.ok(error instanceof ConfigError, `${name}=${value} is refused`)
    t.match((error as Error | undefined)?.message, name, 'naming the variable')
  }
  t.equal(loadConfig({ VECWAL_IDEMPOTENCY_MAX_KEYS: String(2 ** 23) }).idempotency.maxKeys, 2 ** 23, 'the largest cap of idempotency keys is taken')
  t.equal(loadConfig({ VECWAL_IDLE_TIMEOUT_MS: '400' }).heartbeatMs, 200, 'unset, the heartbeat is half a short idle timeout')
  t.equal(loadConfig({}).heartbeatMs, 15_000, 'and 15 s under the default one')
  const unknown = await runCli(['frobnicate'], {})
  t.equal(unknown.code, 2, 'an unknown command exits 2')
  t.match(unknown.stderr, /unknown command or option: frobnicate/)
  t.match(unknown.stderr, /Usage:/)
})
