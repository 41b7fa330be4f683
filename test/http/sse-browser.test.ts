// Server-Sent Events in a real browser: headless Chromium (Debian's `chromium`) loads a page served
// by this test on 127.0.0.1 that follows the log with a plain EventSource and reports what it gets
// back to the test. The service is stopped mid-stream and started again on the same port and data
// directory; EventSource reconnects by itself, sending Last-Event-ID, and the page must end up with
// every record exactly once, in order. The page's origin is not the service's: the browser runs
// with web security off, as the service sends no CORS headers (and auth is off: EventSource cannot
// send an Authorization header).
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import fc from 'fast-check'
import { entry, entryBody } from '../helpers/bodies.js'
import { startTestService, type TestService } from '../helpers/http.js'
import { tempDir } from '../helpers/wal.js'

const CHROMIUM = '/usr/bin/chromium'
const RECORDS_PER_RUN = 25

interface Report { events: Array<{ id: string, seq: number }>, ends: string[], opens: number }

function page (serviceUrl: string): string {
  return `<!doctype html><title>follow</title><script>
const report = { events: [], ends: [], opens: 0 }
let pending = false
function send () {
  if (pending) return
  pending = true
  setTimeout(() => { pending = false; fetch('/report', { method: 'POST', body: JSON.stringify(report) }) }, 30)
}
const source = new EventSource(${JSON.stringify(serviceUrl)} + '/v1/recovery?after=0&follow=true')
source.onopen = () => { report.opens++; send() }
source.onmessage = event => { report.events.push({ id: event.lastEventId, seq: JSON.parse(event.data).seq }); send() }
source.addEventListener('end', event => { report.ends.push(JSON.parse(event.data).end); send() })
</script>`
}

async function post (service: TestService, count: number, seed: number): Promise<void> {
  for (const e of fc.sample(entry, { numRuns: count, seed })) {
    const response = await service.call('POST', '/v1/entries', entryBody(e, 'json', k => k).toString())
    if (response.status !== 201) throw new Error(`write answered ${response.status}`)
  }
}

t.test('EventSource in Chromium follows the log across a restart: no record lost or repeated', async t => {
  const dir = tempDir(t)
  let service = await startTestService(t, {}, dir)
  const port = new URL(service.url).port
  await post(service, RECORDS_PER_RUN, 1)

  let report: Report = { events: [], ends: [], opens: 0 }
  let reported: () => void = () => {}
  const pageServer = http.createServer((request, response) => {
    if (request.method === 'POST' && request.url === '/report') {
      let body = ''
      request.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => {
        report = JSON.parse(body) as Report
        reported()
        response.end()
      })
      return
    }
    response.writeHead(200, { 'content-type': 'text/html' }).end(page(service.url))
  })
  pageServer.listen(0, '127.0.0.1')
  await new Promise(resolve => pageServer.once('listening', resolve))
  t.teardown(() => {
    // The browser's kept-alive connections would hold the server, and the test file, open.
    pageServer.closeAllConnections()
    pageServer.close()
  })
  const pageUrl = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}/`

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'vecwal-chromium-'))
  const browser: ChildProcess = spawn(CHROMIUM, [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
    '--disable-extensions', '--disable-web-security', `--user-data-dir=${profile}`, pageUrl
  ], { stdio: 'ignore', detached: true })
  t.teardown(async () => {
    if (browser.exitCode === null && browser.signalCode === null) {
      const gone = new Promise(resolve => browser.once('exit', resolve))
      // Its own process group: the renderer and helper processes it started go with it.
      process.kill(-(browser.pid as number), 'SIGKILL')
      await gone
    }
    // A helper may still be closing its files in the profile as the group goes.
    fs.rmSync(profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 })
  })

  /** Resolves once the page has reported `ready`; rejects after the deadline. */
  async function until (ready: (r: Report) => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 30_000
    while (!ready(report)) {
      if (Date.now() > deadline) throw new Error(`the page did not report ${what}: ${JSON.stringify(report)}`)
      await new Promise<void>(resolve => {
        reported = resolve
        setTimeout(resolve, 500)
      })
    }
  }

  await until(r => r.events.length >= RECORDS_PER_RUN, `${RECORDS_PER_RUN} records`)
  await service.stop()
  await until(r => r.ends.includes('shutdown'), 'the shutdown event')
  service = await startTestService(t, { VECWAL_PORT: port }, dir)
  await post(service, RECORDS_PER_RUN, 2)
  await until(r => r.events.length >= 2 * RECORDS_PER_RUN && r.opens >= 2, 'the records written after the restart')
  // A moment more, for any record sent twice to show.
  await new Promise(resolve => setTimeout(resolve, 300))
  const seqs = Array.from({ length: 2 * RECORDS_PER_RUN }, (_, i) => i + 1)
  t.same(report.events.map(e => e.seq), seqs, 'every record once, in order, across the restart')
  t.same(report.events.map(e => e.id), seqs.map(String), 'each event\'s id is its seq')
  t.same(report.ends, ['shutdown'], 'the page was told the server stopped')
  t.equal(report.opens, 2, 'EventSource reconnected by itself, once')
  await service.stop()
})
