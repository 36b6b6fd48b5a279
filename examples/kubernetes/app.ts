// One replica of the users API in Kubernetes (see README.md beside this file):
// a Fastify app whose groupcache peers are the pods behind a headless Service.
// Run in a pod with POD_IP (downward API), PEERS_HOSTNAME and GROUPCACHE_SECRET set.
import { isIPv6 } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { dnsPeers } from 'groupcache'
import groupcache from 'groupcache/fastify'

const port = Number(process.env.PORT ?? 3000)
const podIp = process.env.POD_IP
if (podIp === undefined || podIp === '') throw new Error('POD_IP is not set: give it status.podIP through the downward API')
// Spelled exactly as dnsPeers spells the peer URLs it builds from A/AAAA records.
const self = isIPv6(podIp) ? `http://[${podIp}]:${port}` : `http://${podIp}:${port}`
const hostname = process.env.PEERS_HOSTNAME ?? 'users-api-peers.default.svc.cluster.local'

const app = Fastify({ logger: true })
// Until DNS says otherwise this pod is its own only peer: everything still works, loaded here.
await app.register(groupcache, { self, peers: [self], secret: process.env.GROUPCACHE_SECRET })
const discovery = dnsPeers(app.groupcache, {
  hostname,
  port,
  onError: (err) => app.log.warn({ err }, 'peer discovery kept the old peers'),
})
app.addHook('onClose', async () => discovery.stop())

const users = app.groupcache.newGroup({
  name: 'users',
  maxBytes: 64 * 1024 * 1024,
  // A stand-in for a slow query; it runs once per id in the whole Deployment, on the id's owner.
  load: async (id, { signal }) => {
    await sleep(50, undefined, { signal })
    return { id, name: `User ${id}`, loadedBy: self }
  },
})

app.get<{ Params: { id: string } }>('/users/:id', (request) => users.get(request.params.id))
// The readiness probe. It does not wait for discovery: without peers the cache
// degrades to a per-pod cache, which is no reason to take the pod out of service.
app.get('/healthz', async () => ({ ok: true, peers: discovery.peers.length }))

await discovery.refresh() // the first lookup, so the pod starts with the peers DNS knows
await app.listen({ port, host: process.env.HOST ?? '0.0.0.0' })
// On SIGTERM, Kubernetes takes the pod out of the clients' Service at once,
// but the headless peers Service keeps it until the pod is gone
// (publishNotReadyAddresses). So: keep serving for DRAIN_MS while clients
// move away, then close. Closing lets loads in flight finish (5 s at most)
// and hands this pod's entries to the pods that own its keys without it.
// Until the others see it gone from DNS (about 10 s), their fetches from it
// fail and they take those keys from those pods (a peek), not from the
// loader. terminationGracePeriodSeconds (30) covers it all.
const DRAIN_MS = 5_000
process.once('SIGTERM', () => void sleep(DRAIN_MS).then(() => app.close())) // closes groupcache and stops discovery
