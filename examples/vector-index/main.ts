#!/usr/bin/env node
// A vector index kept by the log: follows vecwal, applies every record to a usearch index in seq
// order, saves the index now and then, and checkpoints the log only up to what a save holds. On
// restart it loads the save and resumes after the SAVED seq, never the service's checkpoint (which
// may lag the save, when the program died between saving and checkpointing): so no record is
// applied twice, and none is skipped.
import { parseArgs } from 'node:util'
import { describeError, LogGoneError, LogSource } from './log-source.js'
import { startQueryServer, type ConsumerProgress } from './query-server.js'
import { VectorIndex } from './vector-index.js'

const usage = `usage: node dist/examples/vector-index/main.js --dir DIR --dimensions N [options]
  --log URL              the vecwal service (default http://127.0.0.1:8080)
  --dir DIR              where the index is saved (created if need be)
  --dimensions N         length of every vector
  --port P               the query routes' port on 127.0.0.1 (default 8090; 0: any free port)
  --save-every-ms MS     save at most this long after a record was applied (default 5000)
  --save-every-records R save once this many seqs were applied since the last save (default 50000)
  --connectivity C       HNSW graph degree (default 16)
  --expansion-add E      candidates kept while inserting (default 64)
  --expansion-search E   candidates kept while searching (default 512)
  --consumer NAME        the consumer this index is in the log (default vector-index)
  --poll-ms MS           wait before connecting again when the service was away (default 100)`

function fail (message: string): never {
  process.stderr.write(`${message}\n${usage}\n`)
  process.exit(2)
}

const { values } = parseArgs({
  options: {
    log: { type: 'string', default: 'http://127.0.0.1:8080' },
    dir: { type: 'string' },
    dimensions: { type: 'string' },
    port: { type: 'string', default: '8090' },
    'save-every-ms': { type: 'string', default: '5000' },
    'save-every-records': { type: 'string', default: '50000' },
    connectivity: { type: 'string', default: '16' },
    'expansion-add': { type: 'string', default: '64' },
    'expansion-search': { type: 'string', default: '512' },
    consumer: { type: 'string', default: 'vector-index' },
    'poll-ms': { type: 'string', default: '100' },
    help: { type: 'boolean', default: false }
  }
})
if (values.help === true) {
  process.stdout.write(`${usage}\n`)
  process.exit(0)
}

function integer (name: keyof typeof values, min: number): number {
  const value = Number(values[name])
  if (values[name] === undefined || !Number.isSafeInteger(value) || value < min) fail(`--${name} must be an integer of at least ${min}`)
  return value
}

const dir = values.dir ?? fail('--dir is required')
const settings = {
  dimensions: integer('dimensions', 1),
  connectivity: integer('connectivity', 2),
  expansionAdd: integer('expansion-add', 1),
  expansionSearch: integer('expansion-search', 1)
}
const saveEveryMs = integer('save-every-ms', 1)
const saveEveryRecords = integer('save-every-records', 1)

function report (event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`)
}

const opening = Date.now()
// Loading a save adds every node of the graph again (see vector-index.ts): it takes a while, told as openMs.
const index = VectorIndex.open(dir, settings)
const openMs = Date.now() - opening
const source = new LogSource({
  url: values.log as string,
  consumer: values.consumer as string,
  pollMs: integer('poll-ms', 1),
  onError: message => { report({ event: 'retrying', message }) }
})
const progress: ConsumerProgress = { checkpointedSeq: 0 }
const { server, url } = await startQueryServer(index, progress, integer('port', 0))
report({ event: 'listening', url, appliedSeq: index.appliedSeq, size: index.size, openMs })

/**
 * Posts the saved seq as the checkpoint, one post at a time: while one is under way, a save or tick
 * that wants another leaves it to the next tick, which posts the newest saved seq (and tries again
 * after a failure), so a slow service never gathers a queue of posts.
 */
let checkpointing: Promise<void> | undefined
function checkpointSaved (): void {
  const seq = index.savedSeq
  if (checkpointing !== undefined || seq <= progress.checkpointedSeq) return
  checkpointing = source.checkpoint(seq).then(
    () => { progress.checkpointedSeq = seq },
    (err: unknown) => { report({ event: 'checkpoint failed', seq, message: describeError(err) }) }
  ).finally(() => { checkpointing = undefined })
}

let lastSave = Date.now()
function save (): void {
  const started = Date.now()
  index.save()
  lastSave = Date.now()
  report({ event: 'saved', seq: index.savedSeq, size: index.size, ms: lastSave - started })
  // Only now: the checkpoint lets the service delete what it covers, so it must never pass a save.
  checkpointSaved()
}

function saveIfDue (): void {
  const unsaved = index.appliedSeq - index.savedSeq
  if (unsaved > 0 && (unsaved >= saveEveryRecords || Date.now() - lastSave >= saveEveryMs)) save()
  else if (index.savedSeq > progress.checkpointedSeq) checkpointSaved()
}

// Saves while the log is quiet, too (the loop below waits inside the source then).
const tick = setInterval(saveIfDue, Math.min(saveEveryMs, 1000))

const stopping = new AbortController()
function stop (signal: string): void {
  if (stopping.signal.aborted) return
  report({ event: 'stopping', signal })
  stopping.abort()
}
process.on('SIGTERM', () => { stop('SIGTERM') })
process.on('SIGINT', () => { stop('SIGINT') })

try {
  for await (const page of source.pages(index.appliedSeq, stopping.signal)) {
    for (const record of page) index.apply(record)
    saveIfDue()
  }
} catch (err) {
  if (!(err instanceof LogGoneError)) throw err
  // What was applied is still saved; the operator decides (rebuild the index from an empty --dir).
  report({ event: 'log gone', message: err.message })
  process.exitCode = 1
}
clearInterval(tick)
await checkpointing
save()
await checkpointing
server.close()
