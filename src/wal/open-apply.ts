// Carries out an open plan (open-plan.ts): sets a torn creation aside, cuts a torn tail, and with
// the repair option sets corruption and everything after it aside. Without the option, corruption
// refuses to open and nothing on disk changes.
import { CorruptLogError, OpenStepError } from '../errors.js'
import type { FileIO } from './file-io.js'
import type { WalLogger } from './logger.js'
import type { OpenPlan, OpenStep } from './open-plan.js'
import { copyTail, setSegmentAside, truncateSegment } from './repair.js'

export interface ApplyOptions {
  /** Open past corruption: keep the valid prefix and set everything after the damage aside. */
  repair: boolean
  logger: WalLogger
}

/** The errors that say the file system has no room left. */
function isNoSpace (err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return code === 'ENOSPC' || code === 'EDQUOT'
}

export async function applyOpenPlan (io: FileIO, dir: string, plan: OpenPlan, options: ApplyOptions): Promise<void> {
  const { corruption } = plan
  if (corruption !== undefined && !options.repair) throw new CorruptLogError(corruption.file, corruption.offset, corruption.reason)
  for (const openStep of plan.steps) await applyStep(io, dir, openStep, options.logger)
}

async function applyStep (io: FileIO, dir: string, openStep: OpenStep, logger: WalLogger): Promise<void> {
  switch (openStep.kind) {
    case 'set-aside-torn-creation': {
      const brokenFile = await setSegmentAside(io, dir, openStep.segment)
      logger.warn({ segment: openStep.segment, brokenFile, reason: openStep.reason }, 'set aside a segment whose creation was torn')
      return
    }
    case 'cut-torn-tail': {
      const { segment, offset, size, reason, tornWrite } = openStep
      const fields = { segment, offset, cutBytes: size - offset, reason, ...(tornWrite === undefined ? {} : { tornWrite }) }
      if (openStep.zeros) {
        await truncateSegment(io, dir, segment, offset)
        logger.warn(fields, 'cut a torn tail of zeros (no copy kept: it holds nothing)')
        return
      }
      let brokenFile: string
      try {
        brokenFile = await copyTail(io, dir, segment, offset)
      } catch (err) {
        // A torn tail was never acknowledged: losing its copy loses nothing promised, while
        // refusing to open would keep the service down until someone frees space by hand. A torn
        // last write is cut with whole records after the damage: those are kept in the copy or
        // not cut at all.
        if (!(err instanceof OpenStepError) || !isNoSpace(err.cause) || tornWrite !== undefined) throw err
        await truncateSegment(io, dir, segment, offset)
        logger.error({ ...fields, err: err.message }, 'the disk is full: cut a torn tail WITHOUT keeping a copy (its bytes were never acknowledged)')
        return
      }
      await truncateSegment(io, dir, segment, offset)
      logger.warn({ ...fields, brokenFile }, 'cut a torn tail')
      return
    }
    case 'repair-cut': {
      const { segment, offset, reason } = openStep
      const brokenFile = await copyTail(io, dir, segment, offset)
      await truncateSegment(io, dir, segment, offset)
      logger.error({ segment, offset, brokenFile, reason }, 'repair: cut the log at corruption')
      return
    }
    case 'repair-set-aside': {
      const brokenFile = await setSegmentAside(io, dir, openStep.segment)
      logger.error({ segment: openStep.segment, brokenFile, reason: openStep.reason }, 'repair: set a segment aside')
    }
  }
}
