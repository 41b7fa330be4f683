// The segment engine against the backend conformance suite (test/helpers/log-conformance.ts): real
// files in a fresh directory for each case, a file layer whose fdatasync can be made to fail.
import t from 'tap'
import { failingIO } from '../helpers/http.js'
import { logConformance } from '../helpers/log-conformance.js'
import { openLog, tempDir } from '../helpers/wal.js'

logConformance(t, async t => {
  const { io, fail } = failingIO()
  const log = await openLog(t, { dir: tempDir(t), io })
  return { log, failWrites: fail }
}, { canFailWrites: true })
