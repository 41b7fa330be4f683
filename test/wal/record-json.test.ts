// The recovery stream's NDJSON lines: shortest float32 decimals checked against a slow reference
// built on toExponential, and whole lines, transcoded from payloads as the writer encodes them,
// checked by exact text and by reading them back; payloads that are not record bodies are refused.
import { setTimeout as sleep } from 'node:timers/promises'
import v8 from 'node:v8'
import vm from 'node:vm'
import t from 'tap'
import fc from 'fast-check'
import { Packr } from 'msgpackr'
import { formatFloat32 } from '../../src/records/float32-decimal.js'
import { RecordType, type RecordFrame } from '../../src/wal/format.js'
import type { LogRecord } from '../../src/log.js'
import { encodeBatch, encodeCheckpoint, encodeConsumer, encodeEntry, type EncodedPayload } from '../../src/payload/payload.js'
import { recordLineBytes } from '../../src/records/record-json.js'
import { recordMsgpackBytes } from '../../src/records/record-msgpack.js'

function payloadOf (record: LogRecord): EncodedPayload {
  if (record.op === 'batch') return encodeBatch(record.entries, record.txId)
  if (record.op === 'checkpoint') return encodeCheckpoint(record.checkpoint, record.consumer)
  if (record.op === 'consumer') return encodeConsumer(record)
  return encodeEntry(record)
}

/** A frame holding `payload`, placed at `offset` in a larger buffer as a reader's chunk holds it. */
function frameOf (seq: number, timestamp: number, { type, bytes }: EncodedPayload, offset = 3): RecordFrame {
  const source = Buffer.alloc(offset + bytes.length + 5, 0xc1)
  bytes.copy(source, offset)
  return { seq, timestamp, type, writeIndex: 0, source, payloadStart: offset, payloadEnd: offset + bytes.length, size: bytes.length }
}

/** The record's line as the log prints it: its body encoded as the writer encodes it, then transcoded. */
function recordToJsonLine (record: LogRecord): string {
  const line = recordLineBytes(frameOf(record.seq, record.timestamp, payloadOf(record)))
  if (line === undefined) throw new Error(`no line for ${record.op} ${record.seq}`)
  return line.toString('utf8')
}

const floatOfBits = new Float32Array(1)
const bitsOfFloat = new Uint32Array(floatOfBits.buffer)

function float32FromBits (bits: number): number {
  bitsOfFloat[0] = bits
  return floatOfBits[0]
}

function readsBack (text: string, value: number): boolean {
  return Math.fround(Number(text)) === value
}

/** The fewest significant digits of any decimal that reads back to `value` (finite, nonzero). */
function fewestDigits (value: number): number {
  for (let digits = 1; digits < 9; digits++) {
    // The nearest decimal with this many digits, then its neighbour on value's other side: below a
    // power of two the gap to the next float down is half the gap up, so the farther of the two
    // can be the only one that reads back.
    const nearest = value.toExponential(digits - 1)
    if (readsBack(nearest, value)) return digits
    const [mantissa, exponent] = nearest.split('e')
    const units = Number(mantissa.replace('.', ''))
    const neighbour = units + (Number(nearest) < value ? 1 : -1)
    if (readsBack(`${neighbour}e${Number(exponent) - digits + 1}`, value)) return digits
  }
  return 9
}

function significantDigits (text: string): number {
  const mantissa = text.replace(/^-/, '').replace(/e.*$/, '').replace('.', '')
  return mantissa.replace(/^0+/, '').replace(/0+$/, '').length
}

