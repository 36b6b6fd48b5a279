// A mixed cluster: a real Go groupcache node (test/interop/bin/gonode, built
// by test/interop/build.sh from Debian's golang-github-golang-groupcache-dev)
// and two Node nodes in child processes, one serving peers with
// `gc.listen()` and one a Fastify app with the adapter, all peers of one
// another on 127.0.0.1. Every member's loader answers "go:" + key, so
// whoever loads a key, every asker must get the same bytes, and each
// member's load counts per key show where each key was loaded.
//
// Without Go (build.sh exits 3) every test is skipped, except under CI=true,
// where that is a failure: CI installs Go (.ci/run).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { after, before, describe, type TestContext, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Ring } from '../../src/ring.js'
import { decodeGetResponse } from '../../src/wire.js'
import { type Child, type ChildOptions, ROOT, startChild, stopChildren } from '../helpers/child.js'
import { fetchFresh } from '../helpers/fetch.js'
import type { SpanRecord } from '../helpers/otel.js'
import { reservePorts, reservePortWhere, urlsFor } from '../helpers/ports.js'
import { rawRequest } from '../helpers/raw.js'
import { type GetOutcome, GROUP, type NodeSnapshot } from './node-group.js'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const GONODE = `${HERE}bin/gonode`

type Kind = 'go' | 'listen' | 'fastify'

/** Counters are one member's group counters, Go's and ours under one shape. */
interface Counters {
  serverRequests: number
  peerLoads: number
  peerErrors: number
  localLoadErrs: number
  cacheHits: number
  hotItems: number
  hotHits: number
  loads: Record<string, number>
}

/** Member is one node of the cluster, as the test drives it. */
interface Member {
  kind: Kind
  url: string
  port: number
  child: Child
  get(key: string): Promise<GetOutcome>
  owners(keys: string[]): Promise<string[]>
  counters(): Promise<Counters>
  /** call sends the listen member any other IPC command. */
  call?(cmd: { op: string; [field: string]: unknown }): Promise<unknown>
}

/**
 * buildGo runs test/interop/build.sh. It resolves to a skip reason when Go
 * or the groupcache sources are missing (exit 3), to undefined when built.
 */
