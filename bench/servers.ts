// The two kinds of server the scenarios load: the service (node dist/src/cli.js serve) on a data
// directory, and the ceiling server. Both listen on 127.0.0.1 on a free port.
import path from 'node:path'
import { CEILING_SCRIPT, SERVICE_SCRIPT, spawnServer, type ServerChild } from './process.js'

const LOOPBACK = { VECWAL_HOST: '127.0.0.1', VECWAL_PORT: '0', VECWAL_LOG_LEVEL: 'info' }

export interface ServiceStart {
  /** Names the CPU profile when profiling: <label>.cpuprofile. */
  label: string
  dataDir: string
  /** VECWAL_* settings on top of durability fsync and group commit on. */
  env?: Record<string, string>
  /** Write a CPU profile into this directory (--cpu-prof). */
  profileDir?: string
}

export async function startService (start: ServiceStart): Promise<ServerChild> {
  const nodeFlags = start.profileDir === undefined
    ? []
    : ['--cpu-prof', '--cpu-prof-dir', path.resolve(start.profileDir), '--cpu-prof-name', `${start.label}.cpuprofile`]
  return await spawnServer({
    script: SERVICE_SCRIPT,
    args: ['serve'],
    env: { ...LOOPBACK, VECWAL_DATA_DIR: start.dataDir, VECWAL_DURABILITY: 'fsync', ...start.env },
    nodeFlags
  })
}

export async function startCeiling (): Promise<ServerChild> {
  return await spawnServer({ script: CEILING_SCRIPT, env: LOOPBACK })
}

/**
 * Starts servers side by side (a start costs a second of CPU, and idle servers cost nothing while
 * another is loaded), runs `use` against them, and stops them all afterwards, whatever happens.
 */
export async function withServers<T> (starts: Array<() => Promise<ServerChild>>, use: (servers: ServerChild[]) => Promise<T>): Promise<T> {
  const started = await Promise.allSettled(starts.map(async start => await start()))
  const servers = started.flatMap(result => result.status === 'fulfilled' ? [result.value] : [])
  try {
    const failed = started.find(result => result.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    return await use(servers)
  } finally {
    await Promise.all(servers.map(async server => { await server.stop() }))
  }
}

/** Runs `use` against one server and stops it afterwards, whatever happens. */
export async function withServer<T> (start: () => Promise<ServerChild>, use: (server: ServerChild) => Promise<T>): Promise<T> {
  return await withServers([start], async ([server]) => await use(server))
}
