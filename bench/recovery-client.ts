// Reads GET /v1/recovery to its end as a consumer would, counting records and bytes without
// decoding them: the bench shares the machine with the server, and decoding would take CPU from it.
// NDJSON records are lines; msgpack records are top-level maps, counted by skipping over them.
import http from 'node:http'
import { MsgpackMismatch, MsgpackReader } from '../src/msgpack/reader.js'

const NEWLINE = 0x0a

export type RecoveryForm = 'ndjson' | 'msgpack'

export interface RecoveryRead {
  records: number
  bytes: number
  seconds: number
}

/** Where the msgpack item at `at` ends, or -1 if `bytes` ends first: every type is skipped, not decoded. */
function skipItem (reader: MsgpackReader, bytes: Buffer, at: number): number {
  reader.reset(bytes, at, bytes.length)
  try {
    reader.skip()
    return reader.pos
  } catch (err) {
    if (err instanceof MsgpackMismatch && err.truncated) return -1
    throw err
  } finally {
    reader.release()
  }
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
  const reader = new MsgpackReader()
  for await (const chunk of response as AsyncIterable<Buffer>) {
    bytes += chunk.length
    if (form === 'ndjson') {
      for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) records++
      continue
    }
    // A record may span chunks: what is left of one waits for the next chunk.
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    let at = 0
    for (let end = skipItem(reader, pending, at); end !== -1; end = skipItem(reader, pending, at)) {
      records++
      at = end
    }
    pending = pending.subarray(at)
  }
  if (pending.length > 0) throw new Error(`the msgpack stream ended inside a record (${pending.length} bytes)`)
  return { records, bytes, seconds: (performance.now() - started) / 1000 }
}
