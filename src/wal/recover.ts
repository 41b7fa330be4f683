// What opening a log directory decides: which segments form the log, where a torn tail is cut,
// and which damage refuses to open (or, with the repair option, is set aside).
//
// A torn tail is damage in the newest segment with no whole record after it: a crash mid-write
// leaves a partial, zeroed or garbled end, never a whole record behind the tear. Damage anywhere
// else, a record out of seq order, or a whole record found after the damage is corruption.
import path from 'node:path'
import { CorruptLogError } from './errors.js'
import type { FileIO } from './file-io.js'
import { parseSegmentFileName, SEGMENT_HEADER_BYTES } from './format.js'
import type { WalLogger } from './logger.js'
import { cutSegmentAt, setSegmentAside } from './repair.js'
import { findWholeRecordAfter, scanSegment } from './segment-scan.js'

export interface SegmentInfo {
  name: string
  baseSeq: number
  /** baseSeq - 1 while the segment holds no record. */
  lastSeq: number
  /** Durable bytes, header included. */
  bytes: number
}

export interface Recovery {
  segments: SegmentInfo[]
  checkpoint: number
  /** The seq the next record gets. */
  nextSeq: number
}

export interface RecoverOptions {
  /** Open past corruption: keep the valid prefix and set everything after the damage aside. */
  repair: boolean
  logger: WalLogger
}

interface Damage { offset: number, reason: string }

async function listSegments (io: FileIO, dir: string): Promise<Array<{ name: string, baseSeq: number }>> {
  const found: Array<{ name: string, baseSeq: number }> = []
  for (const name of await io.readdir(dir)) {
    const baseSeq = parseSegmentFileName(name)
    if (baseSeq !== undefined) found.push({ name, baseSeq })
  }
  return found.sort((a, b) => a.baseSeq - b.baseSeq)
}

export async function recoverDirectory (io: FileIO, dir: string, options: RecoverOptions): Promise<Recovery> {
  const { logger } = options
  const files = await listSegments(io, dir)
  const segments: SegmentInfo[] = []
  let checkpoint = 0
  let nextSeq = files[0]?.baseSeq ?? 1

  for (let i = 0; i < files.length; i++) {
    const { name, baseSeq } = files[i]
    const isLast = i === files.length - 1
    const fd = await io.openRead(path.join(dir, name))
    let damage: Damage | undefined
    let kept: SegmentInfo | undefined
    try {
      const scan = await scanSegment(io, fd)
      const previous = segments.at(-1)
      if (scan.kind === 'bad-header') {
        if (isLast && scan.size <= SEGMENT_HEADER_BYTES) {
          // A crash while the newest segment was being created: no record can be in it.
          const aside = await setSegmentAside(io, dir, name)
          logger.warn({ segment: name, brokenFile: aside, reason: scan.reason }, 'set aside a segment whose creation was torn')
          break
        }
        damage = { offset: 0, reason: scan.reason }
      } else if (scan.baseSeq !== baseSeq) {
        damage = { offset: 0, reason: `header base seq ${scan.baseSeq} does not match the file name` }
      } else if (previous !== undefined && scan.baseSeq !== previous.lastSeq + 1) {
        damage = { offset: 0, reason: `base seq ${scan.baseSeq} does not follow seq ${previous.lastSeq} of ${previous.name}` }
      } else {
        kept = { name, baseSeq, lastSeq: scan.lastSeq, bytes: scan.validEnd }
        checkpoint = Math.max(checkpoint, scan.checkpoint)
        if (scan.damage !== undefined) {
          damage = scan.damage
          if (isLast && !scan.damage.certain) {
            const whole = await findWholeRecordAfter(io, fd, scan.damage.offset + 1, scan.size, scan.lastSeq)
            if (whole === undefined) {
              const brokenFile = await cutSegmentAt(io, dir, name, scan.damage.offset)
              logger.warn({ segment: name, offset: scan.damage.offset, cutBytes: scan.size - scan.damage.offset, brokenFile, reason: scan.damage.reason }, 'cut a torn tail')
              damage = undefined
            } else {
              damage = { offset: scan.damage.offset, reason: `${scan.damage.reason}, and a whole record follows at byte ${whole}` }
            }
          }
        }
      }
    } finally {
      await io.close(fd)
    }

    if (damage === undefined) {
      if (kept !== undefined) segments.push(kept)
      nextSeq = (kept?.lastSeq ?? nextSeq - 1) + 1
      continue
    }
    if (!options.repair) throw new CorruptLogError(name, damage.offset, damage.reason)
    await repairFrom(io, dir, files.slice(i).map(f => f.name), damage, kept, logger)
    // A segment set aside whole leaves nextSeq after the last kept record, not at the segment's own
    // base seq: after a seq gap that base seq does not follow the log.
    if (kept !== undefined && damage.offset > SEGMENT_HEADER_BYTES) {
      segments.push({ ...kept, bytes: damage.offset })
      nextSeq = kept.lastSeq + 1
    }
    break
  }
  return { segments, checkpoint, nextSeq }
}

async function repairFrom (io: FileIO, dir: string, names: string[], damage: Damage, kept: SegmentInfo | undefined, logger: WalLogger): Promise<void> {
  const [damaged, ...later] = names
  if (kept !== undefined && damage.offset > SEGMENT_HEADER_BYTES) {
    const brokenFile = await cutSegmentAt(io, dir, damaged, damage.offset)
    logger.error({ segment: damaged, offset: damage.offset, brokenFile, reason: damage.reason }, 'repair: cut the log at corruption')
  } else {
    const brokenFile = await setSegmentAside(io, dir, damaged)
    logger.error({ segment: damaged, offset: damage.offset, brokenFile, reason: damage.reason }, 'repair: set a damaged segment aside')
  }
  for (const name of later) {
    const brokenFile = await setSegmentAside(io, dir, name)
    logger.error({ segment: name, brokenFile }, 'repair: set aside a segment after the corruption')
  }
}
