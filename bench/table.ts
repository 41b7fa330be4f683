// The bench's output: one markdown table row per figure, and the number formats it uses.

export interface Row {
  scenario: string
  measured: string
  /** The reference measured in the same run, absolute. */
  reference: string
  /** The headline: measured against the reference. */
  ratio: string
  target: string
  /** Undefined when the target is only to report the figure. */
  met?: boolean
}

export function markdownTable (rows: readonly Row[]): string {
  const header = ['scenario', 'measured', 'reference (same run)', 'ratio', 'target', 'met']
  const lines = [header, header.map(() => '---')]
  for (const row of rows) {
    const met = row.met === undefined ? '—' : row.met ? 'yes' : '**no**'
    lines.push([row.scenario, row.measured, row.reference, row.ratio, row.target, met])
  }
  return lines.map(cells => `| ${cells.join(' | ')} |`).join('\n')
}

// A load too short to complete a request (quick mode) leaves figures that are not numbers.
const NOT_MEASURED = 'n/a'

export function times (value: number): string {
  if (!Number.isFinite(value)) return NOT_MEASURED
  return `${value.toFixed(value < 10 ? 2 : 1)}×`
}

export function count (value: number): string {
  return Math.round(value).toLocaleString('en-US')
}

export function ms (value: number): string {
  if (!Number.isFinite(value)) return NOT_MEASURED
  return `${value.toFixed(value < 10 ? 1 : 0)} ms`
}

export function seconds (value: number): string {
  return `${value.toFixed(2)} s`
}

const SIZE_UNITS = ['B', 'KiB', 'MiB', 'GiB']

export function size (bytes: number): string {
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < SIZE_UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${SIZE_UNITS[unit]}`
}

export function sizePerSecond (bytesPerSecond: number): string {
  return `${size(bytesPerSecond)}/s`
}
