// GET /metrics parsed: the documented names and types exist, values follow the writes, and the
// output passes `promtool check metrics`.
import t from 'tap'
import { onJetStream, startTestService } from '../helpers/http.js'
import { scrape, value } from '../helpers/metrics-scrape.js'
import { PROMTOOL_MISSING_IN_CI, promtool, promtoolMissing, skipPromtool } from '../helpers/promtool.js'

const DOCUMENTED: Array<[string, string]> = [
  ['vecwal_entries_appended_total', 'counter'],
  ['vecwal_bytes_appended_total', 'counter'],
  ['vecwal_fsync_duration_seconds', 'histogram'],
  ['vecwal_group_commit_records', 'histogram'],
  ['vecwal_group_commit_bytes', 'histogram'],
  ['vecwal_write_queue_bytes', 'gauge'],
  ['vecwal_write_queue_limit_bytes', 'gauge'],
  ['vecwal_disk_free_bytes', 'gauge'],
  ['vecwal_last_seq', 'gauge'],
  ['vecwal_checkpoint_seq', 'gauge'],
  ['vecwal_segments', 'gauge'],
  ['vecwal_segments_bytes', 'gauge'],
  ['vecwal_failed', 'gauge'],
  ['vecwal_http_request_duration_seconds', 'histogram'],
  ['process_cpu_user_seconds_total', 'counter'],
  ['process_resident_memory_bytes', 'gauge'],
  ['nodejs_eventloop_lag_seconds', 'gauge'],
  ['nodejs_heap_size_used_bytes', 'gauge']
]

t.test('the documented metrics exist with their types; no gauge is named like a counter', async t => {
  const service = await startTestService(t)
  const s = await scrape(service)
  for (const [name, type] of DOCUMENTED) t.equal(s.types.get(name), type, `${name} is a ${type}`)
  const misnamed = [...s.types].filter(([name, type]) => type === 'gauge' && name.endsWith('_total')).map(([name]) => name)
  t.same(misnamed, [], 'no gauge name ends with _total')
  const unprefixed = [...s.types.keys()].filter(n => !/^(vecwal|process|nodejs)_/.test(n))
  t.same(unprefixed, [], 'every metric is vecwal_ or a process default')
  for (const name of ['vecwal_fsync_duration_seconds', 'vecwal_group_commit_records', 'vecwal_group_commit_bytes']) {
    t.ok(s.samples.some(x => x.name === `${name}_bucket` && x.labels.le === '+Inf'), `${name} has a +Inf bucket`)
  }
})

