// The README's configuration table, held to the one place the variables are defined (ConfigSchema
// in src/config.ts, whose engine defaults come from the engine's WAL_DEFAULTS): every variable in
// both, and each default written as the schema states it.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ConfigSchema } from '../src/config.js'
import { ROOT } from './helpers/project.js'

const MiB = 1024 * 1024

/** A default as the README writes it: sizes in MiB, other numbers plain, words in backticks. */
function written (value: unknown): string {
  if (typeof value === 'number') return value >= MiB && value % MiB === 0 ? `${value / MiB} MiB` : String(value)
  return `\`${String(value)}\``
}

const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
/** name -> the default cell of its row. */
const rows = new Map<string, string>()
for (const line of readme.split('\n')) {
  const cells = line.split('|').map(cell => cell.trim())
  if (!/^`VECWAL_/.test(cells[1] ?? '')) continue
  for (const name of cells[1].matchAll(/`(VECWAL_[A-Z_]+)`/g)) rows.set(name[1], cells[2])
}
const variables = ConfigSchema.properties as Record<string, { default?: unknown, description?: string }>

t.test('every variable is in the README table, and the table names no other', async t => {
  t.same([...rows.keys()].sort(), Object.keys(variables).sort())
})

t.test('each default is written as the schema states it', async t => {
  for (const [name, schema] of Object.entries(variables)) {
    const cell = rows.get(name)
    if (schema.default !== undefined) t.equal(cell, written(schema.default), name)
    else if (schema.description?.includes('default:') !== true) t.equal(cell, 'unset', `${name} has no default`)
    else t.notOk(cell === 'unset' || cell === undefined, `${name}: its derived default is described`)
  }
})
