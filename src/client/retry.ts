// When a call is tried again, and how long the client waits in between. A write whose answer never
// came (the connection dropped) may or may not have been done: it is tried again only with the same
// idempotency key, which lets the service answer the first outcome instead of writing twice.

export interface RetryPolicy {
  /** Tries in all, the first included (default 5). */
  attempts: number
  /** No wait starts that would end past this many milliseconds from the first try (default 30 s). */
  maxElapsedMs: number
  /** The first backoff's cap, doubled on every try after it (default 100 ms). */
  baseDelayMs: number
  /** No backoff is longer (default 5 s); a Retry-After longer than it is waited for all the same, within maxElapsedMs. */
  maxDelayMs: number
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, maxElapsedMs: 30_000, baseDelayMs: 100, maxDelayMs: 5_000 }

/** Statuses the service answers when it did nothing and asks to be called again later. */
const RETRYABLE_STATUSES = new Set([429, 503])

/**
 * Milliseconds to wait, by the answer's Retry-After when it has one (seconds, or an HTTP date), plus
 * up to a fifth more so that clients refused together do not all come back at once; otherwise
 * exponential backoff with full jitter.
 */
export function retryDelayMs (policy: RetryPolicy, failedTries: number, retryAfter: string | null, random: () => number = Math.random): number {
  const told = retryAfterMs(retryAfter)
  if (told !== undefined) return told * (1 + random() / 5)
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (failedTries - 1))
  return random() * cap
}

function retryAfterMs (header: string | null): number | undefined {
  if (header === null) return undefined
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000
  const date = Date.parse(header)
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now())
}

/** Whether an answer asks to be tried again: 429, 503, or any 5xx with Retry-After (507 disk full, say). */
export function isRetryableResponse (response: Response): boolean {
  return RETRYABLE_STATUSES.has(response.status) || (response.status >= 500 && response.headers.has('retry-after'))
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
