// A client nobody here wrote: Python with Debian's msgpack and numpy (.ci/run installs them), posting
// random float32 vectors as plain msgpack float arrays (float64 and float32) and as bin of
// little-endian float32 bytes, then reading the log back as NDJSON and as msgpack and checking every
// value bit for bit (test/clients/python_client.py).
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { startTestService } from '../helpers/http.js'
import { ROOT } from '../helpers/project.js'

/** Debian's interpreter, where apt puts python3-msgpack: not whichever python3 is first on PATH. */
const PYTHON = '/usr/bin/python3'
const CLIENT = path.join(ROOT, 'test', 'clients', 'python_client.py')
const REQUESTS = 90

t.test('a Python client posts every float32 form and reads every value back as it sent it', async t => {
  const service = await startTestService(t)
  const seed = Math.floor(Math.random() * 2 ** 31)
  const { stdout } = await promisify(execFile)(PYTHON, [CLIENT, service.url, String(seed), String(REQUESTS)], { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 })
  const report = JSON.parse(stdout) as { sent: number, refused: unknown[], problems: string[] }
  t.same(report.refused, [], `no request refused (seed ${seed})`)
  t.equal(report.sent, REQUESTS, 'every request was acknowledged')
  t.same(report.problems, [], 'NDJSON and msgpack gave back every op, id, metadata and float32 bit')
})
