// Every body form on every route that takes entries, with generated data (test/helpers/bodies.ts):
// each valid body is accepted and reads back from GET /v1/recovery, NDJSON and msgpack, equal to
// what was sent value for value (float32 bits, so -0 stays -0); each body made invalid in one place
// is refused with a 400 naming that place, and the log does not move. Checkpoint bodies likewise.
import { encode as msgpackEncode } from '@msgpack/msgpack'
import fc from 'fast-check'
import { Packr, Unpackr } from 'msgpackr'
import t, { type Test } from 'tap'
import {
  asCarried, batchBody, contentType, encodeBody, ENCODINGS, entry, entryBody, float32Bits, keyOrder, littleEndianBytes, NOT_UTF8, PLACEHOLDER,
  vector, type Encoding, type Entry
} from '../helpers/bodies.js'
import { lastSeq, ndjson, propertyRuns, startTestService, type TestService } from '../helpers/http.js'

type Route = 'entries' | 'batch' | 'stage one' | 'stage many'
const ROUTES: readonly Route[] = ['entries', 'batch', 'stage one', 'stage many']

interface Sent { seq: number, entries: Entry[], batch: boolean }

async function post (service: TestService, route: string, body: Buffer, encoding: Encoding): Promise<Response> {
  return await service.call('POST', route, body, { 'content-type': contentType(encoding) })
}

/** Posts the entries by `route`; answers the seq the log gave them. */
async function send (t: Test, service: TestService, route: Route, entries: Entry[], encoding: Encoding, order: (keys: string[]) => string[]): Promise<number> {
  const describe = `${route}, ${encoding}`
  if (route === 'entries') {
    const response = await post(service, '/v1/entries', entryBody(entries[0], encoding, order), encoding)
    if (response.status !== 201) t.fail(`${describe}: ${response.status} ${await response.text()}`)
    return ((await response.json()) as { seq: number }).seq
  }
  if (route === 'batch') {
    const response = await post(service, '/v1/batch', batchBody(entries, encoding, order), encoding)
    if (response.status !== 201) t.fail(`${describe}: ${response.status} ${await response.text()}`)
    return ((await response.json()) as { seq: number }).seq
  }
  const { txId } = await (await service.call('POST', '/v1/transactions')).json() as { txId: string }
  const bodies = route === 'stage one' ? entries.map(e => entryBody(e, encoding, order)) : [batchBody(entries, encoding, order)]
  for (const body of bodies) {
    const staged = await post(service, `/v1/transactions/${txId}/entries`, body, encoding)
    if (staged.status !== 202) t.fail(`${describe}: ${staged.status} ${await staged.text()}`)
  }
  const committed = await service.call('POST', `/v1/transactions/${txId}/commit`)
  if (committed.status !== 201) t.fail(`${describe} commit: ${committed.status} ${await committed.text()}`)
  return ((await committed.json()) as { seq: number }).seq
}

/** Whether a record read back (NDJSON or msgpack) holds exactly `e`; vectors compared as float32 bits. */
function sameEntry (got: Record<string, unknown>, e: Entry): string | undefined {
  if (got.op !== e.op) return `op ${String(got.op)}`
  if (got.id !== e.id) return `id ${JSON.stringify(got.id)} for ${JSON.stringify(e.id)}`
  if (e.op === 'delete') return Object.keys(got).some(k => k === 'vector' || k === 'metadata') ? 'a delete with fields' : undefined
  const bits = float32Bits(got.vector as ArrayLike<number>)
  const sent = float32Bits(e.vector)
  if (bits.length !== sent.length || bits.some((b, i) => b !== sent[i])) return `vector ${JSON.stringify(bits.slice(0, 8))}… for ${JSON.stringify(sent.slice(0, 8))}…`
  const metadata = got.metadata as Record<string, string> | undefined
  if (JSON.stringify(Object.entries(metadata ?? {}).sort()) !== JSON.stringify(Object.entries(e.metadata ?? {}).sort())) return 'metadata'
  if ((metadata === undefined) !== (e.metadata === undefined)) return 'metadata present or not'
  return undefined
}

