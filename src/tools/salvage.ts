// `vecwal dump --force`: reads past damage. Every segment file is read in name order with the
// engine's frame reader; at damage a marker goes out in the stream's place, then reading resumes
// at the next whole, checksummed record the opener's own search finds (segment-scan.ts), or at the
// next file. Records print with the recovery stream's encoders, so what is whole prints as served.
import path from 'node:path'
import { Packr } from 'msgpackr'
import { nodeFileIO } from '../wal/file-io.js'
import { decodeSegmentHeader, isBookkeeping, SEGMENT_HEADER_BYTES, type RecordFrame } from '../wal/format.js'
import { FrameReader } from '../wal/frame-reader.js'
import { listSegments } from '../wal/open-plan.js'
import { recordLineBytes } from '../records/record-json.js'
import { recordMsgpackBytes } from '../records/record-msgpack.js'
import { findWholeRecordAfter } from '../wal/segment-scan.js'

export interface SalvageOptions {
  format: 'ndjson' | 'msgpack'
  from: number
  to: number
  includeCheckpoints: boolean
}

export interface DamageMark { file: string, offset: number, reason: string }

const packr = new Packr({ useRecords: false })

function markBytes (format: SalvageOptions['format'], damage: DamageMark): Buffer {
  return format === 'ndjson' ? Buffer.from(`${JSON.stringify({ damage })}\n`) : packr.pack({ damage })
}

/**
 * Writes every record in [from, to] that can be read, and a `{"damage":{file,offset,reason}}`
 * marker (a msgpack map of the same in that form) at each damage. Returns the damage found.
 */
export async function salvage (dir: string, options: SalvageOptions, write: (chunk: Buffer) => Promise<void>): Promise<DamageMark[]> {
  const io = nodeFileIO
  const marks: DamageMark[] = []
  const mark = async (damage: DamageMark): Promise<void> => {
    marks.push(damage)
    await write(markBytes(options.format, damage))
  }
  const encode = options.format === 'ndjson' ? recordLineBytes : recordMsgpackBytes
  let lastSeq = 0
  for (const { name } of await listSegments(io, dir)) {
    const fd = await io.openRead(path.join(dir, name))
    try {
      const size = await io.size(fd)
      const headerBytes = Buffer.alloc(Math.min(size, SEGMENT_HEADER_BYTES))
      await io.read(fd, headerBytes, 0, headerBytes.length, 0)
      const header = decodeSegmentHeader(headerBytes)
      let resumeAt: number | undefined = SEGMENT_HEADER_BYTES
      if (!header.ok) {
        await mark({ file: name, offset: 0, reason: header.reason })
        resumeAt = await findWholeRecordAfter(io, fd, 0, size, lastSeq)
      } else {
        lastSeq = Math.max(lastSeq, header.baseSeq - 1)
      }
      // After damage the records lost in it leave a gap in the seqs: that gap is the damage already marked.
      let afterDamage = !header.ok
      while (resumeAt !== undefined) {
        const frames = new FrameReader(io, fd, resumeAt, size)
        resumeAt = undefined
        for (;;) {
          const step = frames.buffered() ?? await frames.next()
          if (step.kind === 'end') break
          if (step.kind === 'record') {
            const { frame } = step
            if (frame.seq !== lastSeq + 1 && !afterDamage) await mark({ file: name, offset: step.offset, reason: `seq ${frame.seq} where ${lastSeq + 1} was expected` })
            const bytes = encode(frame)
            if (bytes === undefined) await mark({ file: name, offset: step.offset, reason: 'record body does not match its type' })
            else if (wanted(frame, options)) await write(Buffer.from(bytes))
            lastSeq = frame.seq
            afterDamage = false
            continue
          }
          await mark({ file: name, offset: step.offset, reason: step.kind === 'short' ? 'record cut short by the end of the file' : step.reason })
          resumeAt = await findWholeRecordAfter(io, fd, step.offset + 1, size, lastSeq)
          afterDamage = true
          break
        }
      }
    } finally {
      await io.close(fd)
    }
  }
  return marks
}

function wanted (frame: RecordFrame, options: SalvageOptions): boolean {
  if (isBookkeeping(frame.type) && !options.includeCheckpoints) return false
  return frame.seq >= options.from && frame.seq <= options.to
}
