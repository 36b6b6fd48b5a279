// A rolling restart of 3 nodes holding 3,000 warm keys under steady gets,
// with and without peek + hand-off: how many keys the roll loads again.
// Run: node --import tsx test/soak/rolling.ts  (about a minute per row)
import { DEFAULT_PEEK_TIMEOUT_MS } from '../../src/index.js'
import { KEYS, rollingRestart } from '../helpers/rolling.js'

console.log('| rolling restart, 3 nodes, 3,000 warm keys | loader runs | of the keys | failed gets | took |')
console.log('|---|---:|---:|---:|---:|')
// The last row gives peeks more room: on a busy machine a 50 ms peek times
// out often, and each timeout is a load.
const rows: Array<[boolean, number, string]> = [
  [false, DEFAULT_PEEK_TIMEOUT_MS, 'without (`handoffMs: 0`, `close({ handoff: false })`)'],
  [true, DEFAULT_PEEK_TIMEOUT_MS, 'peek + hand-off (defaults, `peekTimeoutMs: 50`)'],
  [true, 1_000, 'peek + hand-off, `peekTimeoutMs: 1000`'],
]
for (const [handoff, peekTimeoutMs, label] of rows) {
  const started = performance.now()
  const { loads, failed, errors } = await rollingRestart(handoff, peekTimeoutMs)
  for (const error of errors) console.error(error)
  const took = ((performance.now() - started) / 1000).toFixed(1)
  console.log(`| ${label} | ${loads} | ${((100 * loads) / KEYS.length).toFixed(1)} % | ${failed} | ${took} s |`)
}
