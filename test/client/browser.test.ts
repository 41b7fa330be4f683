// The built client (dist/src/client) in a real browser: headless Chromium loads a page from a host
// name that is not a secure context (plain http, not localhost, not a loopback address), so Web
// Crypto has no randomUUID there. The page imports the client as an ES module, its bare imports
// resolved by an import map to their packages' browser builds, and calls a real service through the
// page server's same-origin proxy: appends and a batch in JSON and msgpack, follows in every form,
// a consumer's checkpoint. It posts what it got back (as msgpack, so Float32Array vectors and -0
// survive the trip), and the test checks it against what the page was given to write.
import fs from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import { Packr } from 'msgpackr'
import t from 'tap'
import { entry, float32Bits, type Entry } from '../helpers/bodies.js'
import { INSECURE_HOST, launchChromium, startPageServer } from '../helpers/chromium.js'
import { startTestService } from '../helpers/http.js'
import { ROOT } from '../helpers/project.js'

const CLIENT_DIR = path.join(ROOT, 'dist', 'src', 'client')
const ENCODINGS = ['json', 'msgpack'] as const
const FORMATS = ['ndjson', 'msgpack', 'sse'] as const
const SINGLES = 4
const BATCH = 5
/** Each encoding writes SINGLES records and one batch. */
const RECORDS = ENCODINGS.length * (SINGLES + 1)
/** The consumer's checkpoint: the page follows it for the records after. */
const CHECKPOINT = 3
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** The same typed-array form the client and the service use, both ways. */
const packr = new Packr({ moreTypes: true, useRecords: false })

type Plan = Record<typeof ENCODINGS[number], { singles: Entry[], batch: Entry[] }>
type FollowedRecord = Record<string, unknown> & { seq: number }

interface Report {
  error?: string
  isSecureContext: boolean
  randomUUID: string
  appended: Array<{ seq: number, count?: number, replayed: boolean, attempts: number }>
  follows: Record<typeof FORMATS[number], FollowedRecord[]>
  created: { name: string, checkpoint: number }
  checkpointed: { checkpoint: number, superseded: boolean }
  consumer: { name: string, checkpoint: number }
  afterCheckpoint: FollowedRecord[]
}

/** The packages the built client imports by bare name (msgpackr, openapi-fetch, eventsource-parser). */
function bareImports (): string[] {
  const names = new Set<string>()
  for (const file of fs.readdirSync(CLIENT_DIR).filter(name => name.endsWith('.js'))) {
    for (const [, name] of fs.readFileSync(path.join(CLIENT_DIR, file), 'utf8').matchAll(/^import .* from '([^.'][^']*)';$/gm)) names.add(name)
  }
  return [...names]
}

/** A package's ES module build for browsers, as its package.json exports it: the browser condition, else import. */
function browserEntry (name: string): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { exports: { '.': string | Record<string, unknown> } }
  const main = pkg.exports['.']
  const file = typeof main === 'string' ? main : (main.browser ?? main.import) as string
  return path.posix.join('/modules', name, file)
}

function page (imports: Record<string, string>): string {
  return `<!doctype html><title>client</title>
<script type="importmap">${JSON.stringify({ imports })}</script>
<script type="module">
import { Packr } from 'msgpackr'
const packr = new Packr({ moreTypes: true, useRecords: false })
const report = { isSecureContext, randomUUID: typeof crypto.randomUUID }
// msgpack has no negative zero integer: a plain array's -0 would reach the test as 0, a Float64Array's does not.
const exact = record => ({
  ...record,
  ...(Array.isArray(record.vector) ? { vector: Float64Array.from(record.vector) } : {}),
  ...(Array.isArray(record.entries) ? { entries: record.entries.map(exact) } : {})
})
async function all (records) {
  const list = []
  for await (const record of records) list.push(exact(record))
  return list
}
try {
  const { VecwalClient } = await import('/client/index.js')
  const plan = packr.unpack(new Uint8Array(await (await fetch('/plan')).arrayBuffer()))
  report.appended = []
  for (const encoding of ${JSON.stringify(ENCODINGS)}) {
    const client = new VecwalClient({ baseUrl: location.origin, encoding })
    for (const entry of plan[encoding].singles) report.appended.push(await client.append(entry))
    report.appended.push(await client.appendBatch(plan[encoding].batch))
  }
  const client = new VecwalClient({ baseUrl: location.origin })
  report.follows = {}
  for (const format of ${JSON.stringify(FORMATS)}) report.follows[format] = await all(client.follow({ after: 0, format, limit: ${RECORDS} }))
  const consumer = client.consumer('browser')
  report.created = await consumer.create(0)
  report.checkpointed = await consumer.checkpoint(${CHECKPOINT})
  report.consumer = await consumer.get()
  report.afterCheckpoint = await all(client.follow({ consumer: 'browser', format: 'sse', limit: ${RECORDS - CHECKPOINT} }))
} catch (err) {
  report.error = String(err?.stack ?? err)
}
await fetch('/report', { method: 'POST', body: packr.pack(report) })
</script>`
}

