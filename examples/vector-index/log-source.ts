// Everything the index program knows of the service, in one place: reading the records after a seq
// and checkpointing. Records are read in pages (`GET /v1/recovery?after=N&limit=K` as msgpack),
// polled while the log has nothing new; the checkpoint is the default consumer's
// (`POST /v1/checkpoints`). A service that is down or busy is waited for, never given up on: the
// program's state is on its own disk, and the log holds every record it has not applied yet.
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
  /** Records asked for per page: what one page may hold in memory is this many records. */
  pageRecords: number
  /** How long to wait before asking again when the log had nothing new, or the service was away. */
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

export class LogSource {
  constructor (private readonly options: LogSourceOptions) {}

  /**
   * The records after `after`, page by page in seq order, until `signal` aborts; throws
   * LogGoneError when the log cannot give them, and retries any other failure. The caller applies
   * a page before asking for the next, and the next page starts after the page's last seq, so a
   * page it has not finished is asked for again rather than skipped.
   */
  async * pages (after: number, signal: AbortSignal): AsyncGenerator<LogRecord[]> {
    let last = after
    // Told once per run of the same failure, not at every retry.
    let failure = ''
    while (!signal.aborted) {
      let page: LogRecord[]
      try {
        page = await this.read(last, signal)
        failure = ''
      } catch (err) {
        if (signal.aborted) return
        if (err instanceof LogGoneError) throw err
        const message = describeError(err)
        if (message !== failure) this.options.onError(message)
        failure = message
        await sleep(this.options.pollMs, signal)
        continue
      }
      if (page.length === 0) {
        await sleep(this.options.pollMs, signal)
        continue
      }
      yield page
      last = page[page.length - 1].seq
    }
  }

  /** Marks everything up to `seq` as persisted by this consumer. A later checkpoint already there is success. */
  async checkpoint (seq: number): Promise<void> {
    const res = await fetch(`${this.options.url}/v1/checkpoints`, {
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

  private async read (after: number, signal: AbortSignal): Promise<LogRecord[]> {
    const res = await fetch(`${this.options.url}/v1/recovery?after=${after}&limit=${this.options.pageRecords}`, {
      headers: { accept: MSGPACK },
      signal: AbortSignal.any([signal, AbortSignal.timeout(30_000)])
    })
    if (!res.ok) {
      const err = await answerError(res, `reading after ${after}`)
      throw res.status === 410 || res.status === 416 ? new LogGoneError(err.message) : err
    }
    const body = Buffer.from(await res.arrayBuffer())
    // An answer cut short inside a record (the service died mid-stream) ends in a partial map,
    // which unpackMultiple refuses: the page is asked for again. One cut between records is just a
    // shorter page.
    return body.length === 0 ? [] : unpackMultiple(body) as LogRecord[]
  }
}
