// Shared helpers for the engine's tests: temporary directories, a FileIO that records and can fail
// what the engine asks of the file layer, and ways to look at the bytes on disk without the engine.
import fs from 'node:fs'
import path from 'node:path'
import { ownTempDir, removeTempDir } from '../../scripts/children.js'
import type { EntryInput } from '../../src/entry.js'
import { nodeFileIO, type FileIO } from '../../src/wal/file-io.js'
import { decodeSegmentHeader, parseSegmentFileName, readRecord, SEGMENT_HEADER_BYTES } from '../../src/wal/format.js'
import { WriteAheadLog, type WalOptions } from '../../src/wal/log.js'
import type { LogRecord } from '../../src/log.js'
import { decodeBody } from '../../src/records/record-object.js'

/** The little of tap's Test the helpers need, so that they take any test or subtest. */
export interface TeardownTarget {
  teardown: (fn: () => unknown) => void
}

/** A fresh directory under os.tmpdir() named `prefix` and random characters, removed when the test ends (or the test process, if it ends first). */
export function tempDir (t: TeardownTarget, prefix = 'vecwal-test-'): string {
  const dir = ownTempDir(prefix)
  t.teardown(() => { removeTempDir(dir) })
  return dir
}

/** Opens a log and closes it when the test ends, unless the test closed it already. */
export async function openLog (t: TeardownTarget, options: WalOptions): Promise<WriteAheadLog> {
  const log = await WriteAheadLog.open(options)
  t.teardown(async () => {
    await log.close().catch((err: { code?: string }) => { if (err.code !== 'WAL_CLOSED') throw err })
  })
  return log
}

/** Opens a log, appends `entries` one by one (one record each) and closes it again. */
export async function writeLog (options: WalOptions, entries: readonly EntryInput[]): Promise<void> {
  const log = await WriteAheadLog.open(options)
  for (const e of entries) await log.append(e)
  await log.close()
}

/** entry(from), entry(from + 1), ... entry(from + count - 1). */
export function entries (count: number, from = 0): EntryInput[] {
  return Array.from({ length: count }, (_, i) => entry(from + i))
}

/** A small, deterministic entry: inserts, updates and deletes in turn. */
export function entry (i: number): EntryInput {
  const id = `v${i}`
  if (i % 7 === 6) return { op: 'delete', id }
  const vector = Array.from({ length: 4 }, (_, d) => i + d / 8)
  const op = i % 3 === 2 ? 'update' : 'insert'
  return i % 2 === 0 ? { op, id, vector, metadata: { n: String(i) } } : { op, id, vector }
}

/** A record or an entry as plain data (vectors as number arrays), for comparing with t.same. */
export function plain (value: object): unknown {
  return JSON.parse(JSON.stringify(value, (_key, v: unknown) => v instanceof Float32Array ? Array.from(v) : v))
}

/** What a stored record should look like, without the seq and timestamp the writer gives it. */
export function bodyOf (record: LogRecord): unknown {
  const { seq: _seq, timestamp: _timestamp, ...body } = record
  return plain(body)
}

/** What an appended entry reads back as: its vector as 32-bit floats. */
export function storedForm (e: EntryInput): unknown {
  if (e.op === 'delete') return plain(e)
  return plain({ ...e, vector: Float32Array.from(e.vector) })
}

export async function collect<T> (records: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const record of records) out.push(record)
  return out
}

/** Every record of the log from the oldest retained one, checkpoint records included. */
export async function readEverything (log: WriteAheadLog): Promise<LogRecord[]> {
  const oldest = log.status().segments[0].firstSeq
  return await collect(log.read({ after: oldest - 1, includeCheckpoints: true }).records)
}

/** The segment files of a directory, in name order. */
export function segmentFiles (dir: string): string[] {
  return fs.readdirSync(dir).filter(name => parseSegmentFileName(name) !== undefined).sort()
}

