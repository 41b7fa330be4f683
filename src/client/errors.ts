// The client's errors, in a module of their own so that the client and its follow reader share them.

/** A refusal by the service (status and code set), or no answer at all after every try (status undefined). */
export class VecwalError extends Error {
  constructor (
    message: string,
    readonly status: number | undefined,
    readonly code: string | undefined,
    readonly attempts: number,
    options?: { cause?: unknown }
  ) {
    super(message, options)
    this.name = 'VecwalError'
  }
}

/** A followed stream the service ended for good: the log failed, or retention deleted what was to be read next. */
export class FollowEndedError extends VecwalError {
  constructor (readonly end: 'failed' | 'gone', code: string | undefined, message: string | undefined) {
    super(`follow: ended ${end}: ${code ?? ''} ${message ?? ''}`.trim(), undefined, code, 1)
    this.name = 'FollowEndedError'
  }
}