t.test('values follow writes, checkpoints and requests', async t => {
  const service = await startTestService(t)
  const before = await scrape(service)
  const post = async (body: unknown): Promise<number> => (await service.call('POST', '/v1/entries', body)).status
  for (const id of ['a', 'b', 'c']) t.equal(await post({ op: 'insert', id, vector: [1, 2, 3] }), 201)
  t.equal(await post({ op: 'update', id: 'a', vector: [4, 5, 6] }), 201)
  for (const id of ['b', 'c']) t.equal(await post({ op: 'delete', id }), 201)
  t.equal((await service.call('POST', '/v1/batch', { entries: [{ op: 'insert', id: 'd', vector: [1] }, { op: 'delete', id: 'd' }] })).status, 201)
  t.equal((await service.call('POST', '/v1/checkpoints', { seq: 7 })).status, 201)
  t.equal(await post({ op: 'insert', id: 'bad', vector: ['1'] }), 400)
  const after = await scrape(service)
  const status = await (await service.call('GET', '/v1/status')).json() as { bytes: number, segments?: unknown[], queueLimitBytes: number, freeBytes?: number }

  const delta = (name: string, labels: Record<string, string> = {}): number => value(after, name, labels) - value(before, name, labels)
  t.equal(delta('vecwal_entries_appended_total', { op: 'insert' }), 4, 'inserts, batch entries one by one')
  t.equal(delta('vecwal_entries_appended_total', { op: 'update' }), 1)
  t.equal(delta('vecwal_entries_appended_total', { op: 'delete' }), 3)
  const bytes = delta('vecwal_bytes_appended_total')
  t.ok(bytes > 0, `${bytes} bytes appended`)
  t.equal(delta('vecwal_group_commit_bytes_sum'), bytes, 'the batch-bytes histogram sums to the bytes appended')
  t.equal(delta('vecwal_group_commit_records_sum'), 8, 'six entries, one batch, one checkpoint: eight records')
  t.ok(delta('vecwal_group_commit_records_count') >= 1)
  t.ok(delta('vecwal_fsync_duration_seconds_count') >= 1, onJetStream() ? 'the waits for publish acks were timed' : 'fsyncs were timed')
  t.equal(value(after, 'vecwal_last_seq'), 8)
  t.equal(value(after, 'vecwal_checkpoint_seq'), 7)
  // On JetStream no segment files (0), and the bytes are the stream's.
  t.equal(value(after, 'vecwal_segments'), status.segments?.length ?? 0)
  t.equal(value(after, 'vecwal_segments_bytes'), status.bytes)
  t.ok(status.bytes > 0, `the log holds ${status.bytes} bytes`)
  t.equal(value(after, 'vecwal_write_queue_bytes'), 0, 'nothing is waiting')
  t.equal(value(after, 'vecwal_failed'), 0)
  t.equal(value(after, 'vecwal_write_queue_limit_bytes'), 64 * 1024 * 1024, 'the default VECWAL_QUEUE_LIMIT_BYTES')
  t.equal(status.queueLimitBytes, 64 * 1024 * 1024)
  if (onJetStream()) {
    t.notOk('freeBytes' in status, 'JetStream\'s status tells no free bytes: the stream lives on the NATS servers\' disks')
    t.notOk(after.samples.some(x => x.name === 'vecwal_disk_free_bytes'), 'nor does the gauge: an unknown is not 0 free bytes')
  } else {
    t.ok((status.freeBytes ?? 0) > 0, `the status tells ${String(status.freeBytes)} free bytes`)
    t.ok(after.samples.some(x => x.name === 'vecwal_disk_free_bytes' && x.value > 0), 'so does the gauge')
  }

  const requests = (route: string, code: string): number => value(after, 'vecwal_http_request_duration_seconds_count', { method: 'POST', route, status: code })
  t.equal(requests('/v1/entries', '201'), 6, 'requests by route and status')
  t.equal(requests('/v1/entries', '400'), 1)
  t.equal(requests('/v1/batch', '201'), 1)
  t.equal(requests('/v1/checkpoints', '201'), 1)
  t.equal(value(after, 'vecwal_http_request_duration_seconds_count', { method: 'GET', route: '/metrics', status: '200' }), 1, 'the first scrape is counted by the second')
})

t.test('the queue limit follows VECWAL_QUEUE_LIMIT_BYTES; no free-space sample when the engine never asks', async t => {
  const service = await startTestService(t, { VECWAL_QUEUE_LIMIT_BYTES: '123456', VECWAL_MIN_FREE_BYTES: '0' })
  const s = await scrape(service)
  t.equal(value(s, 'vecwal_write_queue_limit_bytes'), 123456)
  t.equal(s.types.get('vecwal_disk_free_bytes'), 'gauge', 'the gauge is declared')
  t.notOk(s.samples.some(x => x.name === 'vecwal_disk_free_bytes'), 'but has no sample: an unknown is not 0 free bytes')
  const status = await (await service.call('GET', '/v1/status')).json() as Record<string, unknown>
  t.notOk('freeBytes' in status, 'the status leaves freeBytes out')
})

t.test('promtool check metrics accepts the output', { skip: skipPromtool }, async t => {
  if (promtoolMissing) {
    t.fail(PROMTOOL_MISSING_IN_CI)
    return
  }
  const service = await startTestService(t)
  await service.call('POST', '/v1/entries', { op: 'insert', id: 'a', vector: [1] })
  await service.call('POST', '/v1/entries', { op: 'insert', id: 'a', vector: ['x'] })
  await service.call('POST', '/v1/checkpoints')
  const { text } = await scrape(service)
  const check = promtool(['check', 'metrics'], { input: text })
  t.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`)
  t.equal(`${check.stdout}${check.stderr}`.trim(), '', 'no lint findings')
})
