// The bench's command line: how long each load runs, how big the logs get, which scenarios run,
// and whether the service children write CPU profiles.
import { parseArgs } from 'node:util'
import { WAL_DEFAULTS } from '../src/wal/log.js'

const SCENARIO_GROUPS = ['P1', 'P2', 'P3', 'P4', 'P5', 'PJ'] as const
export type ScenarioGroup = (typeof SCENARIO_GROUPS)[number]

export interface BenchOptions {
  quick: boolean
  /** Seconds of measured load per scenario, after the warm-up. */
  seconds: number
  /** Seconds of unmeasured load before each measured one, so V8 has optimized the hot paths. */
  warmupSeconds: number
  /** Loads that are compared run in this many interleaved rounds. */
  rounds: number
  /** Seconds of write+fdatasync for the disk's own bandwidth. */
  diskSeconds: number
  /** The two log sizes P3 streams, in entries. */
  recoveryEntries: [number, number]
  /** The size of P4's log, in bytes. */
  openLogBytes: number
  /** P4 starts the service this many times on the same log and keeps the median. */
  openRepeats: number
  /** P4k's logs: this many single-entry records, each with an idempotency key, and the same without. */
  openKeyedRecords: number
  /** P5: after the load, how long the followers have to deliver every probe; past it a probe counts as not seen. */
  followDeliveryWaitSeconds: number
  groups: ScenarioGroup[]
  /** Directory for the service children's .cpuprofile files; none when undefined. */
  profileDir?: string
}

export const USAGE = `node dist/bench/run.js [options]

  --duration S   seconds of measured load per scenario (default 5; wrk runs whole seconds,
                 so each round lasts S/N rounded, at least 1)
  --warmup S     seconds of warm-up load before each (default 2)
  --rounds N     compared loads run interleaved in N rounds of S/N seconds (default 5)
  --only LIST    scenario groups to run, e.g. P1,P2 (default P1,P2,P3,P4,P5,PJ; PJ starts a 3-node
                 nats-server cluster on 127.0.0.1)
  --profile DIR  start each service child with --cpu-prof, writing <scenario>.cpuprofile into DIR
  --quick        one-second loads, no warm-up, tiny logs: checks that the bench runs, measures nothing
  --help         this text
`

export function parseOptions (argv: string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      only: { type: 'string' },
      profile: { type: 'string' },
      quick: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false }
    },
    strict: true
  })
  if (values.help === true) return 'help'
  const quick = values.quick === true
  const seconds = positive('--duration', values.duration) ?? (quick ? 1 : 5)
  const warmupSeconds = positive('--warmup', values.warmup) ?? (quick ? 0 : 2)
  const rounds = values.rounds === undefined ? (quick ? 1 : 5) : Number(values.rounds)
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds wants a whole number above 0, not ${values.rounds}`)
  return {
    quick,
    seconds,
    warmupSeconds,
    rounds,
    diskSeconds: quick ? 0.1 : 2,
    recoveryEntries: quick ? [2_000, 8_000] : [250_000, 1_000_000],
    openLogBytes: quick ? 8 * 1024 * 1024 : 1024 * 1024 * 1024,
    openRepeats: quick ? 1 : 3,
    openKeyedRecords: quick ? 5_000 : WAL_DEFAULTS.idempotency.maxKeys,
    // Quick mode's wait is shorter so that a probe never delivered cannot take the smoke test past its time.
    followDeliveryWaitSeconds: quick ? 2 : 30,
    groups: parseGroups(values.only),
    profileDir: values.profile
  }
}

function positive (flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const value = Number(text)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${flag} wants a number of seconds above 0, not ${text}`)
  return value
}

function parseGroups (text: string | undefined): ScenarioGroup[] {
  if (text === undefined) return [...SCENARIO_GROUPS]
  const groups = text.split(',').map(name => name.trim().toUpperCase())
  for (const name of groups) {
    if (!(SCENARIO_GROUPS as readonly string[]).includes(name)) {
      throw new Error(`--only: unknown scenario group ${name} (known: ${SCENARIO_GROUPS.join(', ')})`)
    }
  }
  return SCENARIO_GROUPS.filter(group => groups.includes(group))
}
