// A 3-node JetStream cluster on 127.0.0.1 for a test file (scripts/nats-cluster.ts), started once
// and stopped at the file's teardown, and fresh streams on it: each opened log gets a stream of
// its own, deleted when its test ends.
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import fc from 'fast-check'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { JetStreamLog, type JetStreamOptions } from '../../src/jetstream/jetstream-log.js'
import { NatsCluster } from '../../scripts/nats-cluster.js'
import type { TeardownTarget } from './wal.js'

export { NatsCluster }

/**
 * Starts a cluster of `size` nodes, stopped when `t` ends. The test file's property tests then
 * report their first failing case as it is: each case there waits for a quorum (a case of the
 * conformance suite opens an R3 stream, about half a second), and shrinking a failure tries hundreds
 * of cases, past tap's timeout for the file (seen in CI: a failure reported only as "timeout!").
 */
export async function startNatsCluster (t: TeardownTarget, size = 3): Promise<NatsCluster> {
  fc.configureGlobal({ ...fc.readConfigureGlobal(), endOnFailure: true })
  const cluster = await NatsCluster.start(size)
  t.teardown(async () => { await cluster.stop() })
  return cluster
}

let version: string | undefined

/** The version of the nats-server the tests start, e.g. 2.9.10. */
export function natsServerVersion (): string {
  version ??= /v(\d+\.\d+\.\d+)/.exec(execFileSync('nats-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? 'unknown'
  return version
}

/** A stream name no other test uses. */
export function freshStreamName (): string {
  return `test_${randomUUID().replaceAll('-', '')}`
}

/** Deletes a stream, if the cluster is still there to ask. */
export async function deleteStream (servers: string[], stream: string): Promise<void> {
  const nc = await connect({ servers, timeout: 2000 })
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5000 })
    await jsm.streams.delete(stream).catch(() => {})
  } finally {
    await nc.close()
  }
}

/** Opens a log on a fresh stream of the cluster; at teardown it is closed and its stream deleted. */
export async function openJetStreamLog (t: TeardownTarget, cluster: NatsCluster, options: Partial<JetStreamOptions> = {}): Promise<JetStreamLog> {
  const stream = options.stream ?? freshStreamName()
  const log = await JetStreamLog.open({ servers: cluster.servers, stream, timeoutMs: 5000, ...options })
  t.teardown(async () => {
    await log.close().catch((err: { code?: string }) => { if (err.code !== 'WAL_CLOSED') throw err })
    await deleteStream(cluster.servers, stream)
  })
  return log
}
