// The index kept by the log: a usearch HNSW graph, the vectors it holds (usearch cannot give a
// vector back, and an update or delete must find an id's key), and the seq applied up to.
//
// The graph is only ever added to. usearch 2.25's remove leaves a free slot that a later add
// reuses, and that reuse is broken: after a save and load it corrupts the heap (glibc aborts with
// "invalid fastbin entry"), and without one an add that must grow the capacity while slots are free
// can spin forever (both reproduced with a few hundred 4-dimensional vectors). So an update or delete
// only forgets the old key (its node stays in the graph, dead, and searches skip it), and once dead
// nodes outnumber live ones the graph is built again from the vectors held.
//
// The graph is the same whatever crashes and restarts its program went through: usearch builds the
// same graph, to the byte, for the same adds made one at a time into a new index, and every add
// follows from the records applied. What it cannot do is go on from a loaded graph file as the graph
// that was saved would have gone on: a load starts usearch's random level generator afresh, so later
// adds get other levels (measured in the README). So the graph is not saved: the save holds its
// nodes, dead ones too, in the order they were added, and a load adds them again.
//
// Saved to a directory as one file, `state.msgpack` (seq, the graph's nodes with their keys and
// vectors, the ids held with their keys), replaced atomically: a save interrupted anywhere leaves the
// previous save whole, and the temporary file of an unfinished one is removed at the next load.
import crypto from 'node:crypto'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { pack, unpack } from 'msgpackr'
import usearch, { type Index, type Matches } from 'usearch'
import type { LogEntry, LogRecord } from './log-source.js'

export interface IndexSettings {
  dimensions: number
  /** HNSW graph degree. */
  connectivity: number
  /** Candidates kept while inserting: higher builds a better graph, slower. */
  expansionAdd: number
  /** Candidates kept while searching: higher finds more of the true nearest, slower. */
  expansionSearch: number
}

export interface Neighbour { id: string, distance: number }

/** A node of the graph: its key, and the vector added under it. */
interface Node { key: bigint, vector: Float32Array }

/** What `state.msgpack` holds. */
interface SavedState {
  dimensions: number
  appliedSeq: number
  nextKey: number
  /** The graph's nodes, dead ones included, in the order they were added: their keys, and their vectors as one bin of little-endian float32s, `dimensions` per node. */
  nodeKeys: number[]
  nodeVectors: Uint8Array
  /** The ids held, in the order of `held`, each with the key of its node. */
  ids: string[]
  keys: number[]
}

const STATE_FILE = 'state.msgpack'
const LOCK_FILE = 'LOCK'

// The same kernel lock the service takes on its data directory (fcntl F_OFD_SETLK): two programs
// saving into one directory would replace each other's saves.
const { tryLock } = createRequire(import.meta.url)('fs-native-extensions') as { tryLock: (fd: number) => boolean }

/** Locks `dir` for this process until the descriptor returned is closed (or the process dies). */
function lockDir (dir: string): number {
  const fd = fs.openSync(path.join(dir, LOCK_FILE), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600)
  if (!tryLock(fd)) {
    fs.closeSync(fd)
    throw new Error(`another program holds ${dir} (its ${LOCK_FILE} is locked)`)
  }
  return fd
}