export function brokenFiles (dir: string): string[] {
  return fs.readdirSync(dir).filter(name => name.endsWith('.broken')).sort()
}

export interface RawRecord { file: string, offset: number, seq: number, size: number, type: number, body: unknown }

/**
 * Parses a directory's segment files with nothing of the engine but the frame decoder, in file
 * order and byte order: what is really on disk. Throws at anything that is not a whole record.
 */
export function rawRecords (dir: string): RawRecord[] {
  const out: RawRecord[] = []
  for (const file of segmentFiles(dir)) {
    const buf = fs.readFileSync(path.join(dir, file))
    const header = decodeSegmentHeader(buf)
    if (!header.ok) throw new Error(`${file}: ${header.reason}`)
    let offset = SEGMENT_HEADER_BYTES
    while (offset < buf.length) {
      const result = readRecord(buf, offset)
      if (result.kind !== 'record') throw new Error(`${file} at ${offset}: ${result.kind}`)
      const { frame } = result
      out.push({ file, offset, seq: frame.seq, size: frame.size, type: frame.type, body: decodeBody(frame) })
      offset += frame.size
    }
  }
  return out
}

/** Copies the files of a directory (not recursing, LOCK aside) into a new temporary directory. */
export function copyDir (t: TeardownTarget, from: string): string {
  const to = tempDir(t)
  for (const name of fs.readdirSync(from)) {
    if (name !== 'LOCK') fs.copyFileSync(path.join(from, name), path.join(to, name))
  }
  return to
}

/** Flips one bit of a file in place. */
export function flipBit (file: string, offset: number, bit = 0): void {
  const fd = fs.openSync(file, 'r+')
  try {
    const byte = Buffer.alloc(1)
    fs.readSync(fd, byte, 0, 1, offset)
    byte[0] ^= 1 << bit
    fs.writeSync(fd, byte, 0, 1, offset)
  } finally {
    fs.closeSync(fd)
  }
}

/** The error opening a log fails with, or undefined (after closing it again) if it opens. */
export async function openFailure (options: WalOptions): Promise<unknown> {
  try {
    const log = await WriteAheadLog.open(options)
    await log.close()
    return undefined
  } catch (err) {
    return err
  }
}

/**
 * The error a failed system call gives (an errno `code` and the `syscall`, a message in node's
 * form), for the test file layers to throw: `why` says what failed it.
 */
