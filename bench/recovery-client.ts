// Reads GET /v1/recovery to its end as a consumer would, counting records and bytes without
// decoding them: the bench shares the machine with the server, and decoding would take CPU from it.
// NDJSON records are lines; msgpack records are top-level maps, counted by skipping over them.
import http from 'node:http'

const NEWLINE = 0x0a

export type RecoveryForm = 'ndjson' | 'msgpack'

export interface RecoveryRead {
  records: number
  bytes: number
  seconds: number
}

/** The end of an item of `width` bytes after its head byte at `at`, or -1 past the end of `bytes`. */
function fixedEnd (bytes: Buffer, at: number, width: number): number {
  return at + 1 + width <= bytes.length ? at + 1 + width : -1
}

/** The end of an item whose length (`lengthBytes` wide, big-endian) follows its head, then `extra` bytes. */
function sizedEnd (bytes: Buffer, at: number, lengthBytes: 1 | 2 | 4, extra: number): number {
  if (at + 1 + lengthBytes > bytes.length) return -1
  const length = lengthBytes === 1 ? bytes[at + 1] : lengthBytes === 2 ? bytes.readUInt16BE(at + 1) : bytes.readUInt32BE(at + 1)
  const end = at + 1 + lengthBytes + extra + length
  return end <= bytes.length ? end : -1
}

/** The end of `count` items from `from`, or -1. */
function itemsEnd (bytes: Buffer, from: number, count: number): number {
  let next = from
  for (let i = 0; i < count && next !== -1; i++) next = skipItem(bytes, next)
  return next
}

/** The end of a map or array whose count (`countBytes` wide) follows its head; maps hold two items an entry. */
function containerEnd (bytes: Buffer, at: number, countBytes: 2 | 4, itemsPerEntry: 1 | 2): number {
  if (at + 1 + countBytes > bytes.length) return -1
  const count = countBytes === 2 ? bytes.readUInt16BE(at + 1) : bytes.readUInt32BE(at + 1)
  return itemsEnd(bytes, at + 1 + countBytes, itemsPerEntry * count)
}

/** Where the msgpack item at `at` ends, or -1 if `bytes` ends first: every type is skipped, not decoded. */
function skipItem (bytes: Buffer, at: number): number {
  if (at >= bytes.length) return -1
  const head = bytes[at]
  if (head <= 0x7f || head >= 0xe0 || head === 0xc0 || head === 0xc2 || head === 0xc3) return at + 1
  if (head <= 0x8f) return itemsEnd(bytes, at + 1, 2 * (head & 0x0f))
  if (head <= 0x9f) return itemsEnd(bytes, at + 1, head & 0x0f)
  if (head <= 0xbf) return fixedEnd(bytes, at, head & 0x1f)
  switch (head) {
    case 0xc4: case 0xd9: return sizedEnd(bytes, at, 1, 0)
    case 0xc5: case 0xda: return sizedEnd(bytes, at, 2, 0)
    case 0xc6: case 0xdb: return sizedEnd(bytes, at, 4, 0)
    case 0xc7: return sizedEnd(bytes, at, 1, 1)
    case 0xc8: return sizedEnd(bytes, at, 2, 1)
    case 0xc9: return sizedEnd(bytes, at, 4, 1)
    case 0xcc: case 0xd0: return fixedEnd(bytes, at, 1)
    case 0xcd: case 0xd1: case 0xd4: return fixedEnd(bytes, at, 2)
    case 0xd5: return fixedEnd(bytes, at, 3)
    case 0xca: case 0xce: case 0xd2: return fixedEnd(bytes, at, 4)
    case 0xd6: return fixedEnd(bytes, at, 5)
    case 0xcb: case 0xcf: case 0xd3: return fixedEnd(bytes, at, 8)
    case 0xd7: return fixedEnd(bytes, at, 9)
    case 0xd8: return fixedEnd(bytes, at, 17)
    case 0xdc: return containerEnd(bytes, at, 2, 1)
    case 0xdd: return containerEnd(bytes, at, 4, 1)
    case 0xde: return containerEnd(bytes, at, 2, 2)
    case 0xdf: return containerEnd(bytes, at, 4, 2)
  }
  throw new Error(`not msgpack: byte 0x${head.toString(16)}`)
}

/** GET /v1/recovery with node:http, which costs the shared CPU less than fetch's web streams. */
async function getRecovery (baseUrl: string, form: RecoveryForm, timeoutMs: number): Promise<http.IncomingMessage> {
  return await new Promise((resolve, reject) => {
    const request = http.get(`${baseUrl}/v1/recovery?after=0`, {
      headers: { accept: form === 'msgpack' ? 'application/msgpack' : 'application/x-ndjson' },
      signal: AbortSignal.timeout(timeoutMs)
    }, resolve)
    request.once('error', reject)
  })
}

export async function readRecovery (baseUrl: string, form: RecoveryForm, timeoutMs: number): Promise<RecoveryRead> {
  const started = performance.now()
  const response = await getRecovery(baseUrl, form, timeoutMs)
  if (response.statusCode !== 200) {
    const body: Buffer[] = []
    for await (const chunk of response) body.push(chunk as Buffer)
    throw new Error(`GET /v1/recovery answered ${response.statusCode ?? '?'}: ${Buffer.concat(body).toString()}`)
  }
  let records = 0
  let bytes = 0
  let pending: Buffer = Buffer.alloc(0)
  for await (const chunk of response as AsyncIterable<Buffer>) {
    bytes += chunk.length
    if (form === 'ndjson') {
      for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) records++
      continue
    }
    // A record may span chunks: what is left of one waits for the next chunk.
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    let at = 0
    for (let end = skipItem(pending, at); end !== -1; end = skipItem(pending, at)) {
      records++
      at = end
    }
    pending = pending.subarray(at)
  }
  if (pending.length > 0) throw new Error(`the msgpack stream ended inside a record (${pending.length} bytes)`)
  return { records, bytes, seconds: (performance.now() - started) / 1000 }
}
