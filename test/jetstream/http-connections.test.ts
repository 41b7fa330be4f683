// The HTTP suites of connections, written for any backend, run here on the JetStream backend
// (services on a 3-node cluster on 127.0.0.1, each on a fresh R3 stream): graceful shutdown losing
// nothing acknowledged (the CLI's too, reopening the same stream), idle and request timeouts, and a
// browser's EventSource across a restart.
import t from 'tap'
import { useJetStream } from '../helpers/http.js'
import { startNatsCluster } from '../helpers/nats-cluster.js'

useJetStream((await startNatsCluster(t)).servers)

await import('../http/shutdown.test.js')
await import('../http/timeouts.test.js')
await import('../http/sse-browser.test.js')
