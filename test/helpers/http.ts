// Helpers for HTTP tests: a real service on 127.0.0.1 (port 0) over a real data directory.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pino } from 'pino'
import { loadConfig } from '../../src/config.js'
import { startService, type Service } from '../../src/main.js'

export interface Teardown { teardown: (fn: () => unknown) => void }

export interface TestService extends Service {
  dir: string
  /** fetch against the service: `call('POST', '/v1/entries', body)`. */
  call: (method: string, route: string, body?: unknown, headers?: Record<string, string>) => Promise<Response>
}

/** Starts the service with VECWAL_* overrides; it is stopped and its directory removed at teardown. */
export async function startTestService (t: Teardown, env: Record<string, string> = {}, dir?: string): Promise<TestService> {
  const dataDir = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'vecwal-http-'))
  if (dir === undefined) t.teardown(() => { fs.rmSync(dataDir, { recursive: true, force: true }) })
  const config = loadConfig({ VECWAL_PORT: '0', VECWAL_DATA_DIR: dataDir, VECWAL_LOG_LEVEL: 'silent', ...env })
  const service = await startService(config, pino({ level: 'silent' }))
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    await service.stop()
  }
  t.teardown(stop)
  return {
    ...service,
    stop,
    dir: dataDir,
    call: async (method, route, body, headers = {}) => await fetch(service.url + route, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body)
    })
  }
}

/** Reads an NDJSON response line by line into objects. */
export async function ndjson (response: Response): Promise<Array<Record<string, unknown>>> {
  const text = await response.text()
  return text.split('\n').filter(line => line !== '').map(line => JSON.parse(line) as Record<string, unknown>)
}
