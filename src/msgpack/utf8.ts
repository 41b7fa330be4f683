// The UTF-8 check of msgpack strings: msgpackr decodes bytes that are not UTF-8 as another string
// than the one sent, so every string a body holds is checked before anything takes it.
import { isUtf8 } from 'node:buffer'

/** Whether src[start, end) is UTF-8: a loop for ASCII, which nearly every string is, else isUtf8. */
export function isUtf8At (src: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if (src[i] >= 0x80) return isUtf8(src.subarray(start, end))
  }
  return true
}
