// GET /metrics read back: the Prometheus text format's TYPE lines and samples.
import type { TestService } from './http.js'

export interface Sample { name: string, labels: Record<string, string>, value: number }
export interface Scrape { text: string, types: Map<string, string>, samples: Sample[] }

/** Parses the Prometheus text format: TYPE lines and samples (labels without escaped quotes suffice here). */
export function parse (text: string): Scrape {
  const types = new Map<string, string>()
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type !== null) types.set(type[1], type[2])
    if (line === '' || line.startsWith('#')) continue
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (sample === null) throw new Error(`not a sample line: ${line}`)
    const labels = Object.fromEntries([...(sample[2] ?? '').matchAll(/([a-zA-Z_]\w*)="([^"]*)"/g)].map(m => [m[1], m[2]]))
    samples.push({ name: sample[1], labels, value: Number(sample[3]) })
  }
  return { text, types, samples }
}

export async function scrape (service: TestService): Promise<Scrape> {
  const response = await service.call('GET', '/metrics')
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`)
  return parse(await response.text())
}

/** Every metric name the scrape shows: the families' (TYPE lines) and the samples' (a histogram's _bucket, _sum, _count). */
export function exposedNames (s: Scrape): Set<string> {
  return new Set([...s.types.keys(), ...s.samples.map(x => x.name)])
}

/** The sample's value; 0 when no sample has this name and these labels (a labelled series not yet seen). */
export function value (s: Scrape, name: string, labels: Record<string, string> = {}): number {
  const found = s.samples.find(x => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))
  return found?.value ?? 0
}
