// The structure the README's Layout states, held to the code: the routes and the engine meet only
// in src/log.ts. src/http imports nothing of either backend (src/wal, src/jetstream), neither
// backend anything of src/http or of the other, and none reaches src/main.ts, src/cli.ts or
// src/tools. src/records, the read forms any backend uses,
// imports only src/msgpack, src/entry.ts and src/log.ts.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ROOT } from './helpers/project.js'

const SRC = path.join(ROOT, 'src')

/** Every .ts file below `dir`, with the src-relative paths of the project files it imports. */
function imports (dir: string): Array<{ file: string, imported: string[] }> {
  const out: Array<{ file: string, imported: string[] }> = []
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue
    const file = path.join(entry.parentPath, entry.name)
    const text = fs.readFileSync(file, 'utf8')
    const imported = [...text.matchAll(/^(?:import|export)[^'"]*from '(\.[^']+)'/gm)]
      .map(match => path.relative(SRC, path.resolve(path.dirname(file), match[1])).replace(/\.js$/, '.ts'))
    out.push({ file: path.relative(SRC, file), imported })
  }
  return out
}

const forbidden: Array<{ from: string, may: string, not: RegExp }> = [
  { from: 'http', may: 'the HTTP layer', not: /^(wal|jetstream|tools|client)\/|^(main|cli)\.ts$/ },
  { from: 'wal', may: 'the engine', not: /^(http|tools|jetstream|client)\/|^(main|cli)\.ts$/ },
  { from: 'jetstream', may: 'the JetStream backend', not: /^(http|wal|tools|client)\/|^(main|cli)\.ts$/ },
  { from: 'payload', may: 'the payload writer', not: /^(http|wal|jetstream|tools|client)\/|^(main|cli)\.ts$/ },
  { from: 'msgpack', may: 'the msgpack reader', not: /^(http|wal|tools|records)\/|^(main|cli)\.ts$/ },
  { from: 'records', may: 'the record transcoders', not: /^(?!(records|msgpack)\/|(entry|log)\.ts$)/ },
  { from: 'client', may: 'the client, which runs in browsers and knows the service only by its OpenAPI document', not: /^(?!client\/)/ }
]

for (const rule of forbidden) {
  t.test(`${rule.may} (src/${rule.from}) imports only what the Layout says`, async t => {
    const files = imports(path.join(SRC, rule.from))
    t.ok(files.length > 0, `src/${rule.from} has files`)
    const crossing = files.flatMap(({ file, imported }) => imported.filter(i => rule.not.test(i)).map(i => `${file} -> ${i}`))
    t.same(crossing, [])
  })
}

t.test('src/log.ts, the seam, imports neither side', async t => {
  const [seam] = imports(SRC).filter(f => f.file === 'log.ts')
  t.same(seam.imported.filter(i => /^(http|wal|tools)\//.test(i)), [])
})

t.test('the examples are clients of the HTTP API: they import nothing from src', async t => {
  const files = imports(path.join(ROOT, 'examples'))
  t.ok(files.length > 0, 'examples/ has files')
  t.same(files.flatMap(({ file, imported }) => imported.filter(i => !i.startsWith('..')).map(i => `${file} -> ${i}`)), [])
})
