// A rolling restart of 3 nodes holding 3,000 warm keys under steady gets,
// with and without peek + hand-off: how many keys the roll loads again, and
// how many gets fail. The acceptance tests run the same roll on fewer keys.
//
//   node --import tsx test/soak/rolling.ts [--rounds 3]   (the nodes run src/ with tsx)
//
// Each row is the median of its rounds (loads vary with the machine's load:
// a peek that outlives its deadline is a load); about a minute per round.
import { DEFAULT_PEEK_TIMEOUT_MS } from '../../src/index.js'
import { keysOf, type RollingOptions, rollingRestart } from '../helpers/rolling.js'

const KEYS = keysOf(3_000)

function parseRounds(argv: string[]): number {
  const i = argv.indexOf('--rounds')
  if (i === -1) return 1
  const rounds = Number(argv[i + 1])
  if (!Number.isSafeInteger(rounds) || rounds < 1 || rounds > 20) {
    console.error(`expected --rounds to be a whole number from 1 to 20, got ${String(argv[i + 1])}`)
    process.exit(2)
  }
  return rounds
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

const rounds = parseRounds(process.argv)
const rows: Array<[string, RollingOptions]> = [
  ['without (`handoffMs: 0`, `close({ handoff: false })`)', { keys: KEYS, handoff: false }],
  [`peek + hand-off (defaults: \`peekTimeoutMs: ${DEFAULT_PEEK_TIMEOUT_MS}\`)`, { keys: KEYS, handoff: true }],
  // What is left once no peek times out: on a busy machine the default
  // deadline is what most of the remaining loads come from.
  ['peek + hand-off, `peekTimeoutMs: 5000`', { keys: KEYS, handoff: true, peekTimeoutMs: 5_000 }],
]
console.log(
  `| rolling restart, 3 nodes, ${KEYS.length.toLocaleString('en')} warm keys (median of ${rounds}) | loader runs (min–max) | of the keys | failed gets | took |`,
)
console.log('|---|---:|---:|---:|---:|')
let failures = 0
for (const [label, options] of rows) {
  const loads: number[] = []
  const failed: number[] = []
  const took: number[] = []
  for (let round = 0; round < rounds; round++) {
    const started = performance.now()
    const result = await rollingRestart(options)
    for (const error of result.errors) console.error(error)
    loads.push(result.loads)
    failed.push(result.failed)
    took.push((performance.now() - started) / 1000)
  }
  failures += failed.reduce((a, b) => a + b, 0)
  const runs = median(loads)
  const range = rounds > 1 ? ` (${Math.min(...loads)}–${Math.max(...loads)})` : ''
  console.log(
    `| ${label} | ${runs}${range} | ${((100 * runs) / KEYS.length).toFixed(1)} % | ${median(failed)} | ${median(took).toFixed(1)} s |`,
  )
}
if (failures > 0) process.exitCode = 1
