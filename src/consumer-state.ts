// Named consumers' state, whatever the backend: how checkpoint records (type 5) and consumer
// records (type 6) fold into each consumer's state, the lowest checkpoint retention keeps above,
// and the status a consumer's state gives. The segment engine folds the records of its segments;
// the JetStream backend folds the last messages of its consumers' subjects.
import type { ConsumerStatus } from './log.js'
import { RecordType, type RecordBytes } from './records/record-bytes.js'
import { checkRecordBody, type ConsumerEvent } from './records/record-shape.js'
import { InvalidConsumerNameError } from './errors.js'

/** The consumer a checkpoint record without a `consumer` key moves: POST /v1/checkpoints, Log.checkpoint. */
export const DEFAULT_CONSUMER = 'default'

/** Consumers a log holds at most, `default` included: each is state in memory and a record carried forward. */
export const MAX_CONSUMERS = 64

export interface ConsumerState {
  /** The checkpoint it was created at. */
  start: number
  checkpoint: number
  /** When it last checkpointed (ms since the epoch), 0 if never. */
  checkpointedAt: number
  /** The seq of the newest record stating this state: retention must carry it forward before deleting it. */
  stateSeq: number
}

/** What one checkpoint or consumer record says of one consumer. */
export interface ConsumerChange {
  seq: number
  name: string
  /** `checkpoint` for a checkpoint record. */
  event: ConsumerEvent | 'checkpoint'
  start: number
  checkpoint: number
  checkpointedAt: number
}

/** The change a checkpoint or consumer record makes, undefined for any other record (or a body that does not match its type). */
export function consumerChange (frame: RecordBytes): ConsumerChange | undefined {
  if (frame.type !== RecordType.checkpoint && frame.type !== RecordType.consumer) return undefined
  const shape = checkRecordBody(frame)
  if (shape === undefined) return undefined
  const name = shape.consumerItem === -1 ? DEFAULT_CONSUMER : frame.source.toString('utf8', shape.consumerStart, shape.consumerEnd)
  if (shape.op === 'checkpoint') {
    return { seq: frame.seq, name, event: 'checkpoint', start: 0, checkpoint: shape.checkpoint, checkpointedAt: frame.timestamp }
  }
  return { seq: frame.seq, name, event: shape.event, start: shape.startSeq, checkpoint: shape.checkpoint, checkpointedAt: shape.checkpointedAt }
}

/**
 * Applies one change, in seq order. A checkpoint of a consumer not known (the consumer `default`
 * in logs of version 1 and 2, where no record creates it) creates it at 0.
 */
export function applyConsumerChange (states: Map<string, ConsumerState>, change: ConsumerChange): void {
  if (change.event === 'delete') {
    states.delete(change.name)
    return
  }
  if (change.event === 'checkpoint') {
    const known = states.get(change.name)
    states.set(change.name, { start: known?.start ?? 0, checkpoint: change.checkpoint, checkpointedAt: change.checkpointedAt, stateSeq: change.seq })
    return
  }
  states.set(change.name, { start: change.start, checkpoint: change.checkpoint, checkpointedAt: change.checkpointedAt, stateSeq: change.seq })
}

/** The lowest checkpoint of all consumers: retention keeps every record above it. Undefined when there is no consumer. */
export function lowestCheckpoint (states: ReadonlyMap<string, ConsumerState>): number | undefined {
  let lowest: number | undefined
  for (const state of states.values()) lowest = Math.min(lowest ?? state.checkpoint, state.checkpoint)
  return lowest
}

/** What a consumer's state says of it, whatever the log's extent: the status less its lag. */
export type ConsumerSummary = Omit<ConsumerStatus, 'lagSeqs' | 'lagBytes'>

/**
 * Every consumer, by name, as its state says, in a log whose deleted records held entries up to
 * `entriesGoneThrough`: a consumer whose checkpoint lies below it has lost entries it had not read.
 */
export function summarize (states: ReadonlyMap<string, ConsumerState>, entriesGoneThrough: number): ConsumerSummary[] {
  return [...states].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([name, state]) => ({
    name,
    checkpoint: state.checkpoint,
    start: state.start,
    checkpointedAt: state.checkpointedAt === 0 ? null : new Date(state.checkpointedAt).toISOString(),
    passedByRetention: state.checkpoint < entriesGoneThrough
  }))
}

const NAME = /^[A-Za-z0-9._-]{1,64}$/

export function assertConsumerName (name: string): void {
  if (!NAME.test(name)) throw new InvalidConsumerNameError(name)
}

