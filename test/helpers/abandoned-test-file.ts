// A test file that test/fault/abandoned-children.test.ts runs as tap runs one, and that never gets
// to its teardowns: through the real helpers it starts a service as a child process on a data
// directory and a one-node NATS cluster, pauses the node (as a fault test does), tells the parent
// their pids and directories over the IPC channel tap opens, and then, by argv[2]:
//   - 'hang': waits, in a tap test, for the parent to end it as tap ends a file at its timeout;
//   - 'exit': calls process.exit(0) in a tap test;
//   - 'crash': throws an error nothing catches. Not inside tap, which would catch it as the test's
//     failure, after which the file would wait on its children until tap's timeout: 'hang'.
import { startChild } from './child-service.js'
import { startNatsCluster } from './nats-cluster.js'
import { tempDir, type TeardownTarget } from './wal.js'

export type Ending = 'hang' | 'exit' | 'crash'

/** What the file tells its parent once everything runs. */
export interface Started { pids: number[], dirs: string[] }

/** Where the helpers' teardowns go: nowhere, as when a file ends before they run. */
const NEVER: TeardownTarget = { teardown: () => {} }

async function startChildren (): Promise<void> {
  const dataDir = tempDir(NEVER)
  const service = await startChild({ dataDir })
  const cluster = await startNatsCluster(NEVER, 1)
  const node = cluster.nodes[0]
  await node.signal('SIGSTOP')
  const started: Started = { pids: [service.pid, node.pid as number], dirs: [dataDir, cluster.dir] }
  process.send?.(started)
}

const ending = process.argv[2] as Ending
if (ending === 'crash') {
  await startChildren()
  throw new Error('an uncaught error in a test program')
}
const { default: t } = await import('tap')
t.test('starts a service and a paused NATS node, then ends without teardowns', async t => {
  await startChildren()
  if (ending === 'exit') process.exit(0)
  // At most a minute: the parent ends the file long before.
  await new Promise(resolve => setTimeout(resolve, 60_000))
  t.fail('the parent should have ended this file by now')
})
