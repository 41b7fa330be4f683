// P5's followers, spread over worker threads: one Node thread on the bench's 2 shared cores could
// not read 100 NDJSON streams at P1's rate (its probes were still unread a second after the load),
// which measured the client, not the service. Each thread holds its share of the follow streams
// and notes when each probe's line arrives; the bench then asks every thread for the probes it
// waits for, and each answers once its followers have them all, or at a deadline.
import { Worker } from 'node:worker_threads'

/** Threads the followers are spread over, at most: enough that reading never waits on one core. */
const MAX_THREADS = 4
const WORKER_SCRIPT = new URL('./follower-thread.js', import.meta.url)

/**
 * Milliseconds on a clock every thread and process of the machine shares: performance.now() alone
 * counts from each process's start, and a thread's own origin is not promised to be its process's.
 */
export function sharedClockMs (): number {
  return performance.timeOrigin + performance.now()
}

export interface FollowerThreadData {
  url: string
  followers: number
}

export type FromFollowerThread =
  | { kind: 'ready' }
  | { kind: 'failed', message: string }
  /**
   * Per follower, the arrival of each probe asked for, in the order asked (NaN: not seen); and the
   * share of the time from ready to the request in which the thread was busy: near 1, the
   * followers, not the service, set the delays.
   */
  | { kind: 'arrivals', arrivals: Float64Array[], busy: number }

export interface CollectRequest {
  kind: 'collect'
  probes: number[]
  /** On the shared clock: past it a thread answers with what its followers have seen. */
  deadline: number
}

export interface Collected {
  /** The arrival of each probe at each follower (shared clock, NaN if it never came). */
  arrivals: Float64Array[]
  /** The busiest thread's share of busy time (event loop utilization) from the start to the collect. */
  busiest: number
}

export interface Followers {
  /** The probes' arrivals, once every follower has seen them all or `deadline` (shared clock) has passed. */
  collect: (probes: number[], deadline: number) => Promise<Collected>
  close: () => Promise<void>
}

/** Opens `count` NDJSON followers of the service at `url`, answering once every one is streaming. */
export async function startFollowers (url: string, count: number): Promise<Followers> {
  const threads = Math.min(count, MAX_THREADS)
  const workers = Array.from({ length: threads }, (_, i) => {
    // An even share each: the first `count % threads` threads take one more.
    const followers = Math.floor(count / threads) + (i < count % threads ? 1 : 0)
    return new Worker(WORKER_SCRIPT, { workerData: { url, followers } satisfies FollowerThreadData })
  })
  const close = async (): Promise<void> => { await Promise.all(workers.map(async worker => await worker.terminate())) }
  try {
    await Promise.all(workers.map(async worker => await answer(worker, 'ready')))
  } catch (err) {
    await close()
    throw err
  }
  return {
    collect: async (probes, deadline) => {
      const answers = workers.map(async worker => {
        const arrivals = answer(worker, 'arrivals')
        worker.postMessage({ kind: 'collect', probes, deadline } satisfies CollectRequest)
        return await arrivals
      })
      const collected = await Promise.all(answers)
      return { arrivals: collected.flatMap(c => c.arrivals), busiest: Math.max(...collected.map(c => c.busy)) }
    },
    close
  }
}

/** The thread's next message, which must be of `kind`: a failure or an exit rejects. */
async function answer<K extends FromFollowerThread['kind']> (worker: Worker, kind: K): Promise<Extract<FromFollowerThread, { kind: K }>> {
  return await new Promise((resolve, reject) => {
    const settle = (): void => {
      worker.off('message', onMessage)
      worker.off('error', onError)
      worker.off('exit', onExit)
    }
    const onMessage = (message: FromFollowerThread): void => {
      settle()
      if (message.kind === kind) resolve(message as Extract<FromFollowerThread, { kind: K }>)
      else reject(new Error(message.kind === 'failed' ? message.message : `a follower thread sent ${message.kind}, not ${kind}`))
    }
    const onError = (err: Error): void => { settle(); reject(err) }
    const onExit = (code: number): void => { settle(); reject(new Error(`a follower thread exited with ${code}`)) }
    worker.on('message', onMessage)
    worker.once('error', onError)
    worker.once('exit', onExit)
  })
}
