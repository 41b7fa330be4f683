// Generates the OpenAPI document from the route schemas, as the running service serves it.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pino } from 'pino'
import { buildApp } from '../src/http/app.js'
import { createMetrics } from '../src/http/metrics.js'
import { WriteAheadLog } from '../src/wal/log.js'

export async function generateOpenApiDocument (): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vecwal-openapi-'))
  const log = await WriteAheadLog.open({ dir, durability: 'none' })
  try {
    const app = await buildApp({ log, logger: pino({ level: 'silent' }), metrics: createMetrics(() => log.status()), bodyLimitBytes: 16 * 1024 * 1024 })
    await app.ready()
    const document = JSON.stringify(app.swagger(), null, 2) + '\n'
    await app.close()
    return document
  } finally {
    await log.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** The project's root: the nearest folder above this module with a package.json (from src or dist). */
function projectRoot (): string {
  let dir = path.dirname(new URL(import.meta.url).pathname)
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir)
  return dir
}

export const OPENAPI_FILE = path.join(projectRoot(), 'openapi', 'openapi.json')
