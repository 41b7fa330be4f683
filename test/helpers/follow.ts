// Helpers for follow streams: a response read as it arrives, and the three forms parsed, heartbeats
// told apart from records and the last line saying why the stream ended.
import http from 'node:http'
import { unpackMultiple } from 'msgpackr'

export type FollowForm = 'ndjson' | 'msgpack' | 'sse'

export const ACCEPT: Readonly<Record<FollowForm, string>> = {
  ndjson: 'application/x-ndjson',
  msgpack: 'application/msgpack',
  sse: 'text/event-stream'
}

/** A response read as it arrives. */
export interface OpenStream {
  status: number
  headers: http.IncomingHttpHeaders
  /** The bytes so far. */
  bytes: () => Buffer
  /** Resolves once the bytes so far satisfy `ready`; rejects after `timeoutMs`, or if the stream ends first. */
  until: (ready: (bytes: Buffer) => boolean, timeoutMs?: number) => Promise<void>
  /** Resolves with the bytes when the response ends, or with what came if the connection drops. */
  ended: Promise<Buffer>
  close: () => void
}

/** GETs `route` on a connection of its own and reads the answer as it arrives. */
export async function openStream (url: string, route: string, headers: Record<string, string> = {}): Promise<OpenStream> {
  return await new Promise((resolve, reject) => {
    const request = http.get(`${url}${route}`, { agent: false, headers }, response => {
      const parts: Buffer[] = []
      let waiters: Array<() => void> = []
      const bytes = (): Buffer => Buffer.concat(parts)
      let done = false
      const ended = new Promise<Buffer>(resolve => {
        const finish = (): void => {
          done = true
          for (const w of waiters) w()
          resolve(bytes())
        }
        response.on('end', finish)
        response.on('close', finish)
        response.on('error', () => {})
      })
      response.on('data', (chunk: Buffer) => {
        parts.push(chunk)
        for (const w of waiters) w()
      })
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        bytes,
        ended,
        close: () => { request.destroy() },
        until: async (ready, timeoutMs = 20_000) => {
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => { reject(new Error(`not ready after ${timeoutMs} ms: ${bytes().length} bytes`)) }, timeoutMs)
            const check = (): void => {
              if (ready(bytes())) {
                clearTimeout(timer)
                waiters = waiters.filter(w => w !== check)
                resolve()
              } else if (done) {
                clearTimeout(timer)
                reject(new Error(`the stream ended first: ${bytes().toString('latin1').slice(-200)}`))
              }
            }
            waiters.push(check)
            check()
          })
        }
      })
    })
    request.on('error', reject)
  })
}

/** What a follow stream held: its records, its heartbeats, and its last line if it ended with one. */
export interface Followed {
  records: Array<Record<string, unknown> & { seq: number }>
  heartbeats: number
  end?: Record<string, unknown>
  /** SSE: each event's id, and the `retry:` field. */
  ids?: string[]
  retry?: number
}

/** An SSE stream's events, as the EventSource parsing rules read them (only the fields used here). */
export function parseSse (text: string): Array<{ event?: string, id?: string, data?: string, retry?: number, comment?: string }> {
  const events: Array<{ event?: string, id?: string, data?: string, retry?: number, comment?: string }> = []
  // A block not yet closed by a blank line is not an event yet.
  const blocks = text.split('\n\n')
  blocks.pop()
  for (const block of blocks) {
    const event: { event?: string, id?: string, data?: string, retry?: number, comment?: string } = {}
    for (const line of block.split('\n')) {
      const colon = line.indexOf(':')
      const field = colon === -1 ? line : line.slice(0, colon)
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
      if (field === '') event.comment = value
      else if (field === 'data') event.data = event.data === undefined ? value : `${event.data}\n${value}`
      else if (field === 'id') event.id = value
      else if (field === 'event') event.event = value
      else if (field === 'retry') event.retry = Number(value)
    }
    events.push(event)
  }
  return events
}

/** Parses the bytes of a follow stream of `form`, complete records only. */
export function parseFollowed (form: FollowForm, bytes: Buffer): Followed {
  const out: Followed = { records: [], heartbeats: 0 }
  const take = (value: unknown): void => {
    if (value === null) out.heartbeats++
    else if (typeof value === 'object' && 'end' in (value as object)) out.end = value as Record<string, unknown>
    else out.records.push(value as Followed['records'][number])
  }
  if (form === 'ndjson') {
    const text = bytes.toString('utf8')
    const lines = text.split('\n')
    lines.pop()
    for (const line of lines) take(line === '' ? null : JSON.parse(line))
  } else if (form === 'msgpack') {
    // A stream read mid-way may end inside a map: only whole values count.
    let values: unknown[] = []
    try {
      values = unpackMultiple(bytes) as unknown[]
    } catch {
      for (let cut = bytes.length - 1; cut > 0; cut--) {
        try {
          values = unpackMultiple(bytes.subarray(0, cut)) as unknown[]
          break
        } catch {}
      }
    }
    for (const value of values) take(value)
  } else {
    out.ids = []
    for (const event of parseSse(bytes.toString('utf8'))) {
      if (event.retry !== undefined) out.retry = event.retry
      if (event.comment !== undefined) out.heartbeats++
      else if (event.event === 'end') out.end = JSON.parse(event.data ?? '') as Record<string, unknown>
      else if (event.data !== undefined) {
        out.ids.push(event.id ?? '')
        take(JSON.parse(event.data))
      }
    }
  }
  return out
}

/** True once the stream holds the record `seq`. */
export function holds (form: FollowForm, seq: number): (bytes: Buffer) => boolean {
  return bytes => parseFollowed(form, bytes).records.some(r => r.seq === seq)
}
