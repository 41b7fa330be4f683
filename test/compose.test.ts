// docs/compose.jetstream.yml, the JetStream backend's production layout, against what it must hold:
// three NATS nodes forming one JetStream cluster, two or more vecwal instances on it, a load
// balancer in front, and vecwal variables that src/config.ts knows and accepts.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { ConfigSchema, loadConfig } from '../src/config.js'
import { ROOT } from './helpers/project.js'

interface ComposeService {
  image?: string
  build?: { context: string } | string
  command?: string[]
  configs?: Array<{ source: string, target: string }>
  environment?: Record<string, string>
  depends_on?: string[]
  ports?: string[]
}

interface ComposeFile {
  services: Record<string, ComposeService>
  configs: Record<string, { content: string }>
}

const COMPOSE = path.join(ROOT, 'docs', 'compose.jetstream.yml')
// The x- blocks are shared by YAML anchors and `<<` merge keys, which YAML 1.2 leaves off by default.
const compose = parse(fs.readFileSync(COMPOSE, 'utf8'), { merge: true }) as ComposeFile
const services = Object.entries(compose.services)
const natsServices = services.filter(([, s]) => s.image?.startsWith('nats:') === true)
const vecwalServices = services.filter(([, s]) => s.build !== undefined)

/** The text of the config file `service` mounts at `target`. */
function mountedConfig (service: ComposeService, target: string): string {
  const source = service.configs?.find(c => c.target === target)?.source
  if (source === undefined) throw new Error(`nothing is mounted at ${target}`)
  return compose.configs[source].content
}

/** host:port pairs of `scheme://host:port` URLs in `text`. */
const urlHosts = (text: string, scheme: string): string[] => [...text.matchAll(new RegExp(`${scheme}://([\\w.-]+):(\\d+)`, 'g'))].map(m => `${m[1]}:${m[2]}`)

t.test('three NATS nodes with JetStream, each routing to all three: one cluster', async t => {
  t.equal(natsServices.length, 3, `three nats services: ${natsServices.map(([name]) => name).join(', ')}`)
  const names = natsServices.map(([name, s]) => s.environment?.NATS_NAME ?? name)
  t.equal(new Set(names).size, 3, 'each node has a server name of its own')
  for (const [name, service] of natsServices) {
    const file = service.command?.[service.command.indexOf('-c') + 1]
    t.type(file, 'string', `${name} is started with a config file`)
    const config = mountedConfig(service, file as string)
    t.match(config, /^\s*jetstream\s*\{[^}]*store_dir:/m, `${name}: JetStream on, with a store directory`)
    t.match(config, /^\s*server_name:\s*\$\$NATS_NAME\s*$/m, `${name}: named from its environment`)
    const cluster = /^\s*cluster\s*\{([^}]*)\}/m.exec(config)?.[1] ?? ''
    const clusterPort = /listen:\s*[\d.]+:(\d+)/.exec(cluster)?.[1]
    t.ok(clusterPort !== undefined, `${name}: a cluster block with a listen port`)
    t.same(urlHosts(cluster, 'nats-route').sort(), natsServices.map(([n]) => `${n}:${String(clusterPort)}`).sort(), `${name}: routes to every nats service on the cluster port`)
  }
})

t.test('two or more vecwal instances on one stream of that cluster', async t => {
  t.ok(vecwalServices.length >= 2, `${vecwalServices.length} vecwal instances`)
  const clientPort = /^\s*listen:\s*[\d.]+:(\d+)/m.exec(mountedConfig(natsServices[0][1], '/etc/nats/nats.conf'))?.[1]
  for (const [name, service] of vecwalServices) {
    const context = typeof service.build === 'string' ? service.build : service.build?.context ?? ''
    t.ok(fs.existsSync(path.join(path.dirname(COMPOSE), context, 'Dockerfile')), `${name} is built from the project's Dockerfile`)
    const env = service.environment ?? {}
    t.equal(env.VECWAL_BACKEND, 'jetstream', `${name}: VECWAL_BACKEND=jetstream`)
    t.same(urlHosts(env.VECWAL_NATS_SERVERS ?? '', 'nats').sort(), natsServices.map(([n]) => `${n}:${String(clientPort)}`).sort(), `${name}: VECWAL_NATS_SERVERS names every nats service`)
    t.same([...(service.depends_on ?? [])].sort(), natsServices.map(([n]) => n).sort(), `${name} starts after the nats services`)
  }
  t.equal(new Set(vecwalServices.map(([, s]) => s.environment?.VECWAL_NATS_STREAM ?? 'vecwal')).size, 1, 'all on one stream')
})

t.test('a load balancer in front of every instance, sticky for transactions', async t => {
  const balancers = services.filter(([, s]) => vecwalServices.every(([name]) => s.depends_on?.includes(name) === true))
  t.equal(balancers.length, 1, 'one service in front of every vecwal instance')
  const [name, lb] = balancers[0]
  t.ok((lb.ports ?? []).length > 0, `${name} publishes a port`)
  const nginx = mountedConfig(lb, '/etc/nginx/conf.d/default.conf')
  const upstream = /upstream\s+\w+\s*\{([^}]*)\}/.exec(nginx)?.[1] ?? ''
  const port = /VECWAL_PORT=(\d+)/.exec(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))?.[1]
  const servers = [...upstream.matchAll(/^\s*server\s+([\w.-]+:\d+)/gm)].map(m => m[1])
  t.same(servers.sort(), vecwalServices.map(([n]) => `${n}:${String(port)}`).sort(), 'its upstream is every instance, on the port the image serves')
  t.match(upstream, /^\s*ip_hash;/m, 'sticky by client: a transaction stays on the instance that began it (README)')
})

t.test('every VECWAL_ variable it sets is in ConfigSchema, and the whole set starts a config', async t => {
  // Values compose fills in from the caller's environment (${NAME:?message}: required), given here.
  const supplied: Record<string, string> = { VECWAL_TOKENS: `admin:${randomBytes(16).toString('hex')}` }
  const known = Object.keys(ConfigSchema.properties)
  for (const [name, service] of vecwalServices) {
    const env = service.environment ?? {}
    const unknown = Object.keys(env).filter(k => k.startsWith('VECWAL_') && !known.includes(k))
    t.same(unknown, [], `${name}: no variable src/config.ts does not know`)
    const filled = Object.fromEntries(Object.entries(env).map(([k, v]) => {
      const required = /^\$\{(\w+):\?[^}]*\}$/.exec(String(v))
      if (required === null) return [k, String(v)]
      if (supplied[required[1]] === undefined) throw new Error(`${name}: ${k} takes ${required[1]}, for which the test has no value`)
      return [k, supplied[required[1]]]
    }))
    const config = loadConfig(filled)
    t.match(config.jetstream, { stream: env.VECWAL_NATS_STREAM }, `${name}: loadConfig accepts it, on the JetStream backend`)
  }
})
