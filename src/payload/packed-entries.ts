// A batch already in the bytes its record stores (docs/format.md): what a msgpack
// batch body becomes in one walk (batch-body-packer.ts), so that it is not decoded into objects,
// validated as objects and encoded again.
import type { EntryOp } from '../entry.js'

export class PackedEntries {
  /**
   * @param payload the batch record's payload (without txId or the write's trailing keys)
   * @param length how many entries it holds
   * @param ops how many of the entries each op has, ops without any left out
   */
  constructor (readonly payload: Buffer, readonly length: number, readonly ops: ReadonlyMap<EntryOp, number>) {}
}
