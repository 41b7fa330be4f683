// The recovery stream read line by line and compared with what was posted: across segment
// rotation, after a checkpoint, with shortest float32 decimals, under concurrent writes, and as
// msgpack for a client that asks for it; every record in each form is what the OpenAPI document's
// RecoveryRecord says it is.
import path from 'node:path'
import { Ajv } from 'ajv'
import fc from 'fast-check'
import t from 'tap'
import { Packr, unpackMultiple } from 'msgpackr'
import { asStored, ndjson, onJetStream, recoverAll, sampleEntry, startTestService, type TestService } from '../helpers/http.js'
import { entry as generatedEntry } from '../helpers/bodies.js'
import { flipBit, rawRecords, segmentFiles } from '../helpers/wal.js'

/** How many significant digits the shortest decimal reading back to this float32 has. */
function shortestDigits (f: number): number {
  for (let digits = 1; digits <= 9; digits++) {
    if (Math.fround(Number(f.toPrecision(digits))) === f) return digits
  }
  throw new Error(`no shortest form for ${f}`)
}

/**
 * Why `printed` is not the shortest decimal for the float32 nearest `value`, laid out as JavaScript
 * prints numbers, and the closest of that length (a tie may go either way); undefined when it is.
 */
function notShortest (printed: string, value: number): string | undefined {
  const f = Math.fround(value)
  const read = Number(printed)
  if (Object.is(f, -0)) return printed === '-0' ? undefined : 'not -0'
  if (Math.fround(read) !== f) return `${printed} reads back as another float32 than ${f}`
  if (String(read) !== printed) return `${printed} is not laid out as ${String(read)}`
  const digits = shortestDigits(f)
  if (Number(read.toPrecision(digits)) !== read) return `${printed} has more than ${digits} significant digits`
  if (Math.abs(read - f) > Math.abs(Number(f.toPrecision(digits)) - f)) return `${printed} is not the closest ${digits}-digit decimal`
  return undefined
}

/** Deterministic values of many magnitudes and signs (a small LCG). */
function values (seed: number, count: number): number[] {
  let state = seed
  return Array.from({ length: count }, () => {
    state = (state * 1103515245 + 12345) % 2147483648
    const mantissa = state / 2147483648 - 0.5
    return mantissa * 10 ** ((state % 41) - 20)
  })
}

/** What the service answered for each posted body: seq to the line it should read back as. */
type Posted = Map<number, Record<string, unknown>>

async function postMixed (service: TestService, count: number, posted: Posted, from = 0): Promise<void> {
  // Ten at a time: concurrent enough to share fsyncs, each answer naming its seq.
  for (let i = from; i < from + count; i += 10) {
    await Promise.all(Array.from({ length: 10 }, async (_, j) => {
      const n = i + j
      if (n % 9 === 8) {
        const entries = [sampleEntry(n * 100, 8), sampleEntry(n * 100 + 1, 8), { op: 'delete', id: `gone${n}` }]
        const response = await service.call('POST', '/v1/batch', { entries })
        const { seq } = await response.json() as { seq: number }
        posted.set(seq, { op: 'batch', entries: entries.map(asStored) })
      } else {
        const entry = sampleEntry(n, 8)
        if (entry.op !== 'delete' && n % 2 === 1) entry.vector = values(n, 8)
        const response = await service.call('POST', '/v1/entries', entry)
        const { seq } = await response.json() as { seq: number }
        posted.set(seq, asStored(entry))
      }
    }))
  }
}

/** A line as posted: seq and timestamp dropped, vectors as float32. */
function asPosted (line: Record<string, unknown>): Record<string, unknown> {
  const { seq: _seq, timestamp: _timestamp, ...body } = line
  if (Array.isArray(body.entries)) return { ...body, entries: (body.entries as Array<Record<string, unknown>>).map(asStored) }
  return asStored(body)
}

