// The HTTP suites of request bodies, written for any backend, run here on the JetStream backend
// (services on a 3-node cluster on 127.0.0.1, each on a fresh R3 stream): validation, every body
// form on every route read back bit for bit (with propertyRuns' smaller count: each write waits for a
// quorum), msgpack bodies, and a Python client nobody here wrote.
import t from 'tap'
import { useJetStream } from '../helpers/http.js'
import { startNatsCluster } from '../helpers/nats-cluster.js'

useJetStream((await startNatsCluster(t)).servers)

await import('../http/validation.test.js')
await import('../http/body-forms.test.js')
await import('../http/msgpack-body.test.js')
await import('../http/python-client.test.js')
