// `npm run bench`: every scenario in order, one markdown table (or two) each,
// every contender beside a baseline measured in the same run: this machine is
// shared and noisy, so only ratios mean much.
//
//   npm run bench                 full run (several minutes)
//   npm run bench -- --quick      the same scenarios, scaled down (under a minute)
//   npm run bench -- --only B3    one scenario (or several: --only B1,B5)
//
// Scenarios import the BUILT package (`groupcache`, `groupcache/express`, …,
// resolved to dist/ through the package's exports): tsx's transpiled private
// fields are several times slower than Node's own. `npm run bench` builds first.
import { availableParallelism, cpus } from 'node:os'
import { outcomes, quick } from './lib.js'

interface Scenario {
  id: string
  title: string
  run: () => Promise<void>
}

const scenarios: Scenario[] = [
  { id: 'B1', title: 'local hit, object and string', run: async () => (await import('./b1-local-hit.js')).run() },
  { id: 'B2', title: 'local hit, default codec object', run: async () => (await import('./b2-local-object.js')).run() },
  { id: 'B3', title: 'peer fetch', run: async () => (await import('./b3-peer-fetch.js')).run() },
  { id: 'B3c', title: 'peer fetch, the client', run: async () => (await import('./b3-peer-fetch.js')).runClient() },
  { id: 'B3s', title: 'peer endpoint, server side', run: async () => (await import('./b3s-serve.js')).run() },
  { id: 'B4', title: 'cached route hit', run: async () => (await import('./b4-cached-route.js')).run() },
  { id: 'B5', title: 'thundering herd', run: async () => (await import('./b5-herd.js')).run() },
  { id: 'B6', title: 'Zipf workload', run: async () => (await import('./b6-zipf.js')).run() },
  { id: 'B7', title: 'ring and LRU', run: async () => (await import('./b7-ring-lru.js')).run() },
  { id: 'B8', title: 'gets across expiries (staleMs)', run: async () => (await import('./b8-stale.js')).run() },
  { id: 'B9', title: 'getMany vs parallel gets', run: async () => (await import('./b9-getmany.js')).run() },
  { id: 'B10', title: 'memory per entry, maxBytes as a memory bound', run: async () => (await import('./b10-memory.js')).run() },
  { id: 'B11', title: 'instrumentation cost', run: async () => (await import('./b11-otel.js')).run() },
]

function selected(): Scenario[] {
  const i = process.argv.indexOf('--only')
  if (i === -1) return scenarios
  const ids = (process.argv[i + 1] ?? '').toUpperCase().split(',').filter(Boolean)
  const unknown = ids.filter((id) => !scenarios.some((s) => s.id.toUpperCase() === id))
  if (ids.length === 0 || unknown.length > 0) {
    console.error(`--only expects scenario ids among ${scenarios.map((s) => s.id).join(', ')}, got ${process.argv[i + 1] ?? 'nothing'}`)
    process.exit(2)
  }
  return scenarios.filter((s) => ids.includes(s.id.toUpperCase()))
}

const chosen = selected()
const started = performance.now()
const failed: string[] = []
console.log(
  `## groupcache benchmarks (${quick ? 'quick' : 'full'} run) — Node ${process.version}, ${process.platform}/${process.arch}, ` +
    `${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${new Date().toISOString().slice(0, 10)}`,
)
for (const scenario of chosen) {
  const t = performance.now()
  try {
    await scenario.run()
  } catch (err) {
    failed.push(scenario.id)
    console.log(`\n### ${scenario.id} — ${scenario.title}\n\n**failed**: ${(err as Error)?.stack ?? String(err)}`)
  }
  console.log(`\n_${scenario.id} took ${((performance.now() - t) / 1000).toFixed(1)} s_`)
}

console.log('\n### Targets\n')
console.log('| scenario | target | result |')
console.log('| --- | --- | --- |')
for (const o of outcomes) console.log(`| ${o.scenario} | ${o.target} | ${o.met ? 'met' : '**missed**'} |`)
const met = outcomes.filter((o) => o.met).length
console.log(
  `\n${met} of ${outcomes.length} targets met${failed.length > 0 ? `; failed: ${failed.join(', ')}` : ''}. ` +
    `Total ${((performance.now() - started) / 1000).toFixed(1)} s.`,
)
// Timers of libraries under test must not keep the run alive.
process.exit(failed.length > 0 ? 1 : 0)