async function buildGo(): Promise<string | undefined> {
  const child = spawn('bash', [`${HERE}build.sh`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const [code] = (await once(child, 'close')) as [number | null]
  if (code === 0) return undefined
  if (code !== 3) throw new Error(`test/interop/build.sh failed with exit code ${code}:\n${output}`)
  const missing = /go not found/.test(output) ? 'go toolchain not found' : output.trim().replace(/; skipping$/, '')
  if (process.env.CI === 'true') {
    throw new Error(
      `${missing}, but CI=true: CI installs golang-go and golang-github-golang-groupcache-dev (.ci/run), so the interop test must run`,
    )
  }
  return `${missing}: interop test skipped`
}

async function fetchJson<T>(url: string, body?: unknown): Promise<T> {
  const res = await fetchFresh(url, {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
  })
  assert.equal(res.status, 200, `${url} answered ${res.status}`)
  return (await res.json()) as T
}

function nodeCounters(s: NodeSnapshot): Counters {
  return {
    serverRequests: s.stats.serverRequests,
    peerLoads: s.stats.peerLoads,
    peerErrors: s.stats.peerErrors,
    localLoadErrs: s.stats.localLoadErrs,
    cacheHits: s.stats.cacheHits,
    hotItems: s.hot.items,
    hotHits: s.hot.hits,
    loads: s.loads,
  }
}

/** startGo runs gonode on `port`; it exits by itself if this process dies (its stdin closes). */
async function startGo(port: number, self: string, peers: string[]): Promise<Member> {
  const child = await startChild({
    what: `gonode ${self}`,
    command: GONODE,
    args: ['-addr', `127.0.0.1:${port}`, '-self', self, '-peers', peers.join(','), '-group', GROUP, '-exit-on-eof'],
    stdin: 'pipe',
    ready: { stdout: 'LISTENING ' },
  })
  const base = `http://127.0.0.1:${port}`
  return {
    kind: 'go',
    url: self,
    port,
    child,
    async get(key) {
      const res = await fetchFresh(`${base}/get?key=${encodeURIComponent(key)}`)
      const text = await res.text()
      return res.status === 200 ? { ok: true, value: text } : { ok: false, code: undefined, message: `${res.status}: ${text.trim()}` }
    },
    owners: (keys) => fetchJson<string[]>(`${base}/owners`, keys),
    async counters() {
      const [stats, loads] = await Promise.all([
        fetchJson<{ stats: Record<string, number>; hotCache: Record<string, number> }>(`${base}/stats`),
        fetchJson<{ perKey: Record<string, number> }>(`${base}/loads`),
      ])
      const s = stats.stats
      return {
        serverRequests: s.ServerRequests ?? NaN,
        peerLoads: s.PeerLoads ?? NaN,
        peerErrors: s.PeerErrors ?? NaN,
        localLoadErrs: s.LocalLoadErrs ?? NaN,
        cacheHits: s.CacheHits ?? NaN,
        hotItems: stats.hotCache.Items ?? NaN,
        hotHits: stats.hotCache.Hits ?? NaN,
        loads: loads.perKey,
      }
    },
  }
}

/** nodeMember is how a Node member's entry point runs: its config as argv[2], ready over IPC. */
function nodeMember(file: string, port: number, self: string, peers: string[]): ChildOptions {
  return { what: `${file} ${self}`, script: `${HERE}${file}`, args: [JSON.stringify({ self, peers, port })], ready: 'ipc' }
}

/** startListenNode runs node-peer.ts (gc.listen()), driven over IPC. */
async function startListenNode(port: number, self: string, peers: string[]): Promise<Member> {
  const child = await startChild(nodeMember('node-peer.ts', port, self, peers))
  const call = (cmd: { op: string; [field: string]: unknown }): Promise<unknown> => child.call(cmd)
  return {
    kind: 'listen',
    url: self,
    port,
    child,
    get: (key) => call({ op: 'get', key }) as Promise<GetOutcome>,
    owners: (keys) => call({ op: 'owners', keys }) as Promise<string[]>,
    counters: async () => nodeCounters((await call({ op: 'stats' })) as NodeSnapshot),
    call,
  }
}

/** startFastifyNode runs fastify-peer.ts, driven through its own routes. */
async function startFastifyNode(port: number, self: string, peers: string[]): Promise<Member> {
  const child = await startChild(nodeMember('fastify-peer.ts', port, self, peers))
  const base = `http://127.0.0.1:${port}`
  return {
    kind: 'fastify',
    url: self,
    port,
    child,
    get: (key) => fetchJson<GetOutcome>(`${base}/get`, { key }),
    owners: (keys) => fetchJson<string[]>(`${base}/owners`, keys),
    counters: async () => nodeCounters(await fetchJson<NodeSnapshot>(`${base}/stats`)),
  }
}

// Keys whose bytes need escaping, or that a careless server would mangle:
// slashes anywhere, dot segments, spaces, '+', '%' (bare, before hex, before
// non-hex), query and fragment characters, a tab, and UTF-8 of 2, 3 and 4 bytes.
const SPECIAL_KEYS = [
  'a/b',
  '/lead',
  'trail/',
  '//double//',
  '../up/./here',
  'a b c',
  ' ',
  'x+y',
  '+',
  '100%',
  '%41',
  '%zz',
  'q?x=1&y=2',
  '#frag',
  'tab\there',
  'Привет, мир',
  '😀 emoji 🎉',
  '日本語のキー',
  'mix /+%?&#😀 ключ 键',
]

/**
 * variant is the i-th spelling of a special key that keeps its special
 * characters: the key itself, then with a number added at the end (or at the
 * start, when the key ends in a special character), since ownership is fixed
 * by the ring and each direction needs a key owned by the other kind of node.
 */
function variant(key: string, i: number): string {
  if (i === 0) return key
  return /[A-Za-z0-9]$/.test(key) ? `${key}-${i}` : `${i}-${key}`
}

/** ownerKeys are the keys of the agreement test: 2,000+ of many shapes. */
function ownerKeys(): string[] {
  const keys: string[] = ['']
  for (let i = 0; i < 1000; i++) keys.push(`key-${i}`)
  for (let i = 0; i < 300; i++) keys.push(`user:${i * 7919}`)
  for (let i = 0; i < 200; i++) keys.push(`ключ-${i}`)
  for (let i = 0; i < 200; i++) keys.push(`键${i}`)
  for (let i = 0; i < 200; i++) keys.push(`🔑${i}`)
  for (let i = 0; i < 50; i++) keys.push(`${'x'.repeat(200)}/${i} +%?&#`)
  for (const key of SPECIAL_KEYS) for (let i = 0; i < 6; i++) keys.push(variant(key, i))
  return keys
}

describe('a mixed cluster: a Go groupcache node, a Node node on gc.listen() and a Fastify app', () => {
  let skipReason: string | undefined
  let go: Member
  let listen: Member
  let fastify: Member
  let members: Member[] = []
  let ring: Ring

  const skipped = (t: TestContext): boolean => {
    if (skipReason === undefined) return false
    t.skip(skipReason)
    return true
  }
  const ownerOf = (key: string): Member => {
    const url = ring.owner(key)
    const member = members.find((m) => m.url === url)
    assert.ok(member, `no member owns ${JSON.stringify(key)}`)
    return member
  }
  const keyOwnedBy = (owner: Member, make: (i: number) => string): string => {
    for (let i = 0; i < 10_000; i++) {
      const key = make(i)
      if (ownerOf(key) === owner) return key
    }
    throw new Error(`no key owned by ${owner.kind}`)
  }
  const countersOfAll = (): Promise<Counters[]> => Promise.all(members.map((m) => m.counters()))
  const ok = (key: string): GetOutcome => ({ ok: true, value: `go:${key}` })

  before(async () => {
    skipReason = await buildGo()
    if (skipReason !== undefined) return
    const ports = await reservePorts(3)
    const urls = urlsFor(ports)
    ring = new Ring(urls)
    // The ring gives the empty key one owner; make it the Go node (so that a
    // Node member can ask Go for it). Roles follow ports; the peer list is
    // the same, in the same order, on every node.
    const goIndex = urls.indexOf(ring.owner('') as string)
    const [listenIndex, fastifyIndex] = [0, 1, 2].filter((i) => i !== goIndex) as [number, number]
    const starting = [
      startGo(ports[goIndex] as number, urls[goIndex] as string, urls),
      startListenNode(ports[listenIndex] as number, urls[listenIndex] as string, urls),
      startFastifyNode(ports[fastifyIndex] as number, urls[fastifyIndex] as string, urls),
    ]
    const settled = await Promise.allSettled(starting)
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
    if (failed !== undefined) {
      await stopChildren(settled.map((s) => (s.status === 'fulfilled' ? s.value.child : undefined)))
      throw failed.reason
    }
    ;[go, listen, fastify] = settled.map((s) => (s as PromiseFulfilledResult<Member>).value) as [Member, Member, Member]
    members = [go, listen, fastify]
  })

  after(async () => {
    await stopChildren(members.map((m) => m.child))
  })

  test('every node computes the same owner for 2,000+ keys, unicode and special keys included', async (t) => {
    if (skipped(t)) return
    const keys = ownerKeys()
    assert.ok(keys.length >= 2000)
    const [byGo, byListen, byFastify] = (await Promise.all(members.map((m) => m.owners(keys)))) as [string[], string[], string[]]
    const disagree = keys.filter((_, i) => !(byGo[i] === byListen[i] && byListen[i] === byFastify[i]))
    const agree = keys.length - disagree.length
    const owned = members.map((m) => `${m.kind} ${byGo.filter((o) => o === m.url).length}`).join(', ')
    t.diagnostic(`${agree}/${keys.length} keys agree on all 3 nodes (owned: ${owned})`)
    assert.deepEqual(disagree.slice(0, 10), [], `${disagree.length} keys disagree`)
    assert.deepEqual(
      byListen,
      keys.map((k) => ring.owner(k)),
      "the nodes agree with the test's ring too",
    )
    for (const m of members) assert.ok(byGo.includes(m.url), `${m.kind} owns some keys`)
  })

  test('300 concurrent gets over 50 keys, spread over all three nodes, load each key exactly once, on its owner', async (t) => {
    if (skipped(t)) return
    // `slow:` keys take 200 ms to load on every node, so the gets overlap.
    const keys = Array.from({ length: 50 }, (_, i) => `slow:b-${i}`)
    const before = await countersOfAll()
    const answers = await Promise.all(
      Array.from({ length: 300 }, (_, i) => {
        const key = keys[i % keys.length] as string
        const member = members[i % members.length] as Member
        return member.get(key).then((answer) => ({ key, member, answer }))
      }),
    )
    for (const { key, member, answer } of answers) assert.deepEqual(answer, ok(key), `${member.kind} asked for ${key}`)
    const after = await countersOfAll()
    for (const key of keys) {
      const loads = after.map((c) => c.loads[key] ?? 0)
      assert.deepEqual(
        loads,
        members.map((m) => (m === ownerOf(key) ? 1 : 0)),
        `loads of ${key} on go, listen, fastify`,
      )
    }
    const perNode = after.map((c) => keys.reduce((n, k) => n + (c.loads[k] ?? 0), 0))
    assert.equal(
      perNode.reduce((a, b) => a + b, 0),
      keys.length,
    )
    members.forEach((m, i) => {
      assert.equal(perNode[i], keys.filter((k) => ownerOf(k) === m).length, `${m.kind} loaded the keys it owns`)
      assert.equal(after[i]!.peerErrors, before[i]!.peerErrors, `${m.kind} had no peer errors`)
    })
    const peerLoads = members.map((m, i) => `${m.kind} ${after[i]!.peerLoads - before[i]!.peerLoads}`).join(', ')
    t.diagnostic(
      `${perNode.reduce((a, b) => a + b, 0)} loads for ${keys.length} keys and 300 gets ` +
        `(go ${perNode[0]}, listen ${perNode[1]}, fastify ${perNode[2]}); peer loads: ${peerLoads}`,
    )
  })

  test('getMany on a Node node: one GET per key to the Go owner, a batch to the Node owner, each key loaded once on its owner', async (t) => {
    if (skipped(t)) return
    const keys = Array.from({ length: 120 }, (_, i) => `many:${i}`)
    const before = await countersOfAll()
    const found = (await listen.call!({ op: 'getMany', keys })) as Array<[string, string]>
    assert.deepEqual(
      found,
      keys.map((key) => [key, `go:${key}`]),
    )
    const after = await countersOfAll()
    const owned = (m: Member): number => keys.filter((k) => ownerOf(k) === m).length
    for (const key of keys) {
      assert.deepEqual(
        after.map((c) => c.loads[key] ?? 0),
        members.map((m) => (m === ownerOf(key) ? 1 : 0)),
        `loads of ${key}`,
      )
    }
    // Go counts a request only once it has parsed a group and a key: a batch
    // (POST {group}) would be a 400 it does not count. One per key it owns
    // means per-key GETs reached it.
    assert.equal(after[0]!.serverRequests - before[0]!.serverRequests, owned(go), 'Go served one GET per key it owns')
    assert.equal(after[2]!.serverRequests - before[2]!.serverRequests, owned(fastify), 'Fastify served each key it owns once')
    members.forEach((m, i) => assert.equal(after[i]!.peerErrors, before[i]!.peerErrors, `${m.kind} had no peer errors`))
    t.diagnostic(`120 keys: go ${owned(go)}, listen ${owned(listen)}, fastify ${owned(fastify)}`)
  })

  test('special keys round-trip from each Node node to the Go owner and from the Go node to each Node owner', async (t) => {
    if (skipped(t)) return
    const variantOwnedBy = (owner: Member, key: string): string => keyOwnedBy(owner, (i) => variant(key, i))
    const before = await countersOfAll()
    const onGo: string[] = []
    const onNode: [Member, string][] = []
    for (const special of SPECIAL_KEYS) {
      const key = variantOwnedBy(go, special)
      onGo.push(key)
      // Both Node nodes ask; the Go owner loads once and serves the second from its cache.
      for (const asker of [listen, fastify])
        assert.deepEqual(await asker.get(key), ok(key), `${asker.kind} asked Go for ${JSON.stringify(key)}`)
      for (const owner of [listen, fastify]) {
        const nodeKey = variantOwnedBy(owner, special)
        onNode.push([owner, nodeKey])
        assert.deepEqual(await go.get(nodeKey), ok(nodeKey), `Go asked ${owner.kind} for ${JSON.stringify(nodeKey)}`)
      }
    }
    const [g, l, f] = (await countersOfAll()) as [Counters, Counters, Counters]
    // Each owner's counter shows exactly the key that was asked for, once;
    // no asker loaded it itself.
    for (const key of onGo) {
      assert.deepEqual([g.loads[key], l.loads[key], f.loads[key]], [1, undefined, undefined], `loads of ${JSON.stringify(key)}`)
    }
    for (const [owner, key] of onNode) {
      const want = members.map((m) => (m === owner ? 1 : undefined))
      assert.deepEqual([g.loads[key], l.loads[key], f.loads[key]], want, `loads of ${JSON.stringify(key)}`)
    }
    ;[g, l, f].forEach((c, i) => assert.equal(c.peerErrors, before[i]!.peerErrors, `${members[i]!.kind} had no peer errors`))
    const exact = onGo.filter((k) => SPECIAL_KEYS.includes(k)).length + onNode.filter(([, k]) => SPECIAL_KEYS.includes(k)).length
    t.diagnostic(
      `${SPECIAL_KEYS.length} special keys: ${onGo.length} Go-owned variants asked by both Node nodes, ` +
        `${onNode.length} Node-owned variants asked by Go (${exact} of them the bare key)`,
    )
  })

  test('a traced Node node sends the Go owner a traceparent, which it ignores: the same answer, one load, no peer error', async (t) => {
    if (skipped(t)) return
    const key = keyOwnedBy(go, (i) => `traced-${i}`)
    const before = await countersOfAll()
    const answer = (await listen.call?.({ op: 'traced', key })) as { outcome: GetOutcome; spans: SpanRecord[] }
    assert.deepEqual(answer.outcome, ok(key))
    const fetch = answer.spans.find((s) => s.name === 'groupcache.fetch')
    assert.deepEqual(fetch?.attributes, { 'groupcache.group': GROUP, 'groupcache.peer': go.url, 'groupcache.outcome': 'ok' })
    const after = await countersOfAll()
    assert.deepEqual(
      after.map((c) => c.loads[key]),
      [1, undefined, undefined],
    )
    assert.equal(after[1]!.peerErrors, before[1]!.peerErrors)
  })

  test('the empty key round-trips from a Node node to the Go owner and from a Go node to a Node owner', async (t) => {
    if (skipped(t)) return
    assert.equal(ownerOf(''), go, 'the cluster was laid out for Go to own the empty key')
    assert.deepEqual(await fastify.get(''), ok(''))
    const [g, l, f] = (await countersOfAll()) as [Counters, Counters, Counters]
    assert.deepEqual([g.loads[''], l.loads[''], f.loads['']], [1, undefined, undefined])

    // The ring fixes one owner for '', so the other direction needs another
    // ring: a second Go node whose peers are the listen node and itself, on
    // a port that makes the listen node the owner of ''. The listen node
    // answers it as it answers any peer: from its caches or its own loader.
    let go2: Member | undefined
    try {
      // A fixed listen node's points can make such ports rare (one in
      // hundreds), so the whole span is searched, not a few random ports.
      const port = await reservePortWhere((candidate) => new Ring([listen.url, `http://127.0.0.1:${candidate}`]).owner('') === listen.url)
      const self = `http://127.0.0.1:${port}`
      go2 = await startGo(port, self, [listen.url, self])
      const asked = (await listen.counters()).serverRequests
      assert.deepEqual(await go2.get(''), ok(''))
      const [g2, l2] = await Promise.all([go2.counters(), listen.counters()])
      assert.equal(l2.loads[''], 1, 'the listen node loaded the empty key')
      assert.equal(l2.serverRequests, asked + 1)
      assert.equal(g2.loads[''], undefined, 'the second Go node did not load it')
      assert.deepEqual([g2.peerLoads, g2.peerErrors], [1, 0])
    } finally {
      await go2?.child.stop()
    }
  })

  test("Go's server reads '+' in a path as '+', so a Go client's space reaches a Go owner as '+'; ours reads it as a space", async (t) => {
    if (skipped(t)) return
    // Go's client escapes with url.QueryEscape: key "a b" travels as "a+b".
    // Go's server does not turn '+' back into a space, so Go to Go the owner
    // loads "a+b" for a caller that asked for "a b". Our server form-decodes.
    const path = `/_groupcache/${GROUP}/a+b`
    const valueOf = (body: Buffer): string => Buffer.from(decodeGetResponse(body).value).toString('utf8')
    const byGo = await rawRequest(go.port, path)
    assert.equal(byGo.status, 200)
    assert.equal(valueOf(byGo.body), 'go:a+b')
    for (const node of [listen, fastify]) {
      const byNode = await rawRequest(node.port, path)
      assert.equal(byNode.status, 200)
      assert.equal(valueOf(byNode.body), 'go:a b', `${node.kind} read '+' as a space`)
    }
    // Go answered for the key "a+b" (forwarding to its owner, as Go does);
    // each Node server answered "a b" without asking Go (ours never
    // forwards): by loading it, or, if the other Node node owns it on its
    // ring, maybe by taking that node's copy (a peek: memory only).
    const all = await countersOfAll()
    assert.deepEqual(
      all.map((c) => c.loads['a+b']),
      members.map((m) => (m === ownerOf('a+b') ? 1 : undefined)),
    )
    const ab = all.map((c) => c.loads['a b'])
    assert.equal(ab[0], undefined, 'Go never saw "a b"')
    assert.ok(ab[1] === 1 && (ab[2] === 1 || ab[2] === undefined), `loads of "a b": ${JSON.stringify(ab)}`)
  })

  test("Go's server answers DELETE and PUT like a GET, loading the key (or fetching it from its owner), and a group DELETE with 400", async (t) => {
    if (skipped(t)) return
    // What our remove, set and clear send a Go peer: Go's HTTPPool ignores
    // the method, so none of them drops anything there.
    const keyPath = (key: string): string => `/_groupcache/${GROUP}/${encodeURIComponent(key)}`
    const valueOf = (body: Buffer): string => Buffer.from(decodeGetResponse(body).value).toString('utf8')
    const onGo = keyOwnedBy(go, (i) => `del:go-${i}`)
    const onListen = keyOwnedBy(listen, (i) => `del:listen-${i}`)
    const putOnGo = keyOwnedBy(go, (i) => `put:go-${i}`)
    for (const [method, key] of [
      ['DELETE', onGo],
      ['DELETE', onListen],
      ['PUT', putOnGo],
    ] as const) {
      const answer = await rawRequest(go.port, keyPath(key), { method })
      assert.equal(answer.status, 200, `${method} ${key}`)
      assert.equal(valueOf(answer.body), `go:${key}`)
    }
    const clear = await rawRequest(go.port, `/_groupcache/${GROUP}`, { method: 'DELETE', headers: { 'x-groupcache-generation': '2' } })
    assert.equal(clear.status, 400)
    const [g, l] = (await countersOfAll()) as [Counters, Counters]
    assert.deepEqual([g.loads[onGo], g.loads[putOnGo], g.loads[onListen], l.loads[onListen]], [1, 1, undefined, 1])
  })

  test('remove, set and clear update the Node nodes, report the Go node, and never make it load', async (t) => {
    if (skipped(t)) return
    const call = listen.call!
    const onGo = keyOwnedBy(go, (i) => `inv:go-${i}`)
    const onFastify = keyOwnedBy(fastify, (i) => `inv:fastify-${i}`)
    assert.deepEqual(await fastify.get(onFastify), ok(onFastify))
    const before = await countersOfAll()
    const outcomes = [
      await call({ op: 'remove', key: onGo }),
      await call({ op: 'remove', key: onFastify }),
      await call({ op: 'set', key: onGo, value: 'manual' }),
      await call({ op: 'set', key: onFastify, value: 'manual' }),
      await call({ op: 'clear' }),
    ] as GetOutcome[]
    for (const o of outcomes) {
      assert.equal(o.ok, false)
      assert.equal((o as { code?: string }).code, 'ERR_GROUPCACHE_PEERS_UNREACHABLE')
      assert.match(
        (o as { message: string }).message,
        new RegExp(`failed on 1 peer\\(s\\): ${go.url.replaceAll('.', '\\.')} \\(.*a Go groupcache node`),
      )
    }
    const after = await countersOfAll()
    const [g0, , f0] = before as [Counters, Counters, Counters]
    const [g1, , f1] = after as [Counters, Counters, Counters]
    assert.equal(g1.serverRequests, g0.serverRequests, 'no PUT or DELETE reached the Go node as a GET')
    assert.equal(g1.loads[onGo], g0.loads[onGo])
    // The Node owner did take the set (then the clear dropped it): Fastify
    // loads the key afresh, once.
    assert.deepEqual(await fastify.get(onFastify), ok(onFastify))
    assert.equal((f1.loads[onFastify] ?? 0) + 1, (await fastify.counters()).loads[onFastify])
    assert.equal(f0.loads[onFastify], 1)
  })

  test("a Go owner's loader failure is a plain 500 to a Node caller, which loads locally and fails with ERR_GROUPCACHE_LOAD_FAILED", async (t) => {
    if (skipped(t)) return
    // What a Node caller gets from a failing Go owner: no x-groupcache-error marker.
    const probe = keyOwnedBy(go, (i) => `fail:probe-${i}`)
    const raw = await rawRequest(go.port, `/_groupcache/${GROUP}/${encodeURIComponent(probe)}`)
    assert.equal(raw.status, 500)
    assert.equal(raw.headers['x-groupcache-error'], undefined)
    assert.match(raw.body.toString(), /^go loader failed for fail:probe-/)

    for (const asker of [listen, fastify]) {
      const key = keyOwnedBy(go, (i) => `fail:go-${asker.kind}-${i}`)
      const [g0, a0] = await Promise.all([go.counters(), asker.counters()])
      const answer = await asker.get(key)
      assert.equal(answer.ok, false)
      assert.equal(answer.ok === false && answer.code, 'ERR_GROUPCACHE_LOAD_FAILED')
      assert.match(answer.ok === false ? answer.message : '', /node loader failed for fail:go-/, 'the error is its own loader’s')
      const [g, l, f] = (await countersOfAll()) as [Counters, Counters, Counters]
      const a = asker === listen ? l : f
      // One load on the Go owner (which failed), one on the asker (which failed too), none elsewhere.
      assert.deepEqual([g.loads[key], l.loads[key], f.loads[key]], asker === listen ? [1, 1, undefined] : [1, undefined, 1])
      assert.equal(g.serverRequests - g0.serverRequests, 1)
      assert.equal(g.localLoadErrs - g0.localLoadErrs, 1)
      assert.equal(a.peerErrors - a0.peerErrors, 1, `${asker.kind} counted a peer error`)
      assert.equal(a.localLoadErrs - a0.localLoadErrs, 1, `${asker.kind} counted its own load error`)
    }
  })

  test("a Node owner's loader failure is an error to the Go caller, which falls back to its own getter: /get answers 500", async (t) => {
    if (skipped(t)) return
    // What a Go caller gets from a failing Node owner: a 500 (with our marker, which Go ignores).
    const probe = keyOwnedBy(listen, (i) => `fail:probe-${i}`)
    const raw = await rawRequest(listen.port, `/_groupcache/${GROUP}/${encodeURIComponent(probe)}`)
    assert.equal(raw.status, 500)
    assert.equal(raw.headers['x-groupcache-error'], 'ERR_GROUPCACHE_LOAD_FAILED')

    for (const owner of [listen, fastify]) {
      const key = keyOwnedBy(owner, (i) => `fail:${owner.kind}-${i}`)
      const [g0, o0] = await Promise.all([go.counters(), owner.counters()])
      const answer = await go.get(key)
      assert.equal(answer.ok, false)
      assert.match(answer.ok === false ? answer.message : '', /^500: go loader failed for fail:/, "the error is Go's own getter's")
      const [g, l, f] = (await countersOfAll()) as [Counters, Counters, Counters]
      const o = owner === listen ? l : f
      // One load on the Node owner (which failed), one on Go (which failed too), none elsewhere.
      assert.deepEqual([g.loads[key], l.loads[key], f.loads[key]], owner === listen ? [1, 1, undefined] : [1, undefined, 1])
      assert.equal(g.peerErrors - g0.peerErrors, 1, 'Go counted a peer error')
      assert.equal(g.localLoadErrs - g0.localLoadErrs, 1, 'Go counted its own load error')
      assert.equal(o.serverRequests - o0.serverRequests, 1)
      assert.equal(o.localLoadErrs - o0.localLoadErrs, 1)
    }
  })

  test("a Go caller reads a Node owner's answer that carries an expiry and a stale window (fields 3 and 4)", async (t) => {
    if (skipped(t)) return
    for (const owner of [listen, fastify]) {
      const key = keyOwnedBy(owner, (i) => `stale:${owner.kind}-${i}`)
      const raw = await rawRequest(owner.port, `/_groupcache/${GROUP}/${encodeURIComponent(key)}`)
      assert.equal(raw.status, 200)
      const msg = decodeGetResponse(raw.body)
      assert.ok(msg.expire !== undefined && msg.expire > 0, 'field 3 is there')
      assert.equal(msg.staleUntil, msg.expire + 3_600_000, 'field 4 is there')
      assert.deepEqual(await go.get(key), ok(key))
      const g = await go.counters()
      assert.equal(g.loads[key], undefined, 'Go read the answer instead of loading the key itself')
    }
  })

  test('a popular key gets a hot copy on its non-owner, Go or Node, and then its owner sees no more requests for it', async (t) => {
    if (skipped(t)) return
    const GETS = 200
    const MORE = 20
    const pairs: [Member, Member][] = [
      [listen, go],
      [fastify, go],
      [go, listen],
      [go, fastify],
    ]
    for (const [asker, owner] of pairs) {
      const key = keyOwnedBy(owner, (i) => `hot:${asker.kind}-${owner.kind}-${i}`)
      const [a0, o0] = await Promise.all([asker.counters(), owner.counters()])
      // Both sides keep 1 in 10 peer-fetched values at random: after 200
      // gets the chance that none was kept is 0.9^200, about 7e-10.
      for (let n = 0; n < GETS; n++) assert.deepEqual(await asker.get(key), ok(key))
      const [a1, o1] = await Promise.all([asker.counters(), owner.counters()])
      assert.ok(a1.hotItems > a0.hotItems, `${asker.kind} keeps a hot copy of ${key}`)
      const fetched = o1.serverRequests - o0.serverRequests
      for (let n = 0; n < MORE; n++) assert.deepEqual(await asker.get(key), ok(key))
      const [a2, o2] = await Promise.all([asker.counters(), owner.counters()])
      assert.equal(o2.serverRequests, o1.serverRequests, `${owner.kind} got no request once ${asker.kind} had a hot copy`)
      assert.equal(a2.hotHits - a1.hotHits, MORE, `${asker.kind} served the last ${MORE} gets from its hot cache`)
      assert.equal(a2.cacheHits - a1.cacheHits, MORE)
      assert.equal(o2.loads[key], 1, `${owner.kind} loaded ${key} once`)
      assert.equal(a2.loads[key], undefined, `${asker.kind} never loaded ${key}`)
      assert.equal(a2.peerErrors, a0.peerErrors)
      t.diagnostic(
        `${asker.kind} asking ${owner.kind}: hot after ${fetched} peer requests in ${GETS} gets; ` +
          `${MORE} more gets: +0 requests on ${owner.kind}, +${a2.hotHits - a1.hotHits} hot hits on ${asker.kind} (hot items ${a2.hotItems})`,
      )
    }
  })
})
