// The committed OpenAPI document, the Dockerfile against package.json, and the CLI's help and
// configuration errors.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { generateOpenApiDocument, OPENAPI_FILE } from '../../scripts/openapi.js'
import { ConfigError, ConfigSchema, loadConfig } from '../../src/config.js'
import { runCli, startTestService, tempDir } from '../helpers/http.js'
import { ROOT } from '../helpers/project.js'

type Json = Record<string, any>

const ROUTES: Array<[string, string]> = [
  ['post', '/v1/entries'],
  ['post', '/v1/batch'],
  ['post', '/v1/transactions'],
  ['post', '/v1/transactions/{txId}/entries'],
  ['post', '/v1/transactions/{txId}/commit'],
  ['post', '/v1/transactions/{txId}/abort'],
  ['post', '/v1/checkpoints'],
  ['get', '/v1/recovery'],
  ['get', '/v1/status'],
  ['get', '/health/live'],
  ['get', '/health/ready'],
  ['get', '/metrics']
]
const WRITE_ROUTES = ['/v1/entries', '/v1/batch', '/v1/transactions/{txId}/entries']

t.test('OpenAPI', async t => {
  const committed = fs.existsSync(OPENAPI_FILE) ? fs.readFileSync(OPENAPI_FILE, 'utf8') : ''
  const document = JSON.parse(committed === '' ? '{}' : committed) as Json

  t.test('the committed openapi/openapi.json is what the code generates', async t => {
    t.ok(committed !== '', `${OPENAPI_FILE} exists`)
    t.equal(await generateOpenApiDocument(), committed, 'regenerate with `npm run openapi` and commit the result')
  })

  t.test('the service serves the same document', async t => {
    const service = await startTestService(t)
    t.same(await (await service.call('GET', '/openapi.json')).json(), document)
  })

  t.test('OpenAPI 3.1 with every route, status and body type of the contract', async t => {
    t.match(document.openapi, /^3\.1\.\d+$/)
    for (const [method, route] of ROUTES) t.ok(document.paths?.[route]?.[method] !== undefined, `${method.toUpperCase()} ${route}`)
    for (const route of WRITE_ROUTES) {
      t.same(Object.keys(document.paths[route].post.requestBody.content).sort(), ['application/json', 'application/msgpack'], `${route} takes JSON and msgpack`)
    }
    const success: Array<[string, string, string]> = [
      ['post', '/v1/entries', '201'], ['post', '/v1/batch', '201'], ['post', '/v1/transactions', '201'],
      ['post', '/v1/transactions/{txId}/entries', '202'], ['post', '/v1/transactions/{txId}/commit', '201'],
      ['post', '/v1/transactions/{txId}/abort', '200'], ['post', '/v1/checkpoints', '201'], ['get', '/v1/recovery', '200'],
      ['get', '/health/ready', '503']
    ]
    for (const [method, route, status] of success) t.ok(document.paths[route][method].responses[status] !== undefined, `${route} documents ${status}`)
    const error = document.paths['/v1/entries'].post.responses['4XX'].content['application/json'].schema
    t.same(Object.keys(error.properties).sort(), ['code', 'error', 'message', 'statusCode'], 'errors have the one shape')
    const entry = document.paths['/v1/entries'].post.requestBody.content['application/json'].schema
    t.same(entry.oneOf.map((s: Json) => s.properties.op.enum[0]), ['insert', 'update', 'delete'], 'one schema per op')
    t.ok(entry.oneOf.every((s: Json) => s.additionalProperties === false), 'unknown fields are refused')
    t.same(Object.keys(document.paths['/v1/recovery'].get.responses['200'].content), ['application/x-ndjson', 'application/msgpack'], 'recovery in both forms')
  })

  t.test('the recovery headers are documented as headers', async t => {
    const headers = document.paths['/v1/recovery'].get.responses['200'].headers as Json | undefined
    t.same(Object.keys(headers ?? {}).sort(), ['x-vecwal-checkpoint', 'x-vecwal-last-seq'], 'exactly the two headers')
    for (const name of ['x-vecwal-checkpoint', 'x-vecwal-last-seq']) t.equal(headers?.[name]?.schema?.type, 'integer', `${name} is an integer`)
  })

  t.test('the checkpoint body is optional in the document too', async t => {
    t.equal(document.paths['/v1/checkpoints'].post.requestBody.required, false)
  })
})