/** Why `text` is not formatFloat32's answer for `value`, or undefined if it is. */
function problemWith (text: string, value: number): string | undefined {
  if (!readsBack(text, value)) return `${text} does not read back as ${value}`
  if (text !== String(Number(text))) return `${text} is not laid out as JavaScript prints ${Number(text)}`
  const digits = fewestDigits(Math.abs(value))
  if (significantDigits(text) !== digits) return `${text} is not ${digits} digits long`
  // Of the decimals that short, the nearest, which toExponential gives unless it does not read back
  // or value is an exact tie (toExponential rounds those up, Ryu to an even last digit).
  const nearest = value.toExponential(digits - 1)
  const tie = value.toExponential(digits).replace(/e.*$/, '').endsWith('5') && Number(value.toExponential(digits)) === value
  if (readsBack(nearest, value) && !tie && Number(text) !== Number(nearest)) return `${text} is not the nearest, ${nearest}`
  if (tie && Number(text.replace(/e.*$/, '').slice(-1)) % 2 !== 0) return `${text} does not round a tie to even`
  return undefined
}

t.test('formatFloat32: known answers', async t => {
  const cases: Array<[number, string]> = [
    [0, '0'],
    [-0, '-0'],
    [1, '1'],
    [-1, '-1'],
    [0.1, '0.1'],
    [1 / 3, '0.33333334'],
    [-2.5, '-2.5'],
    [123.456, '123.456'],
    [float32FromBits(1), '1e-45'], // the smallest subnormal, 1.4e-45
    [float32FromBits(0x007fffff), '1.1754942e-38'], // the largest subnormal
    [float32FromBits(0x00800000), '1.1754944e-38'], // the smallest normal
    [float32FromBits(0x7f7fffff), '3.4028235e+38'], // FLT_MAX
    [16777216, '16777216'], // 2^24: the last float before odd integers stop existing
    [16777217, '16777216'], // rounds to 2^24 as a float32
    [16777219, '16777220'],
    [33554435, '33554436'],
    [1e-7, '1e-7'],
    [1e-6, '0.000001'], // JavaScript's layout switches to an exponent below 1e-6...
    [1.5e-7, '1.5e-7'],
    [1e20, '100000000000000000000'],
    [1e21, '1e+21'], // ...and from 1e21
    [123456789, '123456790'],
    [33554488, '33554490'], // its interval's upper bound, shorter, and taken: the mantissa is even
    [33554468, '33554468'], // its interval's upper bound 33554470 is not: the mantissa is odd
    [0.000123, '0.000123']
  ]
  // Ryu's own f2s tests (ulfjack/ryu, ryu/tests/f2s_test.cc), in JavaScript's layout: exact bounds,
  // exact ties and trailing zeros, the cases the fast path hands to Ryu. Inputs are read through a
  // double, so 7.038531E-26 is given as 7.0385309E-26, as Ryu's tests give it for compilers that
  // round that way too.
  const ryu: Array<[string, string]> = [
    ['3.355445E7', '3.355445E7'], ['8.999999E9', '9E9'], ['3.4366717E10', '3.436672E10'],
    ['3.0540412E5', '3.0540412E5'], ['8.0990312E3', '8.0990312E3'],
    ['2.4414062E-4', '2.4414062E-4'], ['2.4414062E-3', '2.4414062E-3'], ['4.3945312E-3', '4.3945312E-3'],
    ['6.3476562E-3', '6.3476562E-3'], ['4.7223665E21', '4.7223665E21'], ['8388608.0', '8.388608E6'],
    ['1.6777216E7', '1.6777216E7'], ['3.3554436E7', '3.3554436E7'], ['6.7131496E7', '6.7131496E7'],
    ['1.9310392E-38', '1.9310392E-38'], ['-2.47E-43', '-2.47E-43'], ['1.993244E-38', '1.993244E-38'],
    ['4103.9003', '4.1039004E3'], ['5.3399997E9', '5.3399997E9'], ['6.0898E-39', '6.0898E-39'],
    ['0.0010310042', '1.0310042E-3'], ['2.8823261E17', '2.882326E17'], ['7.0385309E-26', '7.038531E-26'],
    ['9.2234038E17', '9.223404E17'], ['6.7108872E7', '6.710887E7'], ['1.0E-44', '1E-44'],
    ['2.816025E14', '2.816025E14'], ['9.223372E18', '9.223372E18'], ['1.5846085E29', '1.5846086E29'],
    ['1.1811161E19', '1.1811161E19'], ['5.368709E18', '5.368709E18'], ['4.6143165E18', '4.6143166E18'],
    ['0.007812537', '7.812537E-3'], ['1.4E-45', '1E-45'], ['1.18697724E20', '1.18697725E20'],
    ['1.00014165E-36', '1.00014165E-36'], ['200.0', '2E2'], ['3.3554432E7', '3.3554432E7'],
    ['1.2', '1.2E0'], ['1.23', '1.23E0'], ['1.234', '1.234E0'], ['1.2345', '1.2345E0'],
    ['1.23456', '1.23456E0'], ['1.234567', '1.234567E0'], ['1.2345678', '1.2345678E0'],
    ['1.23456735E-36', '1.23456735E-36']
  ]
  for (const [input, output] of ryu) cases.push([Number(input), String(Number(output))])
  for (const [value, expected] of cases) {
    t.equal(formatFloat32(value), expected, `${value} (as float32 ${Math.fround(value)})`)
  }
})