/** Checks every record read back against what was sent, by seq. */
function checkReadBack (t: Test, form: string, records: Array<Record<string, unknown>>, sent: Sent[]): void {
  const bySeq = new Map(records.map(r => [r.seq as number, r]))
  let wrong = 0
  for (const { seq, entries, batch } of sent) {
    const record = bySeq.get(seq)
    if (record === undefined) {
      t.fail(`${form}: seq ${seq} is missing`)
      wrong++
      continue
    }
    const got = batch ? record.entries as Array<Record<string, unknown>> : [record]
    const why = got.length !== entries.length ? `${got.length} entries for ${entries.length}` : entries.map((e, i) => sameEntry(got[i], e)).find(w => w !== undefined)
    if (why !== undefined) {
      wrong++
      t.fail(`${form}: seq ${seq}: ${why}`)
    }
  }
  t.equal(wrong, 0, `${form}: all ${sent.length} records read back as sent`)
}

t.test('every valid body, in every form, on every route, is accepted and reads back as sent', async t => {
  const service = await startTestService(t)
  const sent: Sent[] = []
  // Every route with every form, each with its own generated bodies.
  for (const route of ROUTES) {
    for (const encoding of ENCODINGS) {
      await fc.assert(fc.asyncProperty(fc.array(entry, { minLength: 1, maxLength: 6 }), keyOrder, async (entries, order) => {
        const list = route === 'entries' ? entries.slice(0, 1) : entries
        const seq = await send(t, service, route, list, encoding, order)
        sent.push({ seq, entries: asCarried(list, encoding), batch: route !== 'entries' })
      }), { numRuns: propertyRuns(7) })
    }
  }

  const lines = await ndjson(await service.call('GET', '/v1/recovery?after=0'))
  checkReadBack(t, 'NDJSON', lines, sent)
  const packed = Buffer.from(await (await service.call('GET', '/v1/recovery?after=0', undefined, { accept: 'application/msgpack' })).arrayBuffer())
  const records = new Unpackr({ moreTypes: true, mapsAsObjects: true }).unpackMultiple(packed) as Array<Record<string, unknown>>
  checkReadBack(t, 'msgpack', records, sent)
})

// ---- One place made invalid ----

interface Broken {
  /** The body as a value; `raw` replaces the encoded body where the fault cannot be a value. */
  value: Record<string, unknown>
  raw?: (encoded: Buffer) => Buffer
  /** The place the message must name, below `body`. */
  place: string
  /** The encodings that can carry the fault. */
  encodings: readonly Encoding[]
}

const MSGPACK_ENCODINGS = ENCODINGS.filter(e => e !== 'json')
const ARRAY_ENCODINGS: readonly Encoding[] = ['json', 'msgpackr number array', '@msgpack/msgpack number array']

/** A JSON Pointer token, as messages name keys. */
const token = (key: string): string => key.replaceAll('~', '~0').replaceAll('/', '~1')

/** The bytes of `encoded` with the string `placeholder` (ASCII, unique) replaced by `bytes` of the same length. */
function patchString (encoded: Buffer, placeholder: string, bytes: number[]): Buffer {
  const at = encoded.indexOf(placeholder)
  if (at === -1 || encoded.indexOf(placeholder, at + 1) !== -1) throw new Error('placeholder not found once')
  const out = Buffer.from(encoded)
  Buffer.from(bytes).copy(out, at)
  return out
}