t.test('across segment rotation: every line equals what was posted, in seq order', async t => {
  const service = await startTestService(t, { VECWAL_SEGMENT_BYTES: '4096' })
  const posted: Posted = new Map()
  await postMixed(service, 150, posted)
  const status = await (await service.call('GET', '/v1/status')).json() as { segments?: unknown[], lastSeq: number }
  if (!onJetStream()) t.ok((status.segments?.length ?? 0) >= 3, `${status.segments?.length ?? 0} segments`)
  t.equal(status.lastSeq, 150)

  const response = await service.call('GET', '/v1/recovery?after=0')
  t.equal(response.headers.get('x-vecwal-last-seq'), '150')
  const text = await response.text()
  t.ok(text.endsWith('\n'), 'every line ends with a newline')
  const rawLines = text.slice(0, -1).split('\n')
  const lines = rawLines.map(l => JSON.parse(l) as Record<string, unknown>)
  t.same(lines.map(l => l.seq), Array.from({ length: 150 }, (_, i) => i + 1), 'seqs 1..150, in order, none missing')
  const mismatched = lines.filter(l => JSON.stringify(asPosted(l)) !== JSON.stringify(posted.get(l.seq as number)))
  t.same(mismatched, [], 'each line holds what its post carried (vectors equal after Math.fround)')
  t.ok(lines.every(l => typeof l.timestamp === 'number' && l.timestamp > 1.7e12), 'every line has a millisecond timestamp')
  t.ok(lines.filter(l => l.op === 'batch').every(l => !('txId' in l)), 'plain batches carry no txId')

  const printed = rawLines.flatMap(line => [...line.matchAll(/"vector":\[([^\]]*)\]/g)].flatMap(m => m[1].split(',')))
  const stored = [...posted.keys()].sort((a, b) => a - b).map(seq => posted.get(seq) as Record<string, unknown>)
    .flatMap(p => (Array.isArray(p.entries) ? p.entries as Array<Record<string, unknown>> : [p]))
    .flatMap(e => (Array.isArray(e.vector) ? e.vector as number[] : []))
  t.equal(printed.length, stored.length, 'one printed value per posted value')
  const wrong = printed.map((text, i) => notShortest(text, stored[i])).filter(reason => reason !== undefined)
  t.same(wrong, [], `all ${printed.length} vector values print as the shortest float32 decimal`)
})

t.test('Accept: application/msgpack streams the same records as msgpack maps, vectors as Float32Array', async t => {
  const service = await startTestService(t, { VECWAL_SEGMENT_BYTES: '4096' })
  const posted: Posted = new Map()
  await postMixed(service, 60, posted)
  const lines = await recoverAll(service)

  const response = await service.call('GET', '/v1/recovery?after=0', undefined, { accept: 'application/msgpack' })
  t.equal(response.status, 200)
  t.equal(response.headers.get('content-type'), 'application/msgpack')
  t.equal(response.headers.get('vary'), 'accept')
  t.equal(response.headers.get('x-vecwal-last-seq'), '60')
  const records = new Packr({ moreTypes: true, useRecords: false }).unpackMultiple(Buffer.from(await response.arrayBuffer())) as Array<Record<string, unknown>>
  t.equal(records.length, 60, 'one map a record')
  const vectors = records.flatMap(r => (Array.isArray(r.entries) ? r.entries as Array<Record<string, unknown>> : [r]))
    .filter(e => e.vector !== undefined).map(e => e.vector)
  t.ok(vectors.length > 0 && vectors.every(v => v instanceof Float32Array), `all ${vectors.length} vectors arrive as Float32Array`)
  // NDJSON prints the same float32 values: with every vector as a plain array of float32 values
  // (widened to doubles), the two streams are equal.
  const asFloat32 = (value: unknown): Record<string, unknown> => JSON.parse(JSON.stringify(value, (key, v: unknown) =>
    key === 'vector' ? Array.from(Float32Array.from(v as ArrayLike<number>)) : v)) as Record<string, unknown>
  const maps = records.map(asFloat32)
  t.same(maps, lines.map(asFloat32), 'each map equals its NDJSON line')
  t.same(maps.map(r => Object.keys(r)), lines.map(l => Object.keys(l)), 'keys in the same order')
  const mismatched = maps.filter(r => JSON.stringify(asPosted(r)) !== JSON.stringify(posted.get(r.seq as number)))
  t.same(mismatched, [], 'each map holds what its post carried')
})

t.test('which form the Accept header asks for', async t => {
  const service = await startTestService(t)
  await service.call('POST', '/v1/entries', sampleEntry(1, 4))
  const cases: Array<[string | undefined, string]> = [
    [undefined, 'application/x-ndjson'],
    ['*/*', 'application/x-ndjson'],
    ['application/x-ndjson', 'application/x-ndjson'],
    ['application/msgpack', 'application/msgpack'],
    ['Application/MsgPack', 'application/msgpack'],
    ['application/msgpack;q=0', 'application/x-ndjson'],
    ['application/x-ndjson, application/msgpack;q=0.5', 'application/x-ndjson'],
    ['application/x-ndjson;q=0.5, application/msgpack', 'application/msgpack'],
    ['application/x-ndjson, application/msgpack', 'application/msgpack'],
    ['text/html, application/msgpack;q=0.1', 'application/msgpack'],
    ['text/html', 'application/x-ndjson']
  ]
  for (const [accept, expected] of cases) {
    const response = await service.call('GET', '/v1/recovery?after=0', undefined, accept === undefined ? {} : { accept })
    t.equal(response.headers.get('content-type'), expected, `Accept: ${accept ?? '(none)'}`)
    await response.arrayBuffer()
  }
})