t.test('formatFloat32: -0 keeps its sign through JSON', async t => {
  t.ok(Object.is(JSON.parse(formatFloat32(-0)), -0))
})

t.test('formatFloat32: every power of two', async t => {
  const problems: string[] = []
  for (let exponent = -149; exponent <= 127; exponent++) {
    for (const value of [2 ** exponent, -(2 ** exponent)]) {
      const problem = problemWith(formatFloat32(value), value)
      if (problem !== undefined) problems.push(problem)
    }
  }
  t.same(problems, [])
})

t.test('formatFloat32: the floats on either side of every power of ten', async t => {
  // Where the digit count, the layout and the fast path's decimal scale all change.
  const problems: string[] = []
  for (let exponent = -45; exponent <= 38; exponent++) {
    const nearest = Math.fround(Number(`1e${exponent}`))
    floatOfBits[0] = nearest
    const bits = bitsOfFloat[0]
    for (let offset = -3; offset <= 3; offset++) {
      const value = float32FromBits(bits + offset)
      if (value === 0 || !Number.isFinite(value)) continue
      const problem = problemWith(formatFloat32(value), value)
      if (problem !== undefined) problems.push(problem)
    }
  }
  t.same(problems, [])
})

t.test('formatFloat32: random bit patterns', async t => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 0x7f7fffff }), fc.boolean(), (bits, negative) => {
    const value = float32FromBits(negative ? (bits | 0x80000000) >>> 0 : bits)
    const problem = problemWith(formatFloat32(value), value)
    if (problem !== undefined) throw new Error(problem)
  }), { numRuns: 20_000 })
  t.pass('20000 bit patterns')
})

t.test('formatFloat32: float32 values of the kinds fast-check favours', async t => {
  fc.assert(fc.property(fc.float({ noNaN: true, noDefaultInfinity: true }), value => {
    const text = formatFloat32(value)
    if (value === 0) {
      if (text !== (Object.is(value, -0) ? '-0' : '0')) throw new Error(`${text} for a zero`)
      return
    }
    const problem = problemWith(text, value)
    if (problem !== undefined) throw new Error(problem)
  }), { numRuns: 5_000 })
  t.pass('5000 values')
})

t.test('formatFloat32: values that are not finite float32s are refused', async t => {
  for (const value of [Infinity, -Infinity, NaN, 1e39]) t.throws(() => formatFloat32(value), RangeError, String(value))
})

const timestamp = 1764000000000

function sameFloat32s (actual: number[], expected: Float32Array): boolean {
  return actual.length === expected.length && actual.every((value, i) => Object.is(Math.fround(value), expected[i]))
}