/** Writes `bytes` to `file` so that after a crash `file` is either what it was or all of `bytes`. */
function writeFileAtomic (file: string, bytes: Uint8Array): void {
  const temp = `${file}.tmp`
  const fd = fs.openSync(temp, 'w')
  try {
    // One write() takes at most about 2 GiB on Linux: the rest goes in more.
    for (let written = 0; written < bytes.length;) written += fs.writeSync(fd, bytes, written)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(temp, file)
  fsyncPath(path.dirname(file))
}

function fsyncPath (target: string): void {
  const fd = fs.openSync(target, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

export class VectorIndex {
  private graph: Index
  /** The graph's nodes in the order they were added, dead ones too: adding them again builds the same graph. */
  private nodes: Node[] = []
  /** Each id held, with its live node (in the order they were set: a rebuild adds them again in this order). */
  private readonly held = new Map<string, Node>()
  private readonly idOfKey = new Map<bigint, string>()
  /** Every add takes a new key: a dead node's key must never stand for a live vector. */
  private nextKey = 0
  private applied = 0
  private saved = 0
  /** Entries not indexed because their vector had another length than the index's. */
  private wrongLength = 0

  /** The directory's lock while it is held; undefined in memory and once closed. */
  private lock: number | undefined

  private constructor (readonly settings: IndexSettings, private readonly dir?: string) {
    this.graph = VectorIndex.emptyGraph(settings)
    if (dir !== undefined) this.lock = lockDir(dir)
  }

  private static emptyGraph (settings: IndexSettings): Index {
    return new usearch.Index({
      dimensions: settings.dimensions,
      metric: usearch.MetricKind.L2sq,
      quantization: usearch.ScalarKind.F32,
      connectivity: settings.connectivity,
      expansion_add: settings.expansionAdd,
      expansion_search: settings.expansionSearch,
      multi: false
    })
  }

  /** An index that lives in memory only (a reference to compare with). */
  static inMemory (settings: IndexSettings): VectorIndex {
    return new VectorIndex(settings)
  }

  /** The index saved in `dir` (created if need be), or an empty one if nothing was saved there yet. */
  static open (dir: string, settings: IndexSettings): VectorIndex {
    fs.mkdirSync(dir, { recursive: true })
    const index = new VectorIndex(settings, dir)
    try {
      index.load(dir)
    } catch (err) {
      index.close()
      throw err
    }
    return index
  }

  private load (dir: string): void {
    const stateFile = path.join(dir, STATE_FILE)
    if (fs.existsSync(stateFile)) {
      const state = unpack(fs.readFileSync(stateFile)) as SavedState
      // A save from before the graph was rebuilt at start holds no nodes: the index must be built anew.
      if (!Array.isArray(state.nodeKeys)) throw new Error(`${stateFile} is a save of an older form (no graph nodes): move the directory away and let the index rebuild from the log`)
      const { dimensions } = this.settings
      if (state.dimensions !== dimensions) throw new Error(`${stateFile} holds ${state.dimensions}-dimensional vectors, not ${dimensions}`)
      const vectors = new Float32Array(new Uint8Array(state.nodeVectors).buffer)
      const nodeOfKey = new Map<bigint, Node>()
      state.nodeKeys.forEach((key, i) => {
        const node = { key: BigInt(key), vector: vectors.subarray(i * dimensions, (i + 1) * dimensions) }
        this.addNode(node)
        nodeOfKey.set(node.key, node)
      })
      state.ids.forEach((id, i) => {
        const node = nodeOfKey.get(BigInt(state.keys[i]))
        if (node === undefined) throw new Error(`${stateFile}: the key of ${JSON.stringify(id)}, ${state.keys[i]}, is no node of the graph`)
        this.held.set(id, node)
        this.idOfKey.set(node.key, id)
      })
      this.nextKey = state.nextKey
      this.applied = this.saved = state.appliedSeq
    }
    // What an interrupted save left: its temporary file, never referred to.
    for (const name of fs.readdirSync(dir)) {
      if (name.endsWith('.tmp')) fs.rmSync(path.join(dir, name))
    }
  }

  /** Lets go of the directory (another program may open it then); the index stays usable in memory. */
  close (): void {
    if (this.lock !== undefined) fs.closeSync(this.lock)
    this.lock = undefined
  }

  /** The seq of the last record applied. */
  get appliedSeq (): number {
    return this.applied
  }

  /** The seq the last save holds: what a restart resumes after. */
  get savedSeq (): number {
    return this.saved
  }

  get size (): number {
    return this.held.size
  }

  get wrongLengthEntries (): number {
    return this.wrongLength
  }

  /** Applies a record; records must come in seq order, each once (one already applied is refused). */
  apply (record: LogRecord): void {
    if (record.seq <= this.applied) throw new Error(`record ${record.seq} is at or before the applied seq ${this.applied}`)
    if (record.op === 'batch') {
      for (const entry of record.entries) this.applyEntry(entry)
    } else {
      this.applyEntry(record)
    }
    // Each rebuild adds the live nodes again, and comes only after as many updates and deletes as
    // there were live nodes: on average a rebuild costs one add per update or delete.
    if (this.deadNodes > this.held.size) this.rebuild()
    this.applied = record.seq
  }

  /**
   * insert and update both mean "the id now holds this vector" (an insert of an id held replaces
   * it; an update of an id not held adds it); delete of an id not held does nothing. A vector of
   * another length than the index's cannot be held: the id is left out, and counted.
   */
  private applyEntry (entry: LogEntry): void {
    const old = this.held.get(entry.id)
    if (old !== undefined) {
      // Its node stays in the graph, dead (see the top of this file).
      this.idOfKey.delete(old.key)
      this.held.delete(entry.id)
    }
    if (entry.op === 'delete' || entry.vector === undefined) return
    if (entry.vector.length !== this.settings.dimensions) {
      this.wrongLength++
      return
    }
    // A copy: the record's vector may be a view of the whole page it came in.
    const node = { key: BigInt(this.nextKey++), vector: Float32Array.from(entry.vector) }
    this.addNode(node)
    this.held.set(entry.id, node)
    this.idOfKey.set(node.key, entry.id)
  }

  private addNode (node: Node): void {
    // One thread: the graph then depends only on the order of the adds.
    this.graph.add(node.key, node.vector, 1)
    this.nodes.push(node)
  }

  /** Nodes of the graph whose key was updated or deleted since. */
  private get deadNodes (): number {
    return this.nodes.length - this.held.size
  }

  /** A new graph of the vectors held, with their keys, in the order they were set. */
  private rebuild (): void {
    this.graph = VectorIndex.emptyGraph(this.settings)
    this.nodes = []
    for (const node of this.held.values()) this.addNode(node)
  }

  /** Saves the state, atomically (see the top of this file). Returns the seq saved. */
  save (): number {
    if (this.dir === undefined || this.lock === undefined) throw new Error('an index in memory only, or closed, is not saved')
    if (this.saved === this.applied && fs.existsSync(path.join(this.dir, STATE_FILE))) return this.saved
    const { dimensions } = this.settings
    const nodeVectors = new Float32Array(this.nodes.length * dimensions)
    this.nodes.forEach((node, i) => { nodeVectors.set(node.vector, i * dimensions) })
    const state: SavedState = {
      dimensions,
      appliedSeq: this.applied,
      nextKey: this.nextKey,
      nodeKeys: this.nodes.map(node => Number(node.key)),
      nodeVectors: new Uint8Array(nodeVectors.buffer),
      ids: [...this.held.keys()],
      keys: [...this.held.values()].map(node => Number(node.key))
    }
    writeFileAtomic(path.join(this.dir, STATE_FILE), pack(state))
    this.saved = this.applied
    return this.saved
  }

  /**
   * The k ids nearest to `query` (squared Euclidean distance), nearest first: from the HNSW graph,
   * or with `exact` by comparing with every vector held.
   */
  search (query: Float32Array, k: number, exact: boolean): Neighbour[] {
    const count = Math.min(k, this.held.size)
    if (count === 0) return []
    let matches: Matches
    if (exact) {
      const keys: bigint[] = []
      const dataset = new Float32Array(this.held.size * this.settings.dimensions)
      let i = 0
      for (const held of this.held.values()) {
        dataset.set(held.vector, i * this.settings.dimensions)
        keys.push(held.key)
        i++
      }
      // exactSearch answers with positions in the dataset.
      const found = usearch.exactSearch(dataset, query, this.settings.dimensions, count, usearch.MetricKind.L2sq, 1) as Matches
      matches = { keys: BigUint64Array.from(found.keys, position => keys[Number(position)]), distances: found.distances }
    } else {
      matches = this.searchGraph(query, count)
    }
    const out: Neighbour[] = []
    matches.keys.forEach((key, i) => {
      const id = this.idOfKey.get(key)
      if (id !== undefined) out.push({ id, distance: matches.distances[i] })
    })
    return out
  }

  /**
   * The graph's `count` nearest live nodes: asks for more while dead ones crowd them out (dead nodes
   * are at most as many as live ones, so a few doublings do).
   */
  private searchGraph (query: Float32Array, count: number): Matches {
    for (let asked = count; ; asked = Math.min(asked * 2, this.graph.size())) {
      const found = this.graph.search(query, asked, 1)
      const live = [...found.keys.keys()].filter(i => this.idOfKey.has(found.keys[i])).slice(0, count)
      if (live.length === count || asked === this.graph.size()) {
        return { keys: BigUint64Array.from(live, i => found.keys[i]), distances: Float32Array.from(live, i => found.distances[i]) }
      }
    }
  }

  /** The ids held, sorted. */
  ids (): string[] {
    return [...this.held.keys()].sort()
  }

  /**
   * SHA-256 over the ids held, sorted, each with its vector: two indexes holding the same ids with
   * the same vectors (to the bit) have the same digest, whatever their graphs.
   */
  digest (): string {
    return contentDigest(this.ids().map(id => [id, (this.held.get(id) as Node).vector]))
  }
}

/** The digest of `VectorIndex.digest` over (id, vector) pairs given in sorted id order. */
export function contentDigest (pairs: Iterable<[string, Float32Array]>): string {
  const hash = crypto.createHash('sha256')
  for (const [id, vector] of pairs) {
    const idBytes = Buffer.from(id, 'utf8')
    const length = Buffer.alloc(4)
    length.writeUInt32LE(idBytes.length)
    hash.update(length).update(idBytes).update(new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength))
  }
  return hash.digest('hex')
}
