// Asks another process whether a data directory's LOCK is held: a lock this process holds (or
// dropped) says nothing about what the kernel shows everybody else.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { ROOT } from './project.js'

const PROBE = `
const fs = require('node:fs')
const { tryLock } = require(process.argv[1])
const fd = fs.openSync(process.argv[2], fs.constants.O_RDWR)
process.stdout.write(tryLock(fd) ? 'free' : 'held')
`

/** True while some open of `dir`/LOCK holds its lock, as a fresh process sees it. */
export function lockHeldElsewhere (dir: string): boolean {
  const file = path.join(dir, 'LOCK')
  if (!fs.existsSync(file)) return false
  const probe = spawnSync(process.execPath, ['-e', PROBE, path.join(ROOT, 'node_modules', 'fs-native-extensions'), file], { encoding: 'utf8', timeout: 30_000 })
  if (probe.stdout !== 'free' && probe.stdout !== 'held') throw new Error(`the lock probe failed: ${probe.stderr}`)
  return probe.stdout === 'held'
}