t.test('recordToJsonLine: exact lines, keys in order', async t => {
  const vector = Float32Array.from([0.5, 1, 0.1, -0, 1e-7])
  const cases: Array<[LogRecord, string]> = [
    [
      { seq: 5, op: 'insert', id: 'a', vector, metadata: { k: 'v' }, timestamp },
      '{"seq":5,"op":"insert","id":"a","vector":[0.5,1,0.1,-0,1e-7],"metadata":{"k":"v"},"timestamp":1764000000000}\n'
    ],
    [
      { seq: 6, op: 'update', id: 'a', vector: Float32Array.from([2]), timestamp },
      '{"seq":6,"op":"update","id":"a","vector":[2],"timestamp":1764000000000}\n'
    ],
    [
      { seq: 7, op: 'delete', id: 'a', timestamp },
      '{"seq":7,"op":"delete","id":"a","timestamp":1764000000000}\n'
    ],
    [
      {
        seq: 8,
        op: 'batch',
        entries: [
          { op: 'insert', id: 'b', vector: Float32Array.from([0.25]), metadata: { x: 'y' } },
          { op: 'update', id: 'c', vector: Float32Array.from([3]) },
          { op: 'delete', id: 'd' }
        ],
        txId: 'tx-1',
        timestamp
      },
      '{"seq":8,"op":"batch","entries":[{"op":"insert","id":"b","vector":[0.25],"metadata":{"x":"y"}},' +
        '{"op":"update","id":"c","vector":[3]},{"op":"delete","id":"d"}],"txId":"tx-1","timestamp":1764000000000}\n'
    ],
    [
      { seq: 9, op: 'batch', entries: [{ op: 'delete', id: 'e' }], timestamp },
      '{"seq":9,"op":"batch","entries":[{"op":"delete","id":"e"}],"timestamp":1764000000000}\n'
    ],
    [
      { seq: 10, op: 'checkpoint', checkpoint: 4, timestamp },
      '{"seq":10,"op":"checkpoint","checkpoint":4,"timestamp":1764000000000}\n'
    ],
    [
      { seq: 11, op: 'insert', id: 'empty', vector: new Float32Array(0), timestamp },
      '{"seq":11,"op":"insert","id":"empty","vector":[],"timestamp":1764000000000}\n'
    ]
  ]
  for (const [record, line] of cases) t.equal(recordToJsonLine(record), line, `seq ${record.seq}`)
})

t.test('recordToJsonLine: strings are escaped, and no line break is left raw', async t => {
  const awkward = [
    'quote " and backslash \\',
    'new\nline, carriage\rreturn, tab\t',
    'line separator \u2028, paragraph separator \u2029, next line \u0085',
    'control \u0000 \u001f and delete \u007f',
    'unicode é 中文 🎉'
  ]
  for (const [i, text] of awkward.entries()) {
    const line = recordToJsonLine({
      seq: 1, op: 'insert', id: text, vector: Float32Array.from([1]), metadata: { [text]: text }, timestamp
    })
    // Test names are labels, not the text: TAP output is line based too.
    t.match(line, /^[^\n\r\u0085\u2028\u2029]*\n$/, `awkward string ${i} stays on one line`)
    const parsed = JSON.parse(line)
    t.equal(parsed.id, text)
    t.same(parsed.metadata, { [text]: text })
    const batch = JSON.parse(recordToJsonLine({ seq: 2, op: 'batch', entries: [{ op: 'delete', id: text }], txId: text, timestamp }))
    t.equal(batch.entries[0].id, text)
    t.equal(batch.txId, text)
  }
})

t.test('recordToJsonLine: a vector viewing part of a larger buffer', async t => {
  const backing = Float32Array.from([9, 9, 0.1, 0.2, 0.3, 9])
  const vector = backing.subarray(2, 5)
  t.equal(
    recordToJsonLine({ seq: 1, op: 'insert', id: 'v', vector, timestamp }),
    '{"seq":1,"op":"insert","id":"v","vector":[0.1,0.2,0.3],"timestamp":1764000000000}\n'
  )
})

