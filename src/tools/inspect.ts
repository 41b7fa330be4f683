// What the offline tools know of a data directory: the open plan (what `serve` would keep, cut or
// refuse) and every kept record read back through the log reader, as the server reads it. Reads
// only, takes no lock: it may run beside a live server.
import fs from 'node:fs'
import { CorruptLogError } from '../errors.js'
import { nodeFileIO } from '../wal/file-io.js'
import { RecordType, recordTypeName, type RecordTypeName } from '../wal/format.js'
import { readFrames, type LocatedFrame } from '../wal/log-reader.js'
import { planOpen, type OpenPlan, type OpenStep, type SegmentInfo } from '../wal/open-plan.js'
import { decodeBody } from '../records/record-object.js'
import { checkRecordBody } from '../records/record-shape.js'

export interface SegmentReport extends SegmentInfo {
  records: number
}

export interface Inspection {
  dir: string
  plan: OpenPlan
  segments: SegmentReport[]
  lastSeq: number
  recordsByType: Record<RecordTypeName, number>
  /** Checkpoint records: the seq each was written at, the seq it marks, and its consumer (none: `default`). */
  checkpoints: Array<{ seq: number, checkpoint: number, consumer?: string }>
  /** Damage found reading the kept records (a body that does not match its type), which opening does not check. */
  readDamage?: { file: string, offset: number, reason: string }
  /** `.broken` files already in the directory, set aside earlier. */
  brokenFiles: string[]
}

/** The frames of the kept log in [from, to] (default: its oldest record to its newest). */
export function keptFrames (dir: string, segments: readonly SegmentInfo[], includeCheckpoints: boolean, from?: number, to?: number): AsyncGenerator<LocatedFrame> {
  const oldest = segments[0]?.baseSeq ?? 1
  const newest = segments.at(-1)?.lastSeq ?? 0
  return readFrames(nodeFileIO, dir, segments, {
    from: Math.max(from ?? oldest, oldest),
    to: Math.min(to ?? newest, newest),
    limit: Number.POSITIVE_INFINITY,
    includeCheckpoints,
    // It reads from the oldest record held on: what came before is never asked for.
    entriesGoneThrough: () => oldest - 1
  })
}

export async function inspectDirectory (dir: string): Promise<Inspection> {
  if (!fs.statSync(dir).isDirectory()) throw new Error(`${dir} is not a directory`)
  const plan = await planOpen(nodeFileIO, dir)
  const segments = plan.segments.map(s => ({ ...s, records: 0 }))
  const bySegment = new Map(segments.map(s => [s.name, s]))
  const recordsByType = { insert: 0, update: 0, delete: 0, batch: 0, checkpoint: 0, consumer: 0 }
  const checkpoints: Inspection['checkpoints'] = []
  let readDamage: Inspection['readDamage']
  try {
    for await (const { frame, segment, offset } of keptFrames(dir, plan.segments, true)) {
      if (checkRecordBody(frame) === undefined) throw new CorruptLogError(segment, offset, 'record body does not match its type')
      const name = recordTypeName(frame.type)
      if (name !== undefined) recordsByType[name]++
      const report = bySegment.get(segment)
      if (report !== undefined) report.records++
      if (frame.type === RecordType.checkpoint) {
        const body = decodeBody(frame)
        if (body?.op === 'checkpoint') checkpoints.push({ seq: frame.seq, checkpoint: body.checkpoint, ...(body.consumer === undefined ? {} : { consumer: body.consumer }) })
      }
    }
  } catch (err) {
    if (!(err instanceof CorruptLogError)) throw err
    readDamage = { file: err.file, offset: err.offset, reason: err.reason }
  }
  return {
    dir,
    plan,
    segments,
    lastSeq: plan.nextSeq - 1,
    recordsByType,
    checkpoints,
    ...(readDamage === undefined ? {} : { readDamage }),
    brokenFiles: fs.readdirSync(dir).filter(name => name.includes('.broken')).sort()
  }
}

/** Whether `serve` would open the directory as it is, changing nothing, and every record reads back. */
export function isWhole (inspection: Inspection): boolean {
  return inspection.plan.steps.length === 0 && inspection.readDamage === undefined
}

/** One line saying what a step of opening does, with its file and offset. */
export function describeStep (step: OpenStep): string {
  switch (step.kind) {
    case 'set-aside-torn-creation':
      return `set aside ${step.segment} (${step.size} bytes, its creation torn: ${step.reason}) as ${step.segment}.broken`
    case 'cut-torn-tail':
      return `cut the torn tail of ${step.segment} at byte ${step.offset} (${step.size - step.offset} bytes: ${step.reason}); ` +
        (step.zeros ? 'all zeros, no copy kept' : `copied to ${step.segment}.at-${step.offset}.broken`)
    case 'repair-cut':
      return `cut ${step.segment} at byte ${step.offset} (${step.size - step.offset} bytes: ${step.reason}); copied to ${step.segment}.at-${step.offset}.broken`
    case 'repair-set-aside':
      return `set aside ${step.segment} (${step.size} bytes: ${step.reason}) as ${step.segment}.broken`
  }
}
