// The examples run as-is, and together they make one cluster: an Express, a
// Fastify and a Koa replica, each a peer of the other two.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Ring } from '../src/ring.js'
import { getJson, type Replica, type ReplicaStats, startReplicas, stopReplicas } from './helpers/replicas.js'

interface User {
  id: string
  name: string
  loadedBy: string
}

describe('a mixed cluster of the three examples', () => {
  let replicas: Replica[] = []

  before(async () => {
    replicas = await startReplicas(['express', 'fastify', 'koa'])
    // One round of every kind of request first, so that the bursts below
    // do not also pay for the replicas' cold start (first compiles, first
    // connections): on the busy shared machine a cold burst of 300 took
    // twice as long as a warm one, close to the default peer timeout.
    await Promise.all(
      replicas.map(async (r) => {
        for (let i = 0; i < 9; i++) assert.equal((await getJson(r, `/users/warm-${i}`)).status, 200)
        assert.equal((await getJson(r, '/reports/warm')).status, 200)
      }),
    )
  })
  after(async () => {
    await stopReplicas(replicas)
  })

  test('each example answers its routes', async () => {
    for (const replica of replicas) {
      const stats = await getJson<ReplicaStats>(replica, '/stats')
      assert.equal(stats.status, 200)
      assert.equal(stats.body.framework, replica.framework)
    }
  })

  test('300 concurrent requests over 50 ids, spread over the three apps, load each id exactly once, on its owner', async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `u${i}`)
    const before = await Promise.all(replicas.map((r) => getJson<ReplicaStats>(r, '/stats')))
    const answers = await Promise.all(
      Array.from({ length: 300 }, (_, i) => {
        const id = ids[i % ids.length] as string
        return getJson<User>(replicas[i % replicas.length]!, `/users/${id}`).then((res) => ({ id, res }))
      }),
    )
    const ring = new Ring(replicas.map((r) => r.url))
    for (const { id, res } of answers) {
      assert.equal(res.status, 200)
      assert.equal(res.body.id, id)
      assert.ok(res.body.loadedBy.endsWith(ring.owner(id)!), `${id} was loaded by ${res.body.loadedBy}, not its owner`)
    }
    const stats = await Promise.all(replicas.map((r) => getJson<ReplicaStats>(r, '/stats')))
    const calls = stats.map((s, i) => s.body.dbCalls - before[i]!.body.dbCalls)
    assert.equal(
      calls.reduce((a, b) => a + b, 0),
      ids.length,
      `database calls per replica: ${calls}`,
    )
    replicas.forEach((r, i) => {
      const owned = ids.filter((id) => ring.owner(id) === r.url).length
      assert.equal(calls[i], owned, `${r.framework} owns ${owned} ids`)
    })
    assert.equal(
      stats.reduce((a, s) => a + s.body.peerErrors, 0),
      0,
    )
  })

  test('the list route on each app reads each id once across the cluster, one query per owner', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `list-${i}`)
    const path = `/users?ids=${[...ids, 'nobody-1'].join(',')}`
    const before = await Promise.all(replicas.map((r) => getJson<ReplicaStats>(r, '/stats')))
    const first = await getJson<User[]>(replicas[0]!, path)
    assert.equal(first.status, 200)
    assert.deepEqual(
      first.body.map((u) => u.id),
      ids,
      'every id that exists, in order',
    )
    const rest = await Promise.all(replicas.slice(1).map((r) => getJson<User[]>(r, path)))
    for (const res of rest)
      assert.deepEqual(
        res.body.map((u) => u.id),
        ids,
      )
    const after = await Promise.all(replicas.map((r) => getJson<ReplicaStats>(r, '/stats')))
    const ring = new Ring(replicas.map((r) => r.url))
    replicas.forEach((r, i) => {
      const owned = [...ids, 'nobody-1'].filter((id) => ring.owner(id) === r.url).length
      assert.equal(after[i]!.body.dbCalls - before[i]!.body.dbCalls, owned, `${r.framework} read the ids it owns, once`)
      assert.equal(after[i]!.body.dbQueries - before[i]!.body.dbQueries, owned > 0 ? 1 : 0, `${r.framework} sent one query`)
    })
  })

  test('the cached report route renders each id once across the three apps', async () => {
    const ids = Array.from({ length: 6 }, (_, i) => `r${i}`)
    const rendered = async (): Promise<number> =>
      (await Promise.all(replicas.map((r) => getJson<ReplicaStats>(r, '/stats')))).reduce((sum, s) => sum + s.body.renders, 0)
    const before = await rendered()
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) => getJson<{ id: string }>(replicas[i % 3]!, `/reports/${ids[i % ids.length]}`)),
    )
    for (const a of answers) assert.equal(a.status, 200)
    assert.equal((await rendered()) - before, ids.length)
  })
})