t.test('recordToJsonLine: the longest printings, filling a 65,536-value vector', async t => {
  // Below 1e21 a float32 prints in full: 21 digits and a sign, the longest text one value takes.
  const widest = Math.fround(-9.9999998e20)
  const vector = new Float32Array(65_536).fill(widest)
  const line = recordToJsonLine({ seq: 1, op: 'insert', id: 'wide', vector, timestamp })
  t.match(line, /^\{"seq":1,"op":"insert","id":"wide","vector":\[-\d{21},/)
  t.ok(sameFloat32s(JSON.parse(line).vector, vector), 'all 65536 values read back')
})

t.test('recordToJsonLine: a vector longer than any before it, then a short one', async t => {
  const long = new Float32Array(65_536).map((_, i) => -(i + 0.1) * 1e-30)
  const parsed = JSON.parse(recordToJsonLine({ seq: 1, op: 'insert', id: 'long', vector: long, timestamp }))
  t.ok(sameFloat32s(parsed.vector, long), 'all 65536 values read back')
  t.equal(
    recordToJsonLine({ seq: 2, op: 'insert', id: 'short', vector: Float32Array.from([1.5]), timestamp }),
    '{"seq":2,"op":"insert","id":"short","vector":[1.5],"timestamp":1764000000000}\n'
  )
})

t.test('recordToJsonLine: every record reads back as itself', async t => {
  const text = fc.string({ unit: 'binary', maxLength: 12 })
  const vector = fc.float32Array({ noNaN: true, noDefaultInfinity: true, maxLength: 16 })
  // No `__proto__` key: the HTTP layer refuses one anywhere, and fast-check's dictionary, which
  // sometimes makes it on purpose, sets a prototype with it rather than a key (a flaky failure).
  const metadata = fc.option(fc.dictionary(text.filter(key => key !== '__proto__'), text, { maxKeys: 4 }), { nil: undefined })
  const entry = fc.oneof(
    fc.record({ op: fc.constantFrom('insert' as const, 'update' as const), id: text, vector, metadata }),
    fc.record({ op: fc.constant('delete' as const), id: text })
  )
  const seq = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })
  const record = fc.oneof(
    fc.tuple(entry, seq).map(([entry, seq]) => ({ ...entry, seq, timestamp })),
    fc.record({
      seq,
      op: fc.constant('batch' as const),
      entries: fc.array(entry, { minLength: 1, maxLength: 4 }),
      txId: fc.option(text, { nil: undefined }),
      timestamp: fc.constant(timestamp)
    })
  )
  fc.assert(fc.property(record, record => {
    const line = recordToJsonLine(record as LogRecord)
    if (!line.endsWith('\n') || /[\n\r\u0085\u2028\u2029]/.test(line.slice(0, -1))) throw new Error(`not one line: ${line}`)
    const parsed = JSON.parse(line)
    const entries = record.op === 'batch' ? record.entries : [record]
    const parsedEntries = record.op === 'batch' ? parsed.entries : [parsed]
    if (parsed.seq !== record.seq || parsed.op !== record.op || parsed.timestamp !== timestamp) throw new Error(line)
    if (record.op === 'batch' && parsed.txId !== record.txId) throw new Error(`txId: ${line}`)
    entries.forEach((entry, i) => {
      const read = parsedEntries[i]
      if (read.op !== entry.op || read.id !== entry.id) throw new Error(`entry ${i}: ${line}`)
      if (entry.op === 'delete') return
      if (!sameFloat32s(read.vector, entry.vector)) throw new Error(`vector ${i}: ${line}`)
      if (JSON.stringify(read.metadata) !== JSON.stringify(entry.metadata)) throw new Error(`metadata ${i}: ${line}`)
    })
  }), { numRuns: 1_000 })
  t.pass('1000 records')
})

