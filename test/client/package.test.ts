// vecwal/client as a user gets it: its types are what openapi-typescript makes of the committed
// OpenAPI document today (no drift), the package's "exports" resolve it, and code written for a
// browser (DOM globals, no Node types) type-checks against its declarations.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ROOT } from '../helpers/project.js'
import type { TeardownTarget } from '../helpers/wal.js'

const GENERATOR = path.join(ROOT, 'node_modules', 'openapi-typescript', 'bin', 'cli.js')
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

/** A folder inside the package, where `vecwal/client` resolves as it does for a user (a package may import itself by name). */
function scratch (t: TeardownTarget): string {
  const dir = fs.mkdtempSync(path.join(ROOT, 'dist', 'client-check-'))
  t.teardown(() => { fs.rmSync(dir, { recursive: true, force: true }) })
  return dir
}

t.test('src/client/openapi-types.ts is what openapi-typescript makes of openapi/openapi.json', async t => {
  const out = path.join(scratch(t), 'openapi-types.ts')
  const run = spawnSync(process.execPath, [GENERATOR, path.join(ROOT, 'openapi', 'openapi.json'), '-o', out], { encoding: 'utf8', timeout: 60_000 })
  t.equal(run.status, 0, run.stderr)
  t.equal(fs.readFileSync(path.join(ROOT, 'src', 'client', 'openapi-types.ts'), 'utf8'), fs.readFileSync(out, 'utf8'),
    'the committed types match the document: run `npm run openapi` after changing a route')
})

t.test('the package exports vecwal/client with its types', async t => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { types: string, default: string }> }
  const entry = pkg.exports['./client']
  t.ok(fs.existsSync(path.join(ROOT, entry.types)), `${entry.types} is built`)
  const specifier = 'vecwal/client'
  const client = await import(specifier) as Record<string, unknown>
  t.type(client.VecwalClient, 'function', 'VecwalClient is exported')
  t.type(client.VecwalError, 'function', 'VecwalError is exported')
})

t.test('browser code type-checks against the declarations, and a wrong entry does not', async t => {
  const dir = scratch(t)
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022', 'DOM'], types: [], strict: true, noEmit: true, skipLibCheck: true },
    files: ['consumer.ts']
  }))
  fs.writeFileSync(path.join(dir, 'consumer.ts'), `
import { VecwalClient, VecwalError, type Entry } from 'vecwal/client'
const client = new VecwalClient({ baseUrl: location.origin, encoding: 'msgpack', retry: { attempts: 3 } })
const entry: Entry = { op: 'insert', id: 'a', vector: new Float32Array([1, 2]), metadata: { k: 'v' } }
export async function run (): Promise<number> {
  const { seq, replayed } = await client.append(entry)
  const batch = await client.appendBatch([entry, { op: 'delete', id: 'b' }])
  const tx = await client.transaction()
  await tx.stage([entry])
  const committed = await tx.commit({ idempotencyKey: 'k1' })
  const status = await client.status()
  const lastSeq: number = status.lastSeq
  const { data } = await client.api.GET('/v1/status')
  // @ts-expect-error an op the API does not have
  await client.append({ op: 'upsert', id: 'c' })
  // @ts-expect-error a delete carries no vector
  await client.append({ op: 'delete', id: 'c', vector: [1] })
  return seq + batch.count + committed.seq + lastSeq + (data?.checkpoint ?? 0) + (replayed ? 1 : 0) + (new VecwalError('x', 503, 'WAL_QUEUE_FULL', 1).status ?? 0)
}
`)
  const check = spawnSync(process.execPath, [TSC, '-p', dir], { encoding: 'utf8', timeout: 120_000 })
  t.equal(check.status, 0, `tsc: ${check.stdout}${check.stderr}`)
})
