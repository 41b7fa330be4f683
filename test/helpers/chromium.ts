// Headless Chromium (Debian's `chromium`) for the browser tests, and the page server it loads its
// page from. The page server is what README prescribes for browsers: one origin that serves the page
// and passes /v1/* through to the service, so that the page calls the service same-origin, as it
// is, with the browser's web security on. The page reports back by POST /report.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http, { type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { ownChild, ownTempDir, removeTempDir } from '../../scripts/children.js'
import type { TeardownTarget } from './wal.js'

const CHROMIUM = '/usr/bin/chromium'

/**
 * A host name the browser resolves to 127.0.0.1 (and the only one it resolves at all). A page there
 * is not a secure context, as a page on a plain-http host name is: Chromium counts localhost and
 * every 127.0.0.0/8 address as potentially trustworthy, so a page on those has Web Crypto's
 * secure-context-only parts (crypto.randomUUID) that real users' pages may not.
 */
export const INSECURE_HOST = 'vecwal.test'

/** Hop-by-hop headers: each side of the proxy has its own connection. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host'])

const TYPES: Readonly<Record<string, string>> = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.map': 'application/json' }

export interface Resource { type: string, body: string | Uint8Array }

export interface PageServerOptions<R> {
  /** Where /v1/* is passed to: the service's base URL. */
  serviceUrl: string
  /** Answers by exact path: the page itself at '/'. */
  resources: Readonly<Record<string, Resource>>
  /** Directories served below URL prefixes ('/client/' → dist/src/client), files only, never above them. */
  directories?: Readonly<Record<string, string>>
  /** Reads a report's body. */
  decode: (body: Buffer) => R
}

export interface PageServer<R> {
  port: number
  /** The page server's origin under `host` (default 127.0.0.1). */
  origin: (host?: string) => string
  /** Each request the proxy passed to the service, as the browser sent it. */
  proxied: Array<{ method: string, url: string, headers: IncomingHttpHeaders }>
  /** Resolves with the page's latest report once `ready` holds for it; rejects after `timeoutMs`. */
  until: (ready: (report: R) => boolean, what: string, timeoutMs?: number) => Promise<R>
}

/**
 * Passes a request to the service and its answer back as it comes, chunk by chunk (a followed
 * stream included). The service not answering (stopped, between a stop and a start) drops the
 * browser's connection, as a network error: a 502 would make EventSource give up instead of
 * reconnecting, and a proxy in front of a restarting service must not do that either.
 */
function pass (serviceUrl: string, request: http.IncomingMessage, response: http.ServerResponse): void {
  const headers = Object.fromEntries(Object.entries(request.headers).filter(([name]) => !HOP_BY_HOP.has(name)))
  const upstream = http.request(new URL(request.url ?? '/', serviceUrl), { method: request.method, headers, agent: false }, answer => {
    response.writeHead(answer.statusCode ?? 502, Object.fromEntries(Object.entries(answer.headers).filter(([name]) => !HOP_BY_HOP.has(name))))
    answer.pipe(response)
    answer.once('close', () => { if (!answer.complete) response.destroy() })
  })
  upstream.once('error', () => { request.socket.destroy() })
  // The browser went away (or the test ends): so does the service's side, so as not to hold its stop.
  response.once('close', () => { upstream.destroy() })
  request.pipe(upstream)
}

function serveFile (directory: string, rest: string, response: http.ServerResponse): void {
  const file = path.resolve(directory, decodeURIComponent(rest))
  if (!file.startsWith(directory + path.sep) || !fs.statSync(file, { throwIfNoEntry: false })?.isFile()) {
    response.writeHead(404).end()
    return
  }
  response.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' }).end(fs.readFileSync(file))
}

/** Starts the page server on 127.0.0.1 (port 0); it is closed at teardown, with the browser's kept-alive connections. */
export async function startPageServer<R> (t: TeardownTarget, options: PageServerOptions<R>): Promise<PageServer<R>> {
  let report: R | undefined
  let reported: () => void = () => {}
  const proxied: PageServer<R>['proxied'] = []
  const directories = Object.entries(options.directories ?? {}).map(([prefix, dir]) => [prefix, path.resolve(dir)] as const)
  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://page')
    if (url.pathname.startsWith('/v1/')) {
      proxied.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers })
      pass(options.serviceUrl, request, response)
      return
    }
    if (request.method === 'POST' && url.pathname === '/report') {
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk)).on('end', () => {
        report = options.decode(Buffer.concat(chunks))
        reported()
        response.end()
      })
      return
    }
    const resource = options.resources[url.pathname]
    if (resource !== undefined) {
      response.writeHead(200, { 'content-type': resource.type }).end(resource.body)
      return
    }
    const under = directories.find(([prefix]) => url.pathname.startsWith(prefix))
    if (under !== undefined) {
      serveFile(under[1], url.pathname.slice(under[0].length), response)
      return
    }
    response.writeHead(404).end()
  })
  server.listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  t.teardown(async () => {
    // The browser's kept-alive connections would hold the server, and the test file, open.
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  })
  const { port } = server.address() as AddressInfo
  return {
    port,
    origin: (host = '127.0.0.1') => `http://${host}:${port}`,
    proxied,
    until: async (ready, what, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs
      while (report === undefined || !ready(report)) {
        if (Date.now() > deadline) throw new Error(`the page did not report ${what}: ${JSON.stringify(report)}`)
        await new Promise<void>(resolve => {
          reported = resolve
          setTimeout(resolve, 500)
        })
      }
      return report
    }
  }
}

/**
 * Starts headless Chromium on `url`, with a fresh profile, web security on, and a resolver that
 * finds 127.0.0.1 and INSECURE_HOST only; at teardown it is killed with every process it started,
 * and its profile removed.
 */
export function launchChromium (t: TeardownTarget, url: string): void {
  const profile = ownTempDir('vecwal-chromium-')
  const browser = ownChild(spawn(CHROMIUM, [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
    '--disable-extensions', '--disable-background-networking', '--disable-component-update',
    `--host-resolver-rules=MAP ${INSECURE_HOST} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1`,
    `--user-data-dir=${profile}`, url
  ], { stdio: 'ignore', detached: true }), { group: true })
  t.teardown(async () => {
    if (browser.exitCode === null && browser.signalCode === null) {
      const gone = new Promise(resolve => browser.once('exit', resolve))
      // Its own process group: the renderer and helper processes it started go with it.
      process.kill(-(browser.pid as number), 'SIGKILL')
      await gone
    }
    removeTempDir(profile)
  })
}