t.test('recordLineBytes: payloads that are not record bodies of their type are refused', async t => {
  const packr = new Packr({ moreTypes: true, useRecords: false })
  const entry = (body: unknown): EncodedPayload => ({ type: RecordType.insert, bytes: packr.pack(body) })
  const vector = Float32Array.from([1])
  const refused: Array<[string, EncodedPayload]> = [
    ['an array, not a map', entry(['insert', 'a'])],
    ['an empty map', entry({})],
    ['op not first', entry({ id: 'a', op: 'insert', vector })],
    ['op of another type', { ...encodeEntry({ op: 'update', id: 'a', vector }), type: RecordType.insert }],
    ['a record type with no name', { ...encodeEntry({ op: 'insert', id: 'a', vector }), type: 9 as never }],
    ['a nil value', entry({ op: 'insert', id: null, vector })],
    ['a negative number', entry({ op: 'insert', id: 'a', vector, n: -1 })],
    ['a fractional number', entry({ op: 'insert', id: 'a', vector, n: 0.5 })],
    ['a boolean', entry({ op: 'insert', id: 'a', vector, n: true })],
    ['a float64 typed array', entry({ op: 'insert', id: 'a', vector: Float64Array.from([1]) })],
    ['raw bytes', entry({ op: 'insert', id: 'a', vector: Buffer.from([1, 2, 3, 4]) })],
    ['a number as a key', { type: RecordType.insert, bytes: Buffer.from([0x82, 0xa2, 0x6f, 0x70, 0xa6, ...Buffer.from('insert'), 0x01, 0xa1, 0x61]) }],
    ['an extra key', entry({ op: 'insert', id: 'a', vector, extra: 1 })],
    ['keys out of order', entry({ op: 'insert', vector, id: 'a' })],
    ['a delete carrying a vector', { type: RecordType.delete, bytes: packr.pack({ op: 'delete', id: 'a', vector }) }],
    ['an insert without a vector', entry({ op: 'insert', id: 'a' })],
    ['an id that is a number', entry({ op: 'insert', id: 5, vector })],
    ['a vector of plain numbers', entry({ op: 'insert', id: 'a', vector: [1, 2] })],
    ['a metadata value that is a number', entry({ op: 'insert', id: 'a', vector, metadata: { k: 1 } })],
    ['a checkpoint given as a string', { type: RecordType.checkpoint, bytes: packr.pack({ op: 'checkpoint', checkpoint: '12' }) }],
    ['batch entries in a map', { type: RecordType.batch, bytes: packr.pack({ op: 'batch', entries: { 0: { op: 'delete', id: 'a' } } }) }],
    ['a batch entry of no known op', { type: RecordType.batch, bytes: packr.pack({ op: 'batch', entries: [{ op: 'upsert', id: 'a' }] }) }],
    ['a batch entry without its op first', { type: RecordType.batch, bytes: packr.pack({ op: 'batch', entries: [{ id: 'a', op: 'delete' }] }) }],
    ['an infinite vector value', entry({ op: 'insert', id: 'a', vector: Float32Array.from([1, Infinity]) })],
    ['a NaN vector value', entry({ op: 'insert', id: 'a', vector: Float32Array.from([NaN]) })]
  ]
  for (const [label, payload] of refused) {
    t.equal(recordLineBytes(frameOf(1, timestamp, payload)), undefined, label)
    t.equal(recordMsgpackBytes(frameOf(1, timestamp, payload)), undefined, `${label}: the msgpack form refuses it too`)
  }

  const whole = encodeEntry({ op: 'insert', id: 'abc', vector: Float32Array.from([1, 2]), metadata: { k: 'v' } })
  for (let cut = 1; cut < whole.bytes.length; cut++) {
    const frame = frameOf(1, timestamp, { type: whole.type, bytes: whole.bytes.subarray(0, cut) })
    if (recordLineBytes(frame) !== undefined) t.fail(`a payload cut to ${cut} bytes gave a line`)
  }
  const longer = frameOf(1, timestamp, { type: whole.type, bytes: Buffer.concat([whole.bytes, Buffer.from([0xa0])]) })
  t.equal(recordLineBytes(longer), undefined, 'bytes after the body')
  t.equal(recordToJsonLine({ seq: 1, op: 'insert', id: 'abc', vector: Float32Array.from([1, 2]), metadata: { k: 'v' }, timestamp }),
    '{"seq":1,"op":"insert","id":"abc","vector":[1,2],"metadata":{"k":"v"},"timestamp":1764000000000}\n', 'the whole payload still prints')
})

