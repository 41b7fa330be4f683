// The index's own HTTP routes, on 127.0.0.1 (node:http: four GET routes need no framework):
//   GET /knn?vector=0.1,0.2,...&k=10[&exact=true]  the k nearest ids, nearest first
//   GET /state                                     seqs (applied, saved, checkpointed), size
//   GET /ids                                       the ids held, sorted
//   GET /digest                                    a digest of the ids and vectors held (a hash of
//                                                  them all: asked for when wanted, not with /state)
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { VectorIndex } from './vector-index.js'

export interface ConsumerProgress {
  /** The last seq the service acknowledged as this consumer's checkpoint. */
  checkpointedSeq: number
}

const MAX_K = 1000

class BadRequest extends Error {}

function json (res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function knnQuery (params: URLSearchParams, dimensions: number): { vector: Float32Array, k: number, exact: boolean } {
  const text = params.get('vector')
  if (text === null) throw new BadRequest('vector: required, comma-separated numbers')
  const values = text.split(',').map(Number)
  if (values.length !== dimensions || values.some(v => !Number.isFinite(v) || !Number.isFinite(Math.fround(v)))) {
    throw new BadRequest(`vector: must be ${dimensions} comma-separated finite float32 numbers`)
  }
  const kText = params.get('k') ?? '10'
  const k = Number(kText)
  if (!/^\d+$/.test(kText) || k < 1 || k > MAX_K) throw new BadRequest(`k: must be an integer from 1 to ${MAX_K}`)
  const exactText = params.get('exact') ?? 'false'
  if (exactText !== 'true' && exactText !== 'false') throw new BadRequest('exact: must be true or false')
  return { vector: Float32Array.from(values), k, exact: exactText === 'true' }
}

/** Serves the routes on 127.0.0.1:`port` (0: any free port); resolves with the server once it listens. */
export async function startQueryServer (index: VectorIndex, progress: ConsumerProgress, port: number): Promise<{ server: http.Server, url: string }> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (req.method !== 'GET') {
      json(res, 405, { error: 'only GET' })
      return
    }
    try {
      switch (url.pathname) {
        case '/knn': {
          const { vector, k, exact } = knnQuery(url.searchParams, index.settings.dimensions)
          json(res, 200, { appliedSeq: index.appliedSeq, neighbours: index.search(vector, k, exact) })
          return
        }
        case '/state':
          json(res, 200, {
            appliedSeq: index.appliedSeq,
            savedSeq: index.savedSeq,
            checkpointedSeq: progress.checkpointedSeq,
            size: index.size,
            wrongLengthEntries: index.wrongLengthEntries
          })
          return
        case '/ids':
          json(res, 200, index.ids())
          return
        case '/digest':
          json(res, 200, { appliedSeq: index.appliedSeq, digest: index.digest() })
          return
        default:
          json(res, 404, { error: `no route ${url.pathname}` })
      }
    } catch (err) {
      if (err instanceof BadRequest) json(res, 400, { error: err.message })
      else json(res, 500, { error: (err as Error).message })
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => { resolve() })
  })
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}
