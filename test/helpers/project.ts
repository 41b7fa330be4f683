// Where the project's built files are, and a free port: shared by the tests that spawn processes.
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** The project's root: the nearest folder above this module with a package.json (from test/ or dist/test/). */
export const ROOT = ((): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir)
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`)
    dir = parent
  }
  return dir
})()

/** The compiled CLI; `npm test` builds it first (pretest). */
export const CLI = path.join(ROOT, 'dist', 'src', 'cli.js')

/**
 * This process's environment without tap's: tap's loaders and coverage would follow a child into
 * every process it starts, slowing each start for nothing, and its TAP_* variables would tell a
 * tap file run as a child that it is this file's.
 */
export function untappedEnv (): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) =>
    name !== 'NODE_OPTIONS' && name !== 'NODE_V8_COVERAGE' && name !== 'TAP' && !name.startsWith('TAP_') && !name.startsWith('_TAPJS_')))
}

/** A port nothing listened on a moment ago (the kernel's choice for port 0). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => { resolve(port) })
    })
  })
}
