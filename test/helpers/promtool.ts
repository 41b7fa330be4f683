// promtool (Debian package prometheus) for the tests that check what Prometheus will read: CI must
// have it; a machine without it outside CI skips those tests.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'

export const promtoolMissing = spawnSync('promtool', ['--version']).error !== undefined

/** A tap `skip` option: the reason outside CI when promtool is missing, else false. */
export const skipPromtool = promtoolMissing && process.env.CI === undefined ? 'promtool is not on PATH (Debian package prometheus); CI runs this check' : false

export const PROMTOOL_MISSING_IN_CI = 'promtool is not on PATH; CI must install it (Debian package prometheus)'

/** Runs promtool to its end in `cwd`, with `input` on its standard input. */
export function promtool (args: string[], options: { input?: string, cwd?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync('promtool', args, { ...options, encoding: 'utf8', timeout: 60_000 })
}
