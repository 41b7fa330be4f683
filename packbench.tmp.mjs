import { requestBodies } from '/work/main/dist/bench/payloads.js'
import { packBatchBody } from '/work/main/dist/src/payload/batch-body-packer.js'
import { decodeMsgpackBody } from '/work/main/dist/src/http/msgpack-body.js'
import { batchPayload } from '/work/main/dist/src/payload/payload-writer.js'
import { apiSchemas } from '/work/main/dist/src/http/schemas.js'
import { Ajv } from 'ajv'
const ajv = new Ajv({ coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false, discriminator: true, strictNumbers: true })
const validate = ajv.compile(apiSchemas().BatchBody)
const body = requestBodies().batchMsgpack
const rules = { minVectorLength: 1, maxVectorLength: 65536, binIsFloat32: false }
const standIn = new Array(128).fill(0)
function slow () {
  const d = decodeMsgpackBody(body)
  const vs = d.entries.map(e => { const v = e.vector; e.vector = standIn; return v })
  if (!validate(d)) throw new Error('invalid')
  d.entries.forEach((e, i) => { e.vector = vs[i] })
  return batchPayload(d.entries)
}
function fast () { return packBatchBody(body, rules).payload }
if (!slow().equals(fast())) throw new Error('differ')
for (const [name, f] of [['slow', slow], ['fast', fast], ['slow', slow], ['fast', fast]]) {
  const n = 3000; const t = process.hrtime.bigint()
  for (let i = 0; i < n; i++) f()
  const us = Number(process.hrtime.bigint() - t) / 1e3 / n / 100
  console.log(name, us.toFixed(3), 'µs/entry')
}