/** A record or an entry as compared: no seq or timestamp, a vector as its float32 bit patterns (-0 is not 0). */
function comparable (value: Record<string, unknown>): Record<string, unknown> {
  const { seq: _seq, timestamp: _timestamp, ...rest } = value
  if (Array.isArray(rest.entries)) rest.entries = (rest.entries as Array<Record<string, unknown>>).map(comparable)
  if (rest.vector !== undefined) rest.vector = float32Bits(rest.vector as ArrayLike<number>)
  return rest
}

t.test('the built client in Chromium, on a page that is not a secure context, through the same-origin proxy', async t => {
  const service = await startTestService(t)
  const plan = Object.fromEntries(ENCODINGS.map((encoding, i) => {
    const [singles, batch] = [SINGLES, BATCH].map((count, j) => fc.sample(entry, { numRuns: count, seed: 2 * i + j }))
    return [encoding, { singles, batch }]
  })) as Plan
  const packages = bareImports()
  const pages = await startPageServer<Report>(t, {
    serviceUrl: service.url,
    resources: {
      '/': { type: 'text/html', body: page(Object.fromEntries(packages.map(name => [name, browserEntry(name)]))) },
      '/plan': { type: 'application/msgpack', body: packr.pack(plan) }
    },
    directories: {
      '/client/': CLIENT_DIR,
      ...Object.fromEntries(packages.map(name => [`/modules/${name}/`, path.join(ROOT, 'node_modules', name)]))
    },
    decode: body => packr.unpack(body) as Report
  })
  launchChromium(t, `${pages.origin(INSECURE_HOST)}/`)
  const report = await pages.until(() => true, 'its results')

  if (!t.equal(report.error, undefined, 'the page ran to its end')) return
  t.same(packages.sort(), ['eventsource-parser', 'msgpackr', 'openapi-fetch'], 'the client\'s bare imports, all resolved by the import map')
  t.equal(report.isSecureContext, false, 'the page is not a secure context')
  t.equal(report.randomUUID, 'undefined', 'so crypto.randomUUID is missing there')

  const seqs = Array.from({ length: RECORDS }, (_, i) => i + 1)
  t.same(report.appended.map(a => a.seq), seqs, 'each append and batch got the next seq')
  t.ok(report.appended.every(a => !a.replayed && a.attempts === 1), 'each at its first try')
  t.same(report.appended.filter(a => a.count !== undefined).map(a => a.count), ENCODINGS.map(() => BATCH), 'each batch counted its entries')
  const writes = pages.proxied.filter(r => r.method === 'POST' && /^\/v1\/(entries|batch)$/.test(r.url))
  const keys = writes.map(r => r.headers['idempotency-key'])
  t.equal(writes.length, RECORDS, 'one request for each write')
  t.ok(keys.every(key => typeof key === 'string' && UUID_V4.test(key)), `every write carried a UUID v4 idempotency key: ${keys.join(' ')}`)
  t.equal(new Set(keys).size, RECORDS, 'each its own')

  const written = ENCODINGS.flatMap(encoding => [
    ...plan[encoding].singles.map(e => comparable(e)),
    { op: 'batch', entries: plan[encoding].batch.map(e => comparable(e)) }
  ])
  for (const format of FORMATS) {
    const records = report.follows[format]
    t.same(records.map(r => r.seq), seqs, `${format}: every record once, in order`)
    t.strictSame(records.map(comparable), written, `${format}: each as it was written`)
  }
  t.match(report.created, { name: 'browser', checkpoint: 0 }, 'the consumer was created')
  t.match(report.checkpointed, { checkpoint: CHECKPOINT, superseded: false }, 'its checkpoint was made')
  t.match(report.consumer, { name: 'browser', checkpoint: CHECKPOINT }, 'and read back')
  t.same(report.afterCheckpoint.map(r => r.seq), seqs.slice(CHECKPOINT), 'following the consumer starts after its checkpoint')
})
