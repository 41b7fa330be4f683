// Reads GET /v1/recovery to its end as a consumer would, counting lines and bytes without parsing
// them: the bench shares the machine with the server, and parsing would take CPU from it.
const NEWLINE = 0x0a

export interface RecoveryRead {
  lines: number
  bytes: number
  seconds: number
}

export async function readRecovery (baseUrl: string, timeoutMs: number): Promise<RecoveryRead> {
  const started = performance.now()
  const response = await fetch(`${baseUrl}/v1/recovery?after=0`, { signal: AbortSignal.timeout(timeoutMs) })
  if (response.status !== 200 || response.body === null) {
    throw new Error(`GET /v1/recovery answered ${response.status}: ${await response.text()}`)
  }
  let lines = 0
  let bytes = 0
  for await (const chunk of response.body) {
    bytes += chunk.length
    for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) lines++
  }
  return { lines, bytes, seconds: (performance.now() - started) / 1000 }
}
