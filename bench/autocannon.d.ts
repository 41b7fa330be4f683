// The part of autocannon's programmatic API the bench uses (the package ships no types).
declare module 'autocannon' {
  interface Options {
    url: string
    connections?: number
    /** Seconds. */
    duration?: number
    method?: string
    headers?: Record<string, string>
    body?: string | Buffer
    /** Milliseconds between samples; a run ends at the first sample after its duration. */
    sampleInt?: number
    /** Seconds a response may take before it counts as a timeout. */
    timeout?: number
  }

  interface Histogram {
    average: number
    p50: number
    p90: number
    p99: number
    max: number
  }

  interface Result {
    /** Seconds the run actually took. */
    duration: number
    errors: number
    timeouts: number
    non2xx: number
    '2xx': number
    /** Milliseconds, 2xx responses only. */
    latency: Histogram
  }

  /** A run: awaitable for its result, and telling of every response as it comes. */
  interface Instance extends PromiseLike<Result> {
    on (event: 'response', listener: (client: unknown, statusCode: number, resBytes: number, responseTimeMs: number) => void): this
  }

  function autocannon (options: Options): Instance
  export default autocannon
}
