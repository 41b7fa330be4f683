// Server-Sent Events in a real browser: headless Chromium (Debian's `chromium`) loads a page that
// follows the log with a plain EventSource and reports what it gets back to the test. The page
// server passes /v1/* to the service, as the same-origin proxy README prescribes for browsers, so
// the browser runs with its web security on (the service sends no CORS headers; auth is off, as
// EventSource cannot send an Authorization header). Records are written while the page follows:
// some before it loads (read as history), then more once it reports its stream open, so they reach
// it live. The service is then stopped mid-stream and started again on the same port and data
// directory; EventSource reconnects by itself, sending Last-Event-ID, and once it reports that
// second stream open more records are written. The page must see every record exactly once, in order.
import fc from 'fast-check'
import t from 'tap'
import { entry, entryBody } from '../helpers/bodies.js'
import { launchChromium, startPageServer } from '../helpers/chromium.js'
import { startTestService, type TestService } from '../helpers/http.js'
import { tempDir } from '../helpers/wal.js'

/** Records written before the page loads; then LIVE_RECORDS on each of its two streams. */
const HISTORY_RECORDS = 5
const LIVE_RECORDS = 20

interface Report { events: Array<{ id: string, seq: number }>, ends: string[], opens: number }

const PAGE = `<!doctype html><title>follow</title><script>
const report = { events: [], ends: [], opens: 0 }
let pending = false
function send () {
  if (pending) return
  pending = true
  setTimeout(() => { pending = false; fetch('/report', { method: 'POST', body: JSON.stringify(report) }) }, 30)
}
const source = new EventSource('/v1/recovery?after=0&follow=true')
source.onopen = () => { report.opens++; send() }
source.onmessage = event => { report.events.push({ id: event.lastEventId, seq: JSON.parse(event.data).seq }); send() }
source.addEventListener('end', event => { report.ends.push(JSON.parse(event.data).end); send() })
</script>`

async function post (service: TestService, count: number, seed: number): Promise<void> {
  for (const e of fc.sample(entry, { numRuns: count, seed })) {
    const response = await service.call('POST', '/v1/entries', entryBody(e, 'json', k => k).toString())
    if (response.status !== 201) throw new Error(`write answered ${response.status}`)
  }
}

t.test('EventSource in Chromium, same-origin, follows the log live across a restart: no record lost or repeated', async t => {
  const dir = tempDir(t)
  let service = await startTestService(t, {}, dir)
  const port = new URL(service.url).port
  await post(service, HISTORY_RECORDS, 1)
  const pages = await startPageServer<Report>(t, {
    serviceUrl: service.url,
    resources: { '/': { type: 'text/html', body: PAGE } },
    decode: body => JSON.parse(body.toString()) as Report
  })
  launchChromium(t, `${pages.origin()}/`)

  await pages.until(r => r.opens === 1, 'its stream open')
  await post(service, LIVE_RECORDS, 2)
  const firstRun = HISTORY_RECORDS + LIVE_RECORDS
  await pages.until(r => r.events.length >= firstRun, `${firstRun} records`)
  await service.stop()
  await pages.until(r => r.ends.includes('shutdown'), 'the shutdown event')
  service = await startTestService(t, { VECWAL_PORT: port }, dir)
  await pages.until(r => r.opens >= 2, 'its stream open again')
  await post(service, LIVE_RECORDS, 3)
  const all = firstRun + LIVE_RECORDS
  await pages.until(r => r.events.length >= all, `${all} records`)
  // A moment more, for any record sent twice to show.
  await new Promise(resolve => setTimeout(resolve, 300))
  const report = await pages.until(() => true, 'a report')
  const seqs = Array.from({ length: all }, (_, i) => i + 1)
  t.same(report.events.map(e => e.seq), seqs, 'every record once, in order, across the restart')
  t.same(report.events.map(e => e.id), seqs.map(String), 'each event\'s id is its seq')
  t.same(report.ends, ['shutdown'], 'the page was told the server stopped')
  t.equal(report.opens, 2, 'EventSource reconnected by itself, once: the records written after each open came live')
  const follows = pages.proxied.filter(r => r.url.startsWith('/v1/recovery'))
  t.equal(follows.at(-1)?.headers['last-event-id'], String(firstRun), 'the reconnection resumed by Last-Event-ID, through the proxy')
  await service.stop()
})
