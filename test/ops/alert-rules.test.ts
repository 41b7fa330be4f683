// The alerting rules Prometheus loads (ops/prometheus/vecwal.rules.yml): promtool accepts them, and
// their unit tests (vecwal.rules.test.yml: each alert fires on the series it is for, at the time it
// should, and stays quiet on healthy ones) pass.
import path from 'node:path'
import t from 'tap'
import { ROOT } from '../helpers/project.js'
import { PROMTOOL_MISSING_IN_CI, promtool, promtoolMissing, skipPromtool } from '../helpers/promtool.js'

const DIR = path.join(ROOT, 'ops', 'prometheus')

t.test('promtool checks the rules and runs their unit tests', { skip: skipPromtool }, async t => {
  if (promtoolMissing) {
    t.fail(PROMTOOL_MISSING_IN_CI)
    return
  }
  const check = promtool(['check', 'rules', 'vecwal.rules.yml'], { cwd: DIR })
  t.equal(check.status, 0, `promtool check rules: ${check.stdout}${check.stderr}`)
  t.match(check.stdout, /SUCCESS: \d+ rules found/, 'the rules are read')
  const unit = promtool(['test', 'rules', 'vecwal.rules.test.yml'], { cwd: DIR })
  t.equal(unit.status, 0, `promtool test rules: ${unit.stdout}${unit.stderr}`)
  t.match(unit.stdout, /SUCCESS/)
})