t.test('damage met mid-stream cuts the response off: a client never takes it for a complete stream', { skip: onJetStream() ? 'it flips a bit in a sealed segment file; a foreign message in the stream fails a read with WAL_CORRUPT: test/jetstream/log.test.ts' : false }, async t => {
  const service = await startTestService(t, { VECWAL_SEGMENT_BYTES: '4096' })
  await postMixed(service, 150, new Map())
  // The first record of the second segment, a sealed one: the stream meets it after a whole segment.
  const damaged = rawRecords(service.dir).find(r => r.file === segmentFiles(service.dir)[1])
  if (damaged === undefined) throw new Error('no second segment')
  flipBit(path.join(service.dir, damaged.file), damaged.offset + 40)
  for (const accept of ['application/x-ndjson', 'application/msgpack']) {
    const response = await service.call('GET', '/v1/recovery?after=0', undefined, { accept })
    t.equal(response.status, 200, `${accept}: the stream started`)
    const received: Buffer[] = []
    const reading = (async () => { for await (const chunk of response.body ?? []) received.push(Buffer.from(chunk)) })()
    await t.rejects(reading, `${accept}: the body ends in an error, not a clean end`)
    const seqs = accept === 'application/msgpack'
      ? (unpackMultiple(Buffer.concat(received)) as Array<{ seq: number }>).map(r => r.seq)
      : Buffer.concat(received).toString('utf8').split('\n').slice(0, -1).map(line => (JSON.parse(line) as { seq: number }).seq)
    t.same(seqs, Array.from({ length: damaged.seq - 1 }, (_, i) => i + 1), `${accept}: every record before seq ${damaged.seq} arrived, and none after`)
  }
})

t.test('shortest float32 decimals for known values', async t => {
  const service = await startTestService(t)
  // As raw JSON text: JSON.stringify would send -0 as 0.
  const vector = '[0.1,0.333333333333,1e-45,3.4028234663852886e38,-0,16777217,1e-7,123456789,-1.5e-40,0.3]'
  await service.call('POST', '/v1/entries', `{"op":"insert","id":"f","vector":${vector}}`)
  const text = await (await service.call('GET', '/v1/recovery?after=0')).text()
  t.ok(text.includes('"vector":[0.1,0.33333334,1e-45,3.4028235e+38,-0,16777216,1e-7,123456790,-1.5e-40,0.3]'), text)
  t.notOk(text.includes('0.10000000149011612'))
})

t.test('after a checkpoint the stream starts after it; covered segments are gone', async t => {
  const service = await startTestService(t, { VECWAL_SEGMENT_BYTES: '4096' })
  const posted: Posted = new Map()
  await postMixed(service, 100, posted)
  const checkpoint = await service.call('POST', '/v1/checkpoints', { seq: 80 })
  const { seq: checkpointSeq, deletedSegments } = await checkpoint.json() as { seq: number, deletedSegments: number }
  t.equal(checkpointSeq, 101)
  t.ok(deletedSegments >= 1, `the checkpoint deleted ${deletedSegments} segments`)
  await postMixed(service, 30, posted, 1000)

  const response = await service.call('GET', '/v1/recovery')
  t.equal(response.headers.get('x-vecwal-checkpoint'), '80')
  t.equal(response.headers.get('x-vecwal-last-seq'), '131')
  const lines = await ndjson(response)
  const expectedSeqs = [...Array.from({ length: 20 }, (_, i) => 81 + i), ...Array.from({ length: 30 }, (_, i) => 102 + i)]
  t.same(lines.map(l => l.seq), expectedSeqs, 'from the checkpoint on, the checkpoint record left out')
  t.notOk(lines.some(l => l.op === 'checkpoint'))
  const mismatched = lines.filter(l => JSON.stringify(asPosted(l)) !== JSON.stringify(posted.get(l.seq as number)))
  t.same(mismatched, [], 'each line holds what its post carried')

  const limited = await ndjson(await service.call('GET', '/v1/recovery?after=90&limit=15'))
  t.same(limited.map(l => l.seq), [...Array.from({ length: 10 }, (_, i) => 91 + i), 102, 103, 104, 105, 106], 'limit counts lines sent, the checkpoint record not among them')
})

t.test('line breaks inside strings never split a line', async t => {
  const service = await startTestService(t)
  const metadata = { text: 'a\nb\r\nc\u2028d\u2029e\u0085f"g\\h', 'k\u2028': 'v' }
  await service.call('POST', '/v1/entries', { op: 'insert', id: 'line\u2028break\n', vector: [1], metadata })
  await service.call('POST', '/v1/entries', { op: 'delete', id: 'next' })
  const text = await (await service.call('GET', '/v1/recovery?after=0')).text()
  t.notOk(/[\u2028\u2029\u0085\r]/.test(text), 'no raw line separators in the stream')
  const lines = text.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Record<string, unknown>)
  t.equal(lines.length, 2)
  t.same(lines[0].metadata, metadata)
  t.equal(lines[0].id, 'line\u2028break\n')
})

