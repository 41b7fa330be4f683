// The HTTP suites of routes, recovery reads, metrics, bearer tokens and the failed-authentication
// limit, written for any backend, run here on the JetStream backend: services on a 3-node cluster
// on 127.0.0.1, each on a fresh R3 stream. Where the backends rightly differ (onJetStream: segments,
// the failed state, file layers under the engine, the metrics of disk and segments), the suites say
// so, or skip naming what is the engine's.
import t from 'tap'
import { useJetStream } from '../helpers/http.js'
import { startNatsCluster } from '../helpers/nats-cluster.js'

useJetStream((await startNatsCluster(t)).servers)

await import('../http/routes.test.js')
await import('../http/recovery.test.js')
await import('../http/metrics.test.js')
await import('../http/auth.test.js')
await import('../http/auth-limit.test.js')
