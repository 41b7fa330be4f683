import { requestBodies } from '/work/main/dist/bench/payloads.js'
import { packBatchBody } from '/work/main/dist/src/payload/batch-body-packer.js'
const body = requestBodies().batchMsgpack
const rules = { minVectorLength: 1, maxVectorLength: 65536, binIsFloat32: false }
for (let r = 0; r < 4; r++) {
  const n = 5000; const t = process.hrtime.bigint()
  for (let i = 0; i < n; i++) packBatchBody(body, rules)
  console.log('pack', (Number(process.hrtime.bigint() - t) / 1e3 / n / 100).toFixed(3), 'µs/entry', body.length)
}