export function ioError (code: string, syscall: string, why = 'injected failure'): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: ${why}, ${syscall}`)
  err.code = code
  err.syscall = syscall
  return err
}

/**
 * The real file layer without its flushes, for tests that simulate durability themselves or only
 * look at what the opener decides: the outcome is the same, minus the waits for the disk.
 */
export const noSyncIO: FileIO = { ...nodeFileIO, fdatasync: async () => {}, fsyncDir: async () => {} }

/** A call of the file layer, by name. */
export type IoOp = keyof FileIO

export interface IoEvent {
  op: IoOp
  /** The file or directory the call is about. */
  path: string
  /** 'start' when the call was made, 'end' when it completed successfully. */
  phase: 'start' | 'end'
  /** writeAll and read: the file position and length written or asked for. */
  position?: number
  length?: number
}

/** Decides, before each call, whether to fail it: return an error to throw instead of calling. */
export type FaultRule = (op: IoOp, file: string) => Error | undefined

/** The bytes `chunks` (a FileIO write's) hold together. */
export function chunksLength (chunks: readonly Uint8Array[]): number {
  let length = 0
  for (const chunk of chunks) length += chunk.length
  return length
}

/**
 * A FileIO that passes every call to the real one and records it (start and completion, in order),
 * keeping track of which path each fd is. `fault` can fail any call before it reaches the disk.
 */
export class RecordingIO implements FileIO {
  readonly events: IoEvent[] = []
  readonly paths = new Map<number, string>()
  fault: FaultRule | undefined

  constructor (protected readonly inner: FileIO = nodeFileIO) {}

  /** Calls of `op` made, optionally only those on paths that match `file`. */
  calls (op: IoOp, file?: RegExp): number {
    return this.count(op, 'start', file)
  }

  /** Calls of `op` that completed successfully. */
  completed (op: IoOp, file?: RegExp): number {
    return this.count(op, 'end', file)
  }

  private count (op: IoOp, phase: IoEvent['phase'], file: RegExp | undefined): number {
    return this.events.filter(e => e.op === op && e.phase === phase && (file === undefined || file.test(e.path))).length
  }

  protected async call<R> (op: IoOp, file: string, run: () => Promise<R>, extra: Partial<IoEvent> = {}): Promise<R> {
    const injected = this.fault?.(op, file)
    this.events.push({ op, path: file, phase: 'start', ...extra })
    if (injected !== undefined) throw injected
    const result = await run()
    this.events.push({ op, path: file, phase: 'end', ...extra })
    return result
  }

  protected pathOf (fd: number): string {
    return this.paths.get(fd) ?? `fd ${fd}`
  }

  async create (file: string, mode: number): Promise<number> {
    const fd = await this.call('create', file, async () => await this.inner.create(file, mode))
    this.paths.set(fd, file)
    return fd
  }

  async openRead (file: string): Promise<number> {
    const fd = await this.call('openRead', file, async () => await this.inner.openRead(file))
    this.paths.set(fd, file)
    return fd
  }

  async openWrite (file: string): Promise<number> {
    const fd = await this.call('openWrite', file, async () => await this.inner.openWrite(file))
    this.paths.set(fd, file)
    return fd
  }

  async close (fd: number): Promise<void> {
    await this.call('close', this.pathOf(fd), async () => { await this.inner.close(fd) })
    this.paths.delete(fd)
  }

  async writeAll (fd: number, chunks: readonly Uint8Array[], position: number): Promise<void> {
    await this.call('writeAll', this.pathOf(fd), async () => { await this.inner.writeAll(fd, chunks, position) }, { position, length: chunksLength(chunks) })
  }

  async read (fd: number, into: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return await this.call('read', this.pathOf(fd), async () => await this.inner.read(fd, into, offset, length, position), { position, length })
  }

  async fdatasync (fd: number): Promise<void> {
    await this.call('fdatasync', this.pathOf(fd), async () => { await this.inner.fdatasync(fd) })
  }

  async ftruncate (fd: number, length: number): Promise<void> {
    await this.call('ftruncate', this.pathOf(fd), async () => { await this.inner.ftruncate(fd, length) })
  }

  async size (fd: number): Promise<number> {
    return await this.call('size', this.pathOf(fd), async () => await this.inner.size(fd))
  }

  async fsyncDir (dir: string): Promise<void> {
    await this.call('fsyncDir', dir, async () => { await this.inner.fsyncDir(dir) })
  }

  async readdir (dir: string): Promise<string[]> {
    return await this.call('readdir', dir, async () => await this.inner.readdir(dir))
  }

  async mkdir (dir: string, mode: number): Promise<void> {
    await this.call('mkdir', dir, async () => { await this.inner.mkdir(dir, mode) })
  }

  async unlink (file: string): Promise<void> {
    await this.call('unlink', file, async () => { await this.inner.unlink(file) })
  }

  async rename (from: string, to: string): Promise<void> {
    await this.call('rename', from, async () => { await this.inner.rename(from, to) })
  }
}

/**
 * Fails the next call of `op` (on a path matching `file`) with an error of `code`, and only that
 * one: a retry would reach the disk, so tests can tell whether the engine retried.
 */
export function failNext (io: RecordingIO, op: IoOp, code: string, options: { file?: RegExp } = {}): { failed: () => number } {
  let failed = 0
  io.fault = (called, file) => {
    if (called !== op || failed > 0 || (options.file !== undefined && !options.file.test(file))) return undefined
    failed++
    return ioError(code, op)
  }
  return { failed: () => failed }
}