/** Ways to break one field of an entry (at `path` in the body), each with the place named. */
function breakings (e: Entry, path: string): fc.Arbitrary<Broken> {
  const plain: Record<string, unknown> = e.op === 'delete' ? { ...e } : { ...e, vector: Array.from(e.vector) }
  const withField = (key: string, value: unknown): Record<string, unknown> => ({ ...plain, [key]: value })
  const options: Array<fc.Arbitrary<Broken>> = [
    fc.constant({ value: withField('id', ''), place: `${path}/id`, encodings: ENCODINGS }),
    fc.constant({ value: withField('id', 'x'.repeat(257)), place: `${path}/id`, encodings: ENCODINGS }),
    fc.integer().map(n => ({ value: withField('id', n), place: `${path}/id`, encodings: ENCODINGS })),
    fc.constant({ value: withField('extra', 1), place: `${path}/extra`, encodings: ENCODINGS }),
    fc.constant({ value: withField('op', 'upsert'), place: `${path}/op`, encodings: ENCODINGS }),
    fc.constant({ value: withField('id', PLACEHOLDER), raw: (b: Buffer) => patchString(b, PLACEHOLDER, NOT_UTF8[0]), place: `${path}/id`, encodings: MSGPACK_ENCODINGS }),
    fc.constantFrom(...NOT_UTF8).map(bytes => ({ value: withField('id', PLACEHOLDER), raw: (b: Buffer) => patchString(b, PLACEHOLDER, bytes), place: `${path}/id`, encodings: MSGPACK_ENCODINGS })),
    fc.constant({ value: withField('id', 'a\ud800b'), place: `${path}/id`, encodings: ['json'] })
  ]
  if (e.op !== 'delete') {
    const values = Array.from(e.vector)
    const at = fc.nat(values.length - 1)
    const vectorWith = (i: number, bad: unknown): unknown[] => values.map((v, j) => j === i ? bad : v)
    options.push(
      at.map(i => ({ value: withField('vector', vectorWith(i, 3.5e38)), place: `${path}/vector/${i}`, encodings: ARRAY_ENCODINGS })),
      at.map(i => ({ value: withField('vector', vectorWith(i, '1')), place: `${path}/vector/${i}`, encodings: ARRAY_ENCODINGS })),
      at.map(i => ({ value: withField('vector', vectorWith(i, NaN)), place: `${path}/vector/${i}`, encodings: ['msgpackr number array', '@msgpack/msgpack number array'] })),
      at.map(i => ({ value: withField('vector', Float32Array.from(vectorWith(i, Infinity) as number[])), place: `${path}/vector/${i}`, encodings: ['msgpackr typed array'] })),
      at.map(i => ({ value: withField('vector', littleEndianBytes(Float32Array.from(vectorWith(i, NaN) as number[]))), place: `${path}/vector/${i}`, encodings: ['msgpackr bin', '@msgpack/msgpack bin'] })),
      fc.integer({ min: 1, max: 3 }).map(cut => ({ value: withField('vector', littleEndianBytes(e.vector).subarray(cut)), place: `${path}/vector`, encodings: ['msgpackr bin', '@msgpack/msgpack bin'] })),
      fc.constant({ value: withField('vector', []), place: `${path}/vector`, encodings: ENCODINGS }),
      fc.constant({ value: withField('metadata', Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']))), place: `${path}/metadata`, encodings: ENCODINGS })
    )
    const keys = Object.keys(e.metadata ?? {})
    if (keys.length > 0) {
      options.push(fc.constantFrom(...keys).map(key => ({ value: withField('metadata', { ...e.metadata, [key]: 7 }), place: `${path}/metadata/${token(key)}`, encodings: ENCODINGS })))
      options.push(fc.constantFrom(...keys).map(key => ({
        value: withField('metadata', { ...e.metadata, [key]: PLACEHOLDER }),
        raw: (b: Buffer) => patchString(b, PLACEHOLDER, NOT_UTF8[1]),
        place: `${path}/metadata/${token(key)}`,
        encodings: MSGPACK_ENCODINGS
      })))
    }
  }
  return fc.oneof(...options)
}

interface BrokenBody { broken: Broken, batch: { entries: Entry[], at: number } | undefined }

/** A body (one entry, or a batch) broken in one place, with the encoding that carries it. */
const brokenBody = fc.tuple(fc.array(entry, { minLength: 1, maxLength: 4 }), fc.boolean(), fc.nat())
  .chain(([entries, asBatch, pick]): fc.Arbitrary<BrokenBody> => {
    if (!asBatch) return breakings(entries[0], '').map(b => ({ broken: b, batch: undefined }))
    const at = pick % entries.length
    return breakings(entries[at], `/entries/${at}`).map(b => ({ broken: b, batch: { entries, at } }))
  })
  .chain(({ broken, batch }) => fc.constantFrom(...broken.encodings).map(encoding => ({ broken, batch, encoding })))

function encodeBroken (broken: Broken, batch: { entries: Entry[], at: number } | undefined, encoding: Encoding): Buffer {
  const value = batch === undefined
    ? broken.value
    : { entries: batch.entries.map((e, i) => i === batch.at ? broken.value : e.op === 'delete' ? e : { ...e, vector: Array.from(e.vector) }) }
  const encoded = encodeBody(value, encoding)
  return broken.raw === undefined ? encoded : broken.raw(encoded)
}

t.test('a body made invalid in one place is refused with a 400 naming that place, and the log does not move', async t => {
  const service = await startTestService(t)
  const { txId } = await (await service.call('POST', '/v1/transactions')).json() as { txId: string }
  const before = await lastSeq(service)
  let refused = 0
  await fc.assert(fc.asyncProperty(brokenBody, fc.boolean(), async ({ broken, batch, encoding }, staged) => {
    const route = staged ? `/v1/transactions/${txId}/entries` : batch === undefined ? '/v1/entries' : '/v1/batch'
    const response = await post(service, route, encodeBroken(broken, batch, encoding), encoding)
    const answer = await response.json() as { code: string, message: string }
    const place = `body${broken.place}`
    if (response.status !== 400 || answer.code !== 'HTTP_INVALID_REQUEST' || !answer.message.includes(place)) {
      t.fail(`${encoding} on ${route}: ${response.status} ${JSON.stringify(answer)}, expected 400 naming ${place}`)
      return false
    }
    refused++
    return true
  }), { numRuns: 300 })
  t.equal(refused, 300, 'every broken body was refused, naming its place')
  t.equal(await lastSeq(service), before, 'the log did not move')
  const commit = await service.call('POST', `/v1/transactions/${txId}/commit`)
  t.equal(commit.status, 409, 'nothing was staged: the transaction is still empty')
})

t.test('checkpoint bodies: JSON and msgpack from each encoder, every integer width', async t => {
  const service = await startTestService(t)
  const writes = 300
  await Promise.all(Array.from({ length: writes }, async (_, i) => await service.call('POST', '/v1/entries', { op: 'delete', id: `d${i}` })))
  const encoders: Array<[string, (v: unknown) => Buffer, string]> = [
    ['JSON', v => Buffer.from(JSON.stringify(v)), 'application/json'],
    ['msgpackr', v => new Packr({ useRecords: false }).pack(v), 'application/msgpack'],
    ['msgpackr records', v => new Packr().pack(v), 'application/msgpack'],
    ['@msgpack/msgpack', v => Buffer.from(msgpackEncode(v)), 'application/msgpack']
  ]
  // Rising seqs through every msgpack integer width a seq up to 300 takes (fixint, uint8, uint16).
  const seqs = [0, 1, 5, 127, 128, 200, 255, 256, 299, 300]
  let step = 0
  for (const seq of seqs) {
    const [name, encode, type] = encoders[step++ % encoders.length]
    const response = await service.call('POST', '/v1/checkpoints', encode({ seq }), { 'content-type': type })
    t.equal(response.status, 201, `${name} {seq: ${seq}}`)
    t.equal(((await response.json()) as { checkpoint: number }).checkpoint, seq)
  }
  for (const [name, encode, type] of encoders) {
    const ahead = await service.call('POST', '/v1/checkpoints', encode({ seq: 10_000 }), { 'content-type': type })
    t.equal(ahead.status, 409, `${name}: a checkpoint past the last seq is refused`)
    const wrong = await service.call('POST', '/v1/checkpoints', encode({ seq: 'x' }), { 'content-type': type })
    const answer = await wrong.json() as { message: string }
    t.equal(wrong.status, 400, `${name}: a seq that is not a number is refused`)
    t.match(answer.message, 'body/seq', 'naming body/seq')
  }
})

t.test('a bin vector without bin=float32le is refused, naming the vector: msgpackr without moreTypes writes a Float32Array as a bin of other bytes', async t => {
  const service = await startTestService(t)
  await fc.assert(fc.asyncProperty(vector, fc.boolean(), async (values, batch) => {
    // msgpackr's default Packr, and a plain one: both write the Float32Array as a bin.
    const packr = batch ? new Packr() : new Packr({ useRecords: false })
    const body = batch ? packr.pack({ entries: [{ op: 'insert', id: 'a', vector: values }] }) : packr.pack({ op: 'insert', id: 'a', vector: values })
    const response = await service.call('POST', batch ? '/v1/batch' : '/v1/entries', body, { 'content-type': 'application/msgpack' })
    const answer = await response.json() as { message: string }
    return response.status === 400 && answer.message.startsWith(batch ? 'body/entries/0/vector is a bin' : 'body/vector is a bin')
  }), { numRuns: 40 })
  t.equal(await lastSeq(service), 0, 'nothing reached the log')
})

t.test('a field left undefined by a JS client (msgpackr writes d4 00 00) is taken as absent', async t => {
  const service = await startTestService(t)
  for (const packr of [new Packr({ moreTypes: true }), new Packr({ moreTypes: true, useRecords: false })]) {
    const response = await service.call('POST', '/v1/entries', packr.pack({ op: 'insert', id: 'u', vector: new Float32Array([1, 2]), metadata: undefined }), { 'content-type': 'application/msgpack' })
    t.equal(response.status, 201)
  }
  const records = await ndjson(await service.call('GET', '/v1/recovery?after=0'))
  t.same(records.map(r => Object.keys(r).sort()), [['id', 'op', 'seq', 'timestamp', 'vector'], ['id', 'op', 'seq', 'timestamp', 'vector']], 'stored without metadata')
})
