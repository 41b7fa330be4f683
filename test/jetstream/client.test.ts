// The typed client on the JetStream backend: its suites written for any service (appends, batches
// and transactions with keyed retries through a proxy that refuses, drops or loses answers;
// follow and named consumers; a kill -9 of the service under a followed stream and under keyed
// writes) run here against services on a 3-node cluster on 127.0.0.1.
import t from 'tap'
import { useJetStream } from '../helpers/http.js'
import { startNatsCluster } from '../helpers/nats-cluster.js'

const cluster = await startNatsCluster(t)
useJetStream(cluster.servers)

await import('../client/client.test.js')
await import('../client/follow.test.js')
await import('../client/follow-kill9.test.js')
