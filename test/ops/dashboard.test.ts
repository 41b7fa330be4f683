// The Grafana dashboard (ops/grafana/vecwal.json) and the alerting rules query only metrics the
// service really exposes (read from a real service's /metrics), and the dashboard shows every
// vecwal_ metric there is. Metric names come out of each query through Prometheus's PromQL grammar
// (test/helpers/promql.ts), whose reading is checked here first on generated expressions.
import fs from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import YAML from 'yaml'
import { startTestService } from '../helpers/http.js'
import { exposedNames, scrape } from '../helpers/metrics-scrape.js'
import { ROOT } from '../helpers/project.js'
import { metricNames } from '../helpers/promql.js'

interface Query { where: string, expr: string }

interface Panel {
  id: number
  title: string
  gridPos: { x: number, y: number, w: number, h: number }
  targets?: Array<{ expr: string, refId: string, datasource?: { uid: string } }>
  panels?: Panel[]
}
interface Dashboard { panels: Panel[], templating: { list: Array<{ name: string, type: string, query?: unknown }> } }

function readDashboard (): Dashboard {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'ops', 'grafana', 'vecwal.json'), 'utf8')) as Dashboard
}

/**
 * Grafana's variables made PromQL: interval variables become a duration, any other `$name` or
 * `${name}` (label values, in this dashboard) a regex matching anything.
 */
function asPromql (expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b/g, '5m').replace(/\$\{?\w+\}?/g, '.*')
}

function dashboardQueries (): Query[] {
  const dashboard = readDashboard()
  const queries: Query[] = []
  const walk = (panels: Panel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) queries.push({ where: `panel "${panel.title}"`, expr: asPromql(target.expr) })
      walk(panel.panels ?? [])
    }
  }
  walk(dashboard.panels)
  for (const variable of dashboard.templating.list) {
    if (variable.query === undefined || typeof variable.query === 'string') continue
    const labelValues = /^label_values\((.+),\s*\w+\)$/.exec((variable.query as { query: string }).query)
    if (labelValues === null) throw new Error(`variable ${variable.name}: not a label_values() query`)
    queries.push({ where: `variable ${variable.name}`, expr: labelValues[1] })
  }
  return queries
}

