// Transactions: staged in memory, written as one batch record carrying the txId at commit.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Log } from '../../log.js'
import {
  BatchAppendedResponse, TxAbortedResponse, TxOpenedResponse, TxStagedResponse, WriteHeaders, type ApiSchemas
} from '../schemas.js'
import { conditionalWriteErrors, conditionsOf, CONDITIONS_DESCRIPTION, markReplay, replayable, writeBodyTypes, writeErrors } from './writes.js'

export const transactionRoutes: FastifyPluginAsyncTypebox<{ log: Log, schemas: ApiSchemas }> = async (app, { log, schemas }) => {
  const tx = log.transactions
  const params = schemas.TxParams

  app.post('/v1/transactions', {
    config: { access: 'write' },
    schema: { summary: 'Open a transaction', response: { 201: TxOpenedResponse, ...writeErrors } }
  }, async (_request, reply) => reply.code(201).send({ txId: tx.begin() }))

  app.post('/v1/transactions/:txId/entries', {
    config: { access: 'write' },
    schema: {
      summary: 'Stage one entry, or {entries}, in a transaction',
      description: 'Nothing reaches the log before commit. `staged` counts every entry staged so far.',
      consumes: writeBodyTypes,
      params,
      body: schemas.StageBody,
      response: { 202: TxStagedResponse, ...writeErrors }
    }
  }, async (request, reply) => {
    const { txId } = request.params
    const body = request.body
    const staged = tx.stage(txId, 'entries' in body ? body.entries : [body])
    return reply.code(202).send({ txId, staged })
  })

  app.post('/v1/transactions/:txId/commit', {
    config: { access: 'write' },
    schema: {
      summary: 'Commit: append the staged entries as one atomic batch record carrying the txId',
      description: 'A retry with the commit\'s Idempotency-Key is answered as the commit was, though the transaction is gone by then.' + CONDITIONS_DESCRIPTION,
      params,
      headers: WriteHeaders,
      response: { 201: replayable(BatchAppendedResponse), ...conditionalWriteErrors }
    }
  }, async (request, reply) => {
    const result = await tx.commit(request.params.txId, conditionsOf(request.headers))
    return markReplay(reply, result).send({ seq: result.seq, count: result.count })
  })

  app.post('/v1/transactions/:txId/abort', {
    config: { access: 'write' },
    schema: { summary: 'Abort: drop the staged entries', params, response: { 200: TxAbortedResponse, ...writeErrors } }
  }, async (request) => {
    const { txId } = request.params
    tx.abort(txId)
    return { txId, aborted: true }
  })
}