t.test('recordLineBytes: checkpoints past 2^32, which msgpackr writes as float64', async t => {
  t.equal(recordToJsonLine({ seq: 3, op: 'checkpoint', checkpoint: 2 ** 40 + 1, timestamp }),
    '{"seq":3,"op":"checkpoint","checkpoint":1099511627777,"timestamp":1764000000000}\n')
  t.equal(recordToJsonLine({ seq: 4, op: 'checkpoint', checkpoint: 70_000, timestamp }),
    '{"seq":4,"op":"checkpoint","checkpoint":70000,"timestamp":1764000000000}\n')
})

t.test('recordLineBytes: metadata keys stored before lone surrogates were refused print once, as they decode', async t => {
  // Such keys were stored as invalid UTF-8 (ED A0 80), and two of them decode alike (U+FFFD x3).
  // Packed as the writer packed bodies then: it refuses such strings now.
  const legacy = {
    type: RecordType.insert,
    bytes: new Packr({ moreTypes: true, useRecords: false }).pack({ op: 'insert', id: 'a', vector: Float32Array.from([1]), metadata: { '\ud800': 'x', '\udc00': 'y', plain: 'z' } })
  }
  t.ok(legacy.bytes.includes(Buffer.from([0xed, 0xa0, 0x80])), 'the key is stored as invalid UTF-8')
  const line = recordLineBytes(frameOf(1, timestamp, legacy))?.toString('utf8')
  t.equal(line, '{"seq":1,"op":"insert","id":"a","vector":[1],"metadata":{"\ufffd\ufffd\ufffd":"y","plain":"z"},"timestamp":1764000000000}\n')
})

t.test('recordLineBytes: a line longer than the kept buffer is let go once its caller drops it', async t => {
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  let collected = false
  const registry = new FinalizationRegistry(() => { collected = true })
  const wide = new Float32Array(100_000).fill(Math.fround(-9.9999998e20))
  ;(() => {
    const long = recordLineBytes(frameOf(1, timestamp, encodeEntry({ op: 'insert', id: 'wide', vector: wide })))
    if (long === undefined || long.buffer.byteLength <= 1024 * 1024) throw new Error('the line should need a buffer of its own')
    registry.register(long.buffer, 'the long line')
  })()
  for (let i = 0; i < 20 && !collected; i++) {
    gc()
    await sleep(10)
  }
  t.ok(collected, 'the buffer of the long line was collected')
})

t.test('recordLineBytes: checkpoints naming a consumer, and consumer records, print their fields in stored order', async t => {
  const name = fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/)
  const seq = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })
  await fc.assert(fc.property(name, fc.constantFrom('create' as const, 'delete' as const, 'carry' as const), seq, seq, seq, seq, (consumer, event, start, checkpoint, checkpointedAt, at) => {
    const named = { seq: at, op: 'checkpoint' as const, checkpoint, consumer, timestamp }
    const record = { seq: at, op: 'consumer' as const, name: consumer, event, start, checkpoint, checkpointedAt, timestamp }
    for (const expected of [named, record]) {
      const line = recordToJsonLine(expected)
      if (!line.endsWith('\n') || JSON.stringify(JSON.parse(line)) !== JSON.stringify(expected)) throw new Error(`${line} for ${JSON.stringify(expected)}`)
    }
  }), { numRuns: 200 })
  t.pass('every line is the record, keys in order')
})
