// A JetStream cluster of nats-server processes on 127.0.0.1, each with ports found free and a store
// directory of its own under a fresh temporary directory: what the JetStream backend's tests run
// against, and what a person can start by hand (`node dist/scripts/nats-cluster.js [nodes]`, which
// prints the URLs and stops the cluster on SIGINT or SIGTERM). Nodes are stopped by their pid,
// and can be killed, paused and started again one by one, as the fault tests do; they and their
// directory go with the process that started them, however it ends (children.ts).
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { ownChild, ownTempDir, removeTempDir } from './children.js'

/** The largest message the nodes take: vecwal's largest record (a batch or a transaction) must fit. */
export const NATS_MAX_PAYLOAD_BYTES = 8 * 1024 * 1024
/** How long a start waits for every node to see a JetStream meta leader. */
const READY_TIMEOUT_MS = 30_000
/** How long a stop waits for a node to exit after SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 5_000

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo
      server.close(() => { resolve(address.port) })
    })
  })
}

function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

export class NatsNode {
  private child: ChildProcess | undefined
  private exited: Promise<void> = Promise.resolve()

  constructor (
    readonly name: string,
    readonly port: number,
    readonly monitorPort: number,
    private readonly configFile: string,
    private readonly logFile: string
  ) {}

  get url (): string {
    return `nats://127.0.0.1:${this.port}`
  }

  get pid (): number | undefined {
    return this.child?.pid
  }

  get running (): boolean {
    return this.child !== undefined
  }

  start (): void {
    if (this.child !== undefined) throw new Error(`${this.name} is running already`)
    const log = fs.openSync(this.logFile, 'a')
    const child = ownChild(spawn('nats-server', ['-c', this.configFile], { stdio: ['ignore', log, log] }))
    fs.closeSync(log)
    this.child = child
    this.exited = new Promise(resolve => {
      child.once('exit', () => {
        if (this.child === child) this.child = undefined
        resolve()
      })
    })
  }

  /** Sends a signal to this node's process (SIGKILL, SIGSTOP, SIGCONT...); a kill waits for the exit. */
  async signal (signal: NodeJS.Signals): Promise<void> {
    const child = this.child
    if (child?.pid === undefined) return
    process.kill(child.pid, signal)
    if (signal === 'SIGKILL') await this.exited
  }

  async stop (): Promise<void> {
    const child = this.child
    if (child?.pid === undefined) return
    // A paused node would never act on SIGTERM.
    process.kill(child.pid, 'SIGCONT')
    process.kill(child.pid, 'SIGTERM')
    const timer = setTimeout(() => { if (this.child === child && child.pid !== undefined) process.kill(child.pid, 'SIGKILL') }, STOP_TIMEOUT_MS)
    await this.exited
    clearTimeout(timer)
  }

  /**
   * The JetStream meta leader this node knows of, if any, and (when it is the leader) how many of
   * its followers are current, from its monitoring endpoint's /jsz; a node outside any cluster
   * leads itself once JetStream is up.
   */
  async metaState (): Promise<{ leader: string | undefined, currentFollowers: number }> {
    try {
      const response = await fetch(`http://127.0.0.1:${this.monitorPort}/jsz`, { signal: AbortSignal.timeout(1000) })
      const body = await response.json() as { config?: unknown, meta_cluster?: { leader?: string, replicas?: Array<{ current?: boolean }> } }
      if (body.meta_cluster === undefined) return { leader: body.config === undefined ? undefined : this.name, currentFollowers: 0 }
      const { leader, replicas = [] } = body.meta_cluster
      return { leader: leader === '' ? undefined : leader, currentFollowers: replicas.filter(r => r.current === true).length }
    } catch {
      return { leader: undefined, currentFollowers: 0 }
    }
  }

  logTail (): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8').slice(-4000) : ''
  }
}

export class NatsCluster {
  private constructor (readonly dir: string, readonly nodes: NatsNode[]) {}

  /** Starts `size` nodes in a fresh temporary directory and waits until all see one meta leader. */
  static async start (size = 3): Promise<NatsCluster> {
    const dir = ownTempDir('vecwal-nats-')
    const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), cluster: await freePort(), monitor: await freePort() })))
    const routes = ports.map(p => `nats-route://127.0.0.1:${p.cluster}`)
    const nodes = ports.map((p, i) => {
      const name = `n${i + 1}`
      const configFile = path.join(dir, `${name}.conf`)
      fs.writeFileSync(configFile, [
        `server_name: ${name}`,
        `listen: 127.0.0.1:${p.client}`,
        `http: 127.0.0.1:${p.monitor}`,
        `max_payload: ${NATS_MAX_PAYLOAD_BYTES}`,
        `jetstream { store_dir: "${path.join(dir, name)}", max_memory_store: 64MB, max_file_store: 2GB }`,
        // One node is a server of its own: a cluster of one would wait for routes forever. The
        // cluster is named by its directory: should another cluster take a port found free here
        // before its node binds it, the nodes refuse each other's routes instead of merging.
        size === 1 ? '' : `cluster { name: ${path.basename(dir)}, listen: 127.0.0.1:${p.cluster}, routes: [${routes.join(', ')}] }`,
        ''
      ].join('\n'))
      return new NatsNode(name, p.client, p.monitor, configFile, path.join(dir, `${name}.log`))
    })
    const cluster = new NatsCluster(dir, nodes)
    try {
      for (const node of nodes) node.start()
      await cluster.ready()
    } catch (err) {
      await cluster.stop()
      throw err
    }
    return cluster
  }

  /** The client URLs of the nodes. */
  get servers (): string[] {
    return this.nodes.map(n => n.url)
  }

  /**
   * Waits until every running node sees the same JetStream meta leader, and the leader sees every
   * other running node current: until then a stream of 3 replicas may find "no suitable peers for
   * placement" (as it did when three test files started clusters at once).
   */
  async ready (timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const running = this.nodes.filter(n => n.running)
      const states = await Promise.all(running.map(async n => await n.metaState()))
      const leader = states[0]?.leader
      const leaderState = states[running.findIndex(n => n.name === leader)]
      if (leader !== undefined && states.every(s => s.leader === leader) && leaderState !== undefined && leaderState.currentFollowers >= running.length - 1) return
      if (Date.now() > deadline) {
        throw new Error(`no JetStream meta leader within ${timeoutMs} ms:\n${this.nodes.map(n => `${n.name}: ${n.logTail()}`).join('\n')}`)
      }
      await sleep(100)
    }
  }

  /** Stops every node by its pid and removes the store directories. */
  async stop (): Promise<void> {
    await Promise.all(this.nodes.map(async n => { await n.stop() }))
    removeTempDir(this.dir)
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const cluster = await NatsCluster.start(Number(process.argv[2] ?? 3))
  process.stdout.write(`VECWAL_NATS_SERVERS=${cluster.servers.join(',')}\nstore: ${cluster.dir}\npids: ${cluster.nodes.map(n => n.pid).join(' ')}\n`)
  const stop = (): void => { cluster.stop().then(() => process.exit(0), () => process.exit(1)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
