// Everything the index program knows of the service, in one place: following the log after a seq
// and checkpointing. The program is a named consumer (`PUT /v1/consumers/{name}`): it follows the
// log as msgpack (`GET /v1/recovery?after=N&follow=true`), each record as soon as it is durable, and
// checkpoints its consumer (`POST /v1/consumers/{name}/checkpoint`), which holds retention back
// until the index has saved what it would delete. A service that is down or busy is waited for,
// never given up on: the program's state is on its own disk, and the log holds every record it has
// not applied yet.
import { unpackMultiple } from 'msgpackr'

/** One entry as the recovery stream gives it (the msgpack form: vectors are Float32Arrays). */
export interface LogEntry {
  op: 'insert' | 'update' | 'delete'
  id: string
  vector?: Float32Array
}

/** A record of the log: one entry, or a batch (a batch request or a committed transaction) of many. */
export type LogRecord = { seq: number } & (LogEntry | { op: 'batch', entries: LogEntry[] })

export interface LogSourceOptions {
  /** The service, e.g. http://127.0.0.1:8080. */
  url: string
  /** The consumer this program is. */
  consumer: string
  /** How long to wait before connecting again when the service was away or ended the stream. */
  pollMs: number
  /** Called with what went wrong when reading failed (it is retried): once for a run of the same failure. */
  onError: (message: string) => void
}

const MSGPACK = 'application/msgpack'

function sleep (ms: number, signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done)
  })
}

/** The error a non-2xx answer carries: its status and the service's code, when it sent one. */
async function answerError (res: Response, what: string): Promise<Error> {
  const text = await res.text()
  let code = ''
  try {
    code = (JSON.parse(text) as { code?: string }).code ?? ''
  } catch {}
  return Object.assign(new Error(`${what}: ${res.status} ${code || text.slice(0, 200)}`), { status: res.status, code })
}

/**
 * The log cannot give what the index needs, and waiting will not change that: 410, the records
 * after the saved seq were deleted (something else checkpointed past the save); 416, the log ends
 * before the saved seq (it is not the log this index was built from).
 */
export class LogGoneError extends Error {}

/** fetch's errors say only "fetch failed"; the cause says why (ECONNREFUSED, say). */
export function describeError (err: unknown): string {
  const { message, cause } = err as Error & { cause?: { code?: string } }
  return cause?.code === undefined ? message : `${message} (${cause.code})`
}

/** What a followed msgpack stream holds besides records: heartbeats (nil) and its last map, `{end}`. */
interface StreamEnd { end: string }

export class LogSource {
  private readonly consumerPath: string

  constructor (private readonly options: LogSourceOptions) {
    this.consumerPath = `${options.url}/v1/consumers/${encodeURIComponent(options.consumer)}`
  }

  /**
   * The records after `after`, in seq order, a page at a time as they arrive, until `signal`
   * aborts; throws LogGoneError when the log cannot give them, and reconnects after any other
   * failure or end of the stream (the service stopping says so in the stream's last map). The
   * caller applies a page before the stream is read on, and a reconnection starts after the last
   * seq yielded, so nothing is skipped or given twice.
   */
  async * pages (after: number, signal: AbortSignal): AsyncGenerator<LogRecord[]> {
    let last = after
    // Told once per run of the same failure, not at every retry.
    let failure = ''
    while (!signal.aborted) {
      try {
        await this.join()
        for await (const page of this.follow(last, signal)) {
          failure = ''
          yield page
          last = page[page.length - 1].seq
        }
      } catch (err) {
        if (signal.aborted) return
        if (err instanceof LogGoneError) throw err
        const message = describeError(err)
        if (message !== failure) this.options.onError(message)
        failure = message
      }
      await sleep(this.options.pollMs, signal)
    }
  }

  /** Marks everything up to `seq` as persisted by this consumer. A later checkpoint already there is success. */
  async checkpoint (seq: number): Promise<void> {
    const res = await fetch(`${this.consumerPath}/checkpoint`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ seq }),
      signal: AbortSignal.timeout(10_000)
    })
    if (res.ok) {
      await res.arrayBuffer()
      return
    }
    const err = await answerError(res, `checkpoint ${seq}`)
    // The answer to an earlier post of this or a later seq was lost (the service or this program
    // died after the checkpoint was durable): what was asked for holds already.
    if ((err as Error & { code: string }).code === 'WAL_CHECKPOINT_BACKWARDS') return
    throw err
  }

  /** Creates the consumer if it is not there (an existing one is left as it is). */
  private async join (): Promise<void> {
    const res = await fetch(this.consumerPath, { method: 'PUT', signal: AbortSignal.timeout(10_000) })
    if (!res.ok) throw await answerError(res, `creating consumer ${this.options.consumer}`)
    await res.arrayBuffer()
  }

  /** One followed stream: the records after `after` in pages as its chunks bring them, until it ends. */
  private async * follow (after: number, signal: AbortSignal): AsyncGenerator<LogRecord[]> {
    const res = await fetch(`${this.options.url}/v1/recovery?after=${after}&follow=true`, { headers: { accept: MSGPACK }, signal })
    if (!res.ok || res.body === null) {
      const err = await answerError(res, `following after ${after}`)
      throw res.status === 410 || res.status === 416 ? new LogGoneError(err.message) : err
    }
    // Bytes of a map the last chunk cut short: it is finished by the next chunk. A stream cut
    // inside a record (the service died) leaves them unread, and the next stream starts again
    // after the last whole record.
    let pending = Buffer.alloc(0)
    for await (const chunk of res.body) {
      pending = pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([pending, chunk])
      const page: LogRecord[] = []
      let read = 0
      let ended = false
      try {
        unpackMultiple(pending, (value: LogRecord | StreamEnd | null, _start?: number, end?: number) => {
          read = end ?? pending.length
          if (value === null) return
          if ('end' in value) ended = true
          else page.push(value)
        })
      } catch (err) {
        if ((err as { incomplete?: boolean }).incomplete !== true) throw err
      }
      pending = pending.subarray(read)
      if (page.length > 0) yield page
      if (ended) return
    }
  }
}
