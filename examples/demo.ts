// `npm run demo`: three replicas on 127.0.0.1 (Express, Fastify, Koa), one
// burst of concurrent requests for a few hundred ids at all of them, and a
// table of what each replica did. Exits by itself, leaving no process behind.
import { getJson, type Replica, type ReplicaStats, startReplicas, stopReplicas } from '../test/helpers/replicas.js'

const IDS = 400
const REQUESTS_PER_ID = 3

const replicas: Replica[] = await startReplicas(['express', 'fastify', 'koa'], { DB_DELAY_MS: '50' })
try {
  console.log(`3 replicas up: ${replicas.map((r) => `${r.framework} ${r.url}`).join(', ')}`)
  const served = new Map<Replica, number>(replicas.map((r) => [r, 0]))
  const asked = new Map<Replica, Set<string>>(replicas.map((r) => [r, new Set()]))
  const requests: Array<Promise<unknown>> = []
  const started = performance.now()
  for (let round = 0; round < REQUESTS_PER_ID; round++) {
    for (let i = 0; i < IDS; i++) {
      const replica = replicas[Math.floor(Math.random() * replicas.length)] as Replica
      served.set(replica, (served.get(replica) ?? 0) + 1)
      asked.get(replica)?.add(`u${i}`)
      requests.push(
        getJson(replica, `/users/u${i}`).then((res) => {
          if (res.status !== 200) throw new Error(`${replica.framework} answered ${res.status}`)
        }),
      )
    }
  }
  await Promise.all(requests)
  const ms = performance.now() - started
  const stats = await Promise.all(replicas.map(async (r) => (await getJson<ReplicaStats>(r, '/stats')).body))

  const rows = replicas.map((r, i) => {
    const s = stats[i] as ReplicaStats
    return [`${r.framework} ${r.url}`, served.get(r), s.dbCalls, s.peerLoads, s.cacheHits, s.serverRequests, s.hotItems]
  })
  const header = ['replica', 'requests served', 'loads run', 'peer fetches', 'cache hits', 'peer requests served', 'hot-cache items']
  console.log(`\n${IDS * REQUESTS_PER_ID} concurrent requests for ${IDS} ids, spread at random over 3 replicas, in ${ms.toFixed(0)} ms\n`)
  console.log(`| ${header.join(' | ')} |`)
  console.log(`|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`)
  for (const row of rows) console.log(`| ${row.join(' | ')} |`)
  const loads = stats.reduce((sum, s) => sum + s.dbCalls, 0)
  const withoutGroupcache = [...asked.values()].reduce((sum, ids) => sum + ids.size, 0)
  console.log(`\ndistinct ids: ${IDS} · database loads in the whole cluster: ${loads} (${(loads / IDS).toFixed(2)} per id)`)
  console.log(`a per-replica cache would have loaded ${withoutGroupcache} times (each replica once per id it was asked for)`)

  // Whole responses: /reports/:id is a cached route (100 ms to render).
  const REPORTS = 30
  const reportStarted = performance.now()
  const sources = new Map<string, number>()
  await Promise.all(
    Array.from({ length: REPORTS * 10 }, async (_, i) => {
      const replica = replicas[i % replicas.length] as Replica
      const res = await fetch(`http://127.0.0.1:${replica.port}/reports/${i % REPORTS}`)
      if (res.status !== 200) throw new Error(`${replica.framework} answered ${res.status}`)
      const source = res.headers.get('x-groupcache') ?? 'none'
      sources.set(source, (sources.get(source) ?? 0) + 1)
      await res.arrayBuffer()
    }),
  )
  const after = await Promise.all(replicas.map(async (r) => (await getJson<ReplicaStats>(r, '/stats')).body))
  const renders = after.reduce((sum, s) => sum + s.renders, 0)
  console.log(
    `\n${REPORTS * 10} concurrent requests for ${REPORTS} cached report pages in ${(performance.now() - reportStarted).toFixed(0)} ms: ` +
      `${renders} renders in the whole cluster (${after.map((s) => `${s.framework} ${s.renders}`).join(', ')}); ` +
      `x-groupcache: ${[...sources].map(([k, v]) => `${k} ${v}`).join(', ')}`,
  )
} finally {
  await stopReplicas(replicas)
}
