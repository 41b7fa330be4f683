// The JetStream backend against the backend conformance suite (test/helpers/log-conformance.ts):
// a 3-node cluster on 127.0.0.1 for the file, a fresh R3 stream for each case. A write cannot be
// made to fail as a failed fsync does, and this backend has no failed state: an unanswered
// publish is refused with WAL_UNAVAILABLE and the log goes on (test/jetstream/faults.test.ts).
import t from 'tap'
import { logConformance } from '../helpers/log-conformance.js'
import { openJetStreamLog, startNatsCluster } from '../helpers/nats-cluster.js'

const cluster = await startNatsCluster(t)

logConformance(t, async t => ({ log: await openJetStreamLog(t, cluster) }), { canFailWrites: false })
