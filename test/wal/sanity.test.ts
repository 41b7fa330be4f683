import t from 'tap'
import { segmentFileName, parseSegmentFileName } from '../../src/wal/format.js'
t.test('names', async t => {
  t.equal(parseSegmentFileName(segmentFileName(42)), 42)
  t.equal(parseSegmentFileName('x'), undefined)
})
t.test('fails', async t => { t.equal(1, 1) })
