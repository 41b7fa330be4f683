// vecwal/client: the package's client entry point (package.json "exports").
export { VecwalClient, VecwalError, Transaction, Consumer } from './client.js'
export { FollowEndedError } from './errors.js'
export type { FollowedRecord, FollowFormat, FollowOptions } from './follow.js'
export type { ApiEntry, Appended, BatchAppended, CheckpointAnswer, Checkpointed, ClientOptions, ConsumerCheckpointed, ConsumerState, Entry, Status, WriteOptions } from './client.js'
export { DEFAULT_RETRY, type RetryPolicy } from './retry.js'
export type { paths } from './openapi-types.js'
