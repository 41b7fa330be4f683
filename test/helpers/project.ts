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