interface Instruction { keyword: string, args: string }

/** The Dockerfile's instructions by stage: comments dropped, continuation lines joined. */
function dockerStages (text: string): Instruction[][] {
  const logical = text.split('\n').filter(line => !line.trimStart().startsWith('#')).join('\n').replace(/\\\n/g, ' ')
  const stages: Instruction[][] = []
  for (const line of logical.split('\n')) {
    const match = /^\s*([A-Z]+)\s+(.*)$/.exec(line)
    if (match === null) continue
    const instruction = { keyword: match[1], args: match[2].replace(/\s+/g, ' ').trim() }
    if (instruction.keyword === 'FROM') stages.push([])
    stages[stages.length - 1].push(instruction)
  }
  return stages
}

t.test('the Dockerfile builds and starts with the package.json scripts', async t => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>, bin: Record<string, string> }
  const stages = dockerStages(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))
  t.ok(stages.length >= 2, 'multi-stage')
  const build = stages[0]
  const final = stages[stages.length - 1]
  const args = (stage: Instruction[], keyword: string): string[] => stage.filter(i => i.keyword === keyword).map(i => i.args)

  for (const stage of stages) t.match(stage[0].args, /^node:20-slim(\s|$)/, `${stage[0].args}: a Node 20 slim image`)

  t.ok(args(build, 'RUN').includes('npm run build'), 'the build stage runs npm run build')
  t.type(pkg.scripts.build, 'string', 'which package.json defines')
  t.ok(args(build, 'RUN').some(r => /^npm ci\b/.test(r) && !r.includes('--omit=dev')), 'with dev dependencies (the compiler) installed')

  t.ok(args(final, 'RUN').some(r => /^npm ci\b.*--omit=dev/.test(r)), 'the final stage installs production dependencies only')
  const cmd = args(final, 'CMD')
  t.equal(cmd.length, 1, 'one CMD')
  const command = (JSON.parse(cmd[0]) as string[]).join(' ')
  t.equal(command, pkg.scripts.start, 'CMD is package.json\'s start script')
  t.equal(pkg.scripts.prestart, 'npm run build', 'whose build step (prestart) the image did at build time')
  const script = command.split(' ')[1]
  t.equal(Object.values(pkg.bin)[0], script, 'the script started is the package\'s bin')
  const copiedFromBuild = args(final, 'COPY').filter(c => c.startsWith('--from=build ')).map(c => c.split(' ').at(-1) as string)
  t.ok(copiedFromBuild.some(dest => script.startsWith(path.posix.normalize(dest) + '/')), `${script} is copied from the build stage`)

  const users = args(final, 'USER')
  t.equal(users.length, 1, 'a USER')
  t.notMatch(users[0], /^(root|0)(:|$)/, 'that is not root')
  const env = Object.fromEntries(args(final, 'ENV').flatMap(e => [...e.matchAll(/(\w+)=(\S+)/g)].map(m => [m[1], m[2]])))
  t.equal(env.VECWAL_HOST, '0.0.0.0', 'listens on every interface in the container')
  const volumes = args(final, 'VOLUME').flatMap(v => JSON.parse(v) as string[])
  t.ok(volumes.includes(env.VECWAL_DATA_DIR), `the data directory ${String(env.VECWAL_DATA_DIR)} is a volume`)
  t.ok(args(final, 'RUN').some(r => r.includes(`chown ${users[0]}:${users[0]} ${String(env.VECWAL_DATA_DIR)}`)), 'owned by that user')
  t.same(args(final, 'EXPOSE'), [env.VECWAL_PORT], 'the port exposed is the one served')
  const healthcheck = args(final, 'HEALTHCHECK')
  t.equal(healthcheck.length, 1)
  t.match(healthcheck[0], /CMD .*\/health\/ready/, 'HEALTHCHECK asks /health/ready')
})

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
    ['VECWAL_AUTH_TRACKED_ADDRESSES', '2.5']
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
  const unknown = await runCli(['frobnicate'], {})
  t.equal(unknown.code, 2, 'an unknown command exits 2')
  t.match(unknown.stderr, /unknown command or option: frobnicate/)
  t.match(unknown.stderr, /Usage:/)
})
