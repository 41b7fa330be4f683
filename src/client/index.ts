// vecwal/client: the package's client entry point (package.json "exports").
export { VecwalClient, VecwalError, Transaction } from './client.js'
export type { ApiEntry, Appended, BatchAppended, CheckpointAnswer, Checkpointed, ClientOptions, Entry, Status, WriteOptions } from './client.js'
export { DEFAULT_RETRY, type RetryPolicy } from './retry.js'
export type { paths } from './openapi-types.js'
