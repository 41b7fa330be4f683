// Request bodies being received are held to a total (VECWAL_BODY_BUDGET_BYTES): uploads that stall
// mid-body, each within the body limit, can no longer hold memory without bound. A request past the
// budget is answered 503 with Retry-After as soon as its headers arrive; the budget comes back when
// a stalled upload ends, answered or cut.
import { once } from 'node:events'
import net from 'node:net'
import fc from 'fast-check'
import t from 'tap'
import { startTestService } from '../helpers/http.js'

const KiB = 1024

/** Sends the headers of a POST with a `length`-byte body and `sent` bytes of it, then waits. */
async function stalledUpload (url: string, length: number, sent: number): Promise<net.Socket> {
  const { hostname, port } = new URL(url)
  const socket = net.connect(Number(port), hostname)
  await once(socket, 'connect')
  socket.write(`POST /v1/entries HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`)
  socket.write(Buffer.alloc(sent, 0x20))
  return socket
}

t.test('past the budget a request gets 503 with Retry-After before its body is read; the budget comes back when uploads end', async t => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 2, max: 6 }), fc.integer({ min: 8, max: 60 }), async (fit, kib) => {
    const length = kib * KiB
    const service = await startTestService(t, { VECWAL_BODY_BUDGET_BYTES: String(fit * length + length - 1), VECWAL_BODY_LIMIT_BYTES: String(64 * KiB) })
    const stalled = await Promise.all(Array.from({ length: fit }, async () => await stalledUpload(service.url, length, 100)))
    // Let the service read every set of headers.
    await new Promise(resolve => setTimeout(resolve, 100))
    const refused = await service.call('POST', '/v1/entries', ' '.repeat(length - 2) + '{}')
    const body = await refused.json() as { code: string }
    if (refused.status !== 503 || body.code !== 'HTTP_TOO_MANY_BODIES' || refused.headers.get('retry-after') !== '1') throw new Error(`past the budget: ${refused.status} ${JSON.stringify(body)}`)
    for (const socket of stalled) socket.destroy()
    await new Promise(resolve => setTimeout(resolve, 100))
    const accepted = await service.call('POST', '/v1/entries', { op: 'delete', id: 'after' })
    if (accepted.status !== 201) throw new Error(`after the uploads ended: ${accepted.status} ${await accepted.text()}`)
    await service.stop()
    return true
  }), { numRuns: 6 })
  t.pass('every flood past the budget was refused at its headers, and writes went on once it ended')
})

t.test('a request with no body, or within the budget, is never refused by it', async t => {
  const service = await startTestService(t, { VECWAL_BODY_BUDGET_BYTES: '2048', VECWAL_BODY_LIMIT_BYTES: '4096' })
  const writes = await Promise.all(Array.from({ length: 20 }, async (_, i) => await service.call('POST', '/v1/entries', { op: 'delete', id: `d${i}` })))
  t.same(writes.map(w => w.status).filter(s => s !== 201 && s !== 503), [], 'each write was taken or asked to retry')
  t.ok(writes.some(w => w.status === 201), 'writes within the budget are taken')
  t.equal((await service.call('GET', '/v1/status')).status, 200, 'a GET reserves nothing')
  const alone = await service.call('POST', '/v1/entries', { op: 'delete', id: 'x'.repeat(200) })
  t.equal(alone.status, 201, 'with nothing else in flight a body is admitted')
})