t.test('with writes racing reads, each stream ends exactly at its X-Vecwal-Last-Seq', async t => {
  const service = await startTestService(t, { VECWAL_SEGMENT_BYTES: '4096' })
  const posted: Posted = new Map()
  await postMixed(service, 20, posted)
  const writes = postMixed(service, 100, posted, 100)
  const reads = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
    await new Promise(resolve => setTimeout(resolve, i * 15))
    const response = await service.call('GET', '/v1/recovery?after=0')
    return { lastSeq: Number(response.headers.get('x-vecwal-last-seq')), seqs: (await ndjson(response)).map(l => l.seq) }
  }))
  await writes
  for (const read of reads) {
    t.same(read.seqs, Array.from({ length: read.lastSeq }, (_, i) => i + 1), `1..${read.lastSeq}, nothing past the header`)
  }
  t.same((await recoverAll(service)).map(l => l.seq), Array.from({ length: 120 }, (_, i) => i + 1))
})

t.test('a stalled reader holds up neither writers nor shutdown', async t => {
  const service = await startTestService(t, { VECWAL_DURABILITY: 'none' })
  const dims = 1024
  for (let b = 0; b < 8; b++) {
    const entries = Array.from({ length: 100 }, (_, i) => ({ op: 'insert', id: `big${b}-${i}`, vector: values(b * 100 + i, dims) }))
    t.equal((await service.call('POST', '/v1/batch', { entries })).status, 201)
  }
  const response = await service.call('GET', '/v1/recovery?after=0')
  const reader = response.body!.getReader()
  const first = await reader.read()
  t.ok(first.value !== undefined && first.value.length > 0, 'the stream started')
  // The reader reads no more (about 9 MB of lines are waiting): writes still go through.
  const writes = await Promise.all(Array.from({ length: 20 }, async (_, i) => await service.call('POST', '/v1/entries', { op: 'delete', id: `w${i}` })))
  t.same(writes.map(r => r.status), new Array(20).fill(201))
  await service.stop()
  t.pass('the service stopped with the reader still stalled')
  await reader.cancel().catch(() => {})
})

t.test('every record a read gives, in each form, is a RecoveryRecord of the served OpenAPI document', async t => {
  const service = await startTestService(t)
  const entries = fc.array(generatedEntry.map(e => 'vector' in e ? { ...e, vector: Array.from(e.vector) } : e), { minLength: 1, maxLength: 6 })
  const [singles, batch, staged] = fc.sample(fc.tuple(entries, entries, entries), 1)[0]
  for (const e of singles) t.equal((await service.call('POST', '/v1/entries', e)).status, 201)
  t.equal((await service.call('POST', '/v1/batch', { entries: batch })).status, 201)
  const { txId } = await (await service.call('POST', '/v1/transactions')).json() as { txId: string }
  t.equal((await service.call('POST', `/v1/transactions/${txId}/entries`, { entries: staged })).status, 202)
  t.equal((await service.call('POST', `/v1/transactions/${txId}/commit`)).status, 201)
  // A checkpoint record, which reads leave out: the schema need not describe it. At 0, so that it
  // lets retention delete nothing (on JetStream a checkpoint purges what it covers).
  t.equal((await service.call('POST', '/v1/checkpoints', { seq: 0 })).status, 201)
  const document = await (await service.call('GET', '/openapi.json')).json() as { components: { schemas: Record<string, object> } }
  const validate = new Ajv({ discriminator: true, strict: false }).compile(document.components.schemas.RecoveryRecord)
  const plainVectors = (value: unknown): unknown => value instanceof Float32Array
    ? Array.from(value)
    : Array.isArray(value) ? value.map(plainVectors) : typeof value === 'object' && value !== null ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plainVectors(v)])) : value
  const forms: Record<string, unknown[]> = {
    ndjson: await ndjson(await service.call('GET', '/v1/recovery?after=0')),
    msgpack: (unpackMultiple(Buffer.from(await (await service.call('GET', '/v1/recovery?after=0', undefined, { accept: 'application/msgpack' })).arrayBuffer())) as unknown[]).map(plainVectors),
    sse: (await (await service.call('GET', '/v1/recovery?after=0', undefined, { accept: 'text/event-stream' })).text())
      .split('\n').filter(line => line.startsWith('data: ') && !line.includes('"end":')).map(line => JSON.parse(line.slice(6)) as unknown)
  }
  for (const [form, records] of Object.entries(forms)) {
    t.equal(records.length, singles.length + 2, `${form}: one record a write, the checkpoint left out`)
    for (const record of records) t.ok(validate(record), `${form}: seq ${String((record as { seq: number }).seq)} is a RecoveryRecord ${JSON.stringify(validate.errors)}`)
  }
})
