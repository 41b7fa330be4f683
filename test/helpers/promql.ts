// The metric names a PromQL expression selects, read with Prometheus's own PromQL grammar (lezer),
// so that function names, label names and values, durations and keywords are never taken for one.
import { parser } from '@prometheus-io/lezer-promql'

const promql = parser.configure({ top: 'PromQL', strict: true })

/**
 * The string a PromQL string literal stands for: backticks are raw; double and single quotes take
 * escapes as JSON does (a metric name holds no quote, so the quote escapes need no more care).
 */
function unquote (literal: string): string {
  const body = literal.slice(1, -1)
  if (literal.startsWith('`')) return body
  return JSON.parse(`"${literal.startsWith("'") ? body.replace(/\\'/g, "'") : body}"`) as string
}

/**
 * Every metric name `expr` selects, in order of appearance, duplicates kept. Throws on an expression
 * that does not parse, and on a name matched by a regex or a negation, which names no metric.
 */
export function metricNames (expr: string): string[] {
  const tree = promql.parse(expr)
  const names: string[] = []
  const text = (from: number, to: number): string => expr.slice(from, to)
  tree.iterate({
    enter (ref) {
      if (ref.name === 'VectorSelector') {
        const identifier = ref.node.getChild('Identifier')
        if (identifier !== null) names.push(text(identifier.from, identifier.to))
      } else if (ref.name === 'LabelMatchers') {
        // {"name"} alone, and __name__ matchers, name the metric inside the braces.
        for (const quoted of ref.node.getChildren('QuotedLabelName')) names.push(unquote(text(quoted.from, quoted.to)))
        for (const matcher of [...ref.node.getChildren('UnquotedLabelMatcher'), ...ref.node.getChildren('QuotedLabelMatcher')]) {
          const label = matcher.firstChild
          const op = matcher.getChild('MatchOp')
          const value = matcher.getChild('StringLiteral')
          if (label === null || op === null || value === null) continue
          const labelName = label.name === 'QuotedLabelName' ? unquote(text(label.from, label.to)) : text(label.from, label.to)
          if (labelName !== '__name__') continue
          if (text(op.from, op.to) !== '=') throw new Error(`${expr}: __name__ matched by ${text(op.from, op.to)} names no one metric`)
          names.push(unquote(text(value.from, value.to)))
        }
      }
    }
  })
  return names
}