function ruleQueries (): Query[] {
  const rules = YAML.parse(fs.readFileSync(path.join(ROOT, 'ops', 'prometheus', 'vecwal.rules.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string, expr: string }> }> }
  return rules.groups.flatMap(group => group.rules.map(rule => ({ where: `alert ${rule.alert}`, expr: rule.expr })))
}

interface Generated { text: string, names: string[] }

// Names a metric could not have, chosen to look like what the reader must not take for one: function
// and aggregation names, keywords, and label names. Metric names are generated apart from them.
const LABELS = ['le', 'rate', 'sum', 'by', 'offset', 'instance', 'job', 'count', 'vecwal_last_seq_label']
const metric = fc.stringMatching(/^[a-z_:][a-z0-9_:]{0,15}$/).map(s => `m_${s}`)
const label = fc.constantFrom(...LABELS)
const labelValue = fc.constantFrom('x', 'rate(m_fake[5m])', 'sum by (le)', '$instance', 'a\\"b', 'offset 5m')
const duration = fc.constantFrom('30s', '5m', '1h', '1h30m', '2d')

const selector: fc.Arbitrary<Generated> = fc.tuple(metric, fc.array(fc.tuple(label, fc.constantFrom('=', '!=', '=~', '!~'), labelValue), { maxLength: 3 }), fc.boolean())
  .map(([name, matchers, byName]) => {
    const inside = matchers.map(([l, op, v]) => `${l}${op}"${v}"`)
    return byName
      ? { text: `{__name__="${name}"${inside.map(m => `, ${m}`).join('')}}`, names: [name] }
      : { text: matchers.length === 0 ? name : `${name}{${inside.join(', ')}}`, names: [name] }
  })

const { expr } = fc.letrec<{ expr: Generated }>(tie => ({
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    selector,
    fc.tuple(fc.constantFrom('rate', 'increase', 'deriv', 'max_over_time', 'predict_linear'), selector, duration, fc.option(duration, { nil: undefined }))
      .map(([fn, s, d, offset]) => ({
        text: fn === 'predict_linear' ? `${fn}(${s.text}[${d}], 3600)` : `${fn}(${s.text}[${d}]${offset === undefined ? '' : ` offset ${offset}`})`,
        names: s.names
      })),
    fc.tuple(fc.constantFrom('sum', 'max', 'count', 'avg'), fc.constantFrom('by', 'without'), fc.array(label, { minLength: 1, maxLength: 3 }), tie('expr') as fc.Arbitrary<Generated>)
      .map(([agg, mod, labels, inner]) => ({ text: `${agg} ${mod} (${labels.join(', ')}) (${inner.text})`, names: inner.names })),
    fc.tuple(fc.constantFrom('0.5', '0.99'), tie('expr') as fc.Arbitrary<Generated>)
      .map(([quantile, inner]) => ({ text: `histogram_quantile(${quantile}, ${inner.text})`, names: inner.names })),
    fc.tuple(tie('expr') as fc.Arbitrary<Generated>, fc.constantFrom('+', '/', 'and', 'or', 'unless', '> bool', '== bool'), fc.constantFrom('', ' on (instance)', ' ignoring (le)'), tie('expr') as fc.Arbitrary<Generated>)
      .map(([left, op, matching, right]) => ({ text: `(${left.text}) ${op}${matching} (${right.text})`, names: [...left.names, ...right.names] })),
    fc.tuple(tie('expr') as fc.Arbitrary<Generated>, fc.constantFrom('> 0.8', '* 100', '== 1'))
      .map(([inner, tail]) => ({ text: `${inner.text} ${tail}`, names: inner.names })),
    fc.constantFrom<Generated>({ text: 'time()', names: [] }, { text: 'vector(1)', names: [] }, { text: '4 * 3600', names: [] })
  )
}))

t.test('the PromQL reader finds exactly the metric names of generated expressions', async t => {
  fc.assert(fc.property(expr, generated => {
    t.same(metricNames(generated.text), generated.names, generated.text)
  }), { numRuns: 300 })
  t.throws(() => metricNames('rate(vecwal_last_seq[5m)'), /parse/i, 'an expression that does not parse is refused')
  t.throws(() => metricNames('{__name__=~"vecwal_.*"}'), /names no one metric/, 'a name matched by a regex is refused')
})

t.test('every query of the dashboard and of the alert rules names metrics the service exposes', async t => {
  const service = await startTestService(t)
  // A write and a checkpoint so that every family has had its samples (labelled ones appear then).
  t.equal((await service.call('POST', '/v1/entries', { op: 'insert', id: 'a', vector: [1] })).status, 201)
  const exposed = exposedNames(await scrape(service))
  const queries = [...dashboardQueries(), ...ruleQueries()]
  t.ok(queries.length > 30, `${queries.length} queries`)
  for (const { where, expr } of queries) {
    const names = metricNames(expr)
    t.ok(names.length > 0, `${where}: ${expr} names a metric`)
    const unknown = names.filter(name => !exposed.has(name))
    t.same(unknown, [], `${where}: ${expr}`)
  }
})

t.test('the dashboard is laid out as Grafana reads it: unique ids, panels inside 24 columns, one data source variable', async t => {
  const dashboard = readDashboard()
  const ids = dashboard.panels.map(p => p.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  for (const panel of dashboard.panels) {
    t.ok(panel.gridPos.x >= 0 && panel.gridPos.w > 0 && panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title} fits in 24 columns`)
    const refIds = (panel.targets ?? []).map(target => target.refId)
    t.equal(new Set(refIds).size, refIds.length, `${panel.title}: its queries' refIds are unique`)
    for (const target of panel.targets ?? []) t.equal(target.datasource?.uid, '${datasource}', `${panel.title}: queries the chosen data source`)
  }
  t.same(dashboard.templating.list.filter(v => v.type === 'datasource').map(v => v.name), ['datasource'])
})

t.test('the dashboard shows every vecwal metric the service exposes', async t => {
  const service = await startTestService(t)
  const families = [...(await scrape(service)).types.keys()].filter(name => name.startsWith('vecwal_'))
  const shown = new Set(dashboardQueries().flatMap(q => metricNames(q.expr)).map(name => name.replace(/_(bucket|sum|count)$/, '')))
  t.same(families.filter(name => !shown.has(name)), [], 'no vecwal_ family is left off')
})
