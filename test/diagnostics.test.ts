import assert from 'node:assert/strict'
import { AsyncLocalStorage } from 'node:async_hooks'
import { channel, subscribe, type TracingChannel, tracingChannel, unsubscribe } from 'node:diagnostics_channel'
import { describe, test } from 'node:test'
import {
  FETCH_CHANNEL,
  FETCH_MANY_CHANNEL,
  fetchManyTracing,
  fetchTracing,
  GET_CHANNEL,
  Groupcache,
  getTracing,
  LOAD_CHANNEL,
  type LoadEvent,
  loadChannel,
  loadTracing,
  NotFoundError,
  PEER_CHANNEL,
  type PeerEvent,
  peerChannel,
  SERVE_CHANNEL,
  SERVE_MANY_CHANNEL,
  serveManyTracing,
  serveTracing,
} from '../src/index.js'
import { keyOwnedBy, startLocalNodes } from './helpers/local.js'
import { reservePorts } from './helpers/ports.js'
import { rawRequest } from './helpers/raw.js'

/** listenOn collects what a diagnostics channel publishes while `fn` runs. */
async function listenOn<T>(name: string, fn: () => Promise<unknown>): Promise<T[]> {
  const seen: T[] = []
  const onMessage = (message: unknown): void => {
    seen.push(message as T)
  }
  subscribe(name, onMessage)
  try {
    await fn()
  } finally {
    unsubscribe(name, onMessage)
  }
  return seen
}

describe('diagnostics channels', () => {
  test('groupcache:load reports each load run here, with its duration and any error', async () => {
    const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (k) => {
        if (k === 'bad') throw new Error('no')
        return k
      },
    })
    const events = await listenOn<LoadEvent>('groupcache:load', async () => {
      await g.get('a')
      await g.get('a')
      await assert.rejects(g.get('bad'))
    })
    assert.deepEqual(
      events.map((e) => [e.group, e.key, e.error === undefined]),
      [
        ['g', 'a', true],
        ['g', 'bad', false],
      ],
    )
    assert.ok(events.every((e) => e.durationMs >= 0))
    await gc.close()
  })

  test('groupcache:peer reports each fetch from an owner: ok, verdict or error', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2)
    try {
      const groups = nodes.map((gc) =>
        gc.newGroup<string>({
          name: 'g',
          maxBytes: 1 << 20,
          codec: 'string',
          promote: false,
          load: (k) => {
            if (k.startsWith('nf')) throw new NotFoundError('nope')
            return k
          },
        }),
      )
      const ok = keyOwnedBy(nodes[0]!, urls[1]!, 'ok')
      const nf = keyOwnedBy(nodes[0]!, urls[1]!, 'nf')
      const events = await listenOn<PeerEvent>('groupcache:peer', async () => {
        await groups[0]!.get(ok)
        await assert.rejects(groups[0]!.get(nf))
        await nodes[1]!.close()
        await groups[0]!.get(keyOwnedBy(nodes[0]!, urls[1]!, 'down'))
      })
      assert.deepEqual(
        events.map((e) => [e.peer, e.outcome]),
        [
          [urls[1], 'ok'],
          [urls[1], 'verdict'],
          [urls[1], 'error'],
        ],
      )
    } finally {
      await closeAll()
    }
  })
})

describe('GET {basePath}_stats', () => {
  test("answers this node's view as JSON, behind the same secret", async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ secret: 's' }))
    try {
      const g = nodes[0]!.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => k })
      nodes[1]!.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => k })
      await g.get(keyOwnedBy(nodes[0]!, urls[0]!))
      const port = Number(new URL(urls[0]!).port)
      assert.equal((await rawRequest(port, '/_groupcache/_stats')).status, 401)
      const res = await rawRequest(port, '/_groupcache/_stats', { headers: { authorization: 'Bearer s' } })
      assert.equal(res.status, 200)
      assert.match(String(res.headers['content-type']), /^application\/json/)
      const body = JSON.parse(res.body.toString()) as ReturnType<Groupcache['stats']>
      assert.equal(body.self, urls[0])
      assert.deepEqual(
        body.peers.map((p) => [p.peer, p.self, p.state]),
        [
          [urls[0], true, 'closed'],
          [urls[1], false, 'closed'],
        ],
      )
      assert.equal(body.groups.g?.stats.localLoads, 1)
      assert.equal(body.groups.g?.main.items, 1)
      assert.deepEqual(body, nodes[0]!.stats())
    } finally {
      await closeAll()
    }
  })
})

describe('the logger', () => {
  test('hears a failing peer once when it is skipped and once when it answers again', async () => {
    const lines: Array<[string, object, string | undefined]> = []
    const logger = {
      warn: (obj: object, msg?: string) => void lines.push(['warn', obj, msg]),
      info: (obj: object, msg?: string) => void lines.push(['info', obj, msg]),
    }
    // A port that refuses connections until the test starts a server there
    // (reservePorts: one no other process's listen(0) is given meanwhile).
    const [port] = (await reservePorts(1)) as [number]
    const peer = `http://127.0.0.1:${port}`
    let now = 1_000
    const gc = new Groupcache({
      self: 'http://127.0.0.1:1',
      peers: ['http://127.0.0.1:1', peer],
      logger,
      now: () => now,
      breaker: { failures: 2, backoffMs: 100 },
    })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', promote: false, load: (k) => k })
    for (let i = 0; i < 6; i++) await g.get(keyOwnedBy(gc, peer, `k${i}-`))
    assert.deepEqual(
      lines.map(([level, , msg]) => [level, msg]),
      [['warn', 'groupcache: peer skipped after repeated failures']],
    )
    assert.equal((lines[0]![1] as { peer: string }).peer, peer)
    const { Groupcache: Owner } = await import('../src/index.js')
    const owner = new Owner({ self: peer, peers: ['http://127.0.0.1:1', peer] })
    owner.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => `owner:${k}` })
    await owner.listen({ host: '127.0.0.1', port })
    try {
      now += 100
      const key = keyOwnedBy(gc, peer, 'back-')
      assert.equal(await g.get(key), `owner:${key}`)
      assert.deepEqual(
        lines.map(([level]) => level),
        ['warn', 'info'],
      )
    } finally {
      await owner.close()
      await gc.close()
    }
  })
})

/** Seen is one event heard on a tracing channel: which event, and a copy of its message then. */
type Seen = [event: string, message: Record<string, unknown>]

/**
 * traceOn subscribes to every event of a tracing channel while `fn` runs,
 * keeping a snapshot of the message at each one, and lets `onStart` act on
 * the start message (as a tracer would).
 */
async function traceOn<M extends object>(
  channel: TracingChannel<unknown, M>,
  fn: () => Promise<unknown>,
  onStart?: (message: M) => void,
): Promise<Seen[]> {
  const seen: Seen[] = []
  const at = (event: string) => (message: M) => {
    if (event === 'start') onStart?.(message)
    seen.push([event, { ...message } as Record<string, unknown>])
  }
  const handlers = { start: at('start'), end: at('end'), asyncStart: at('asyncStart'), asyncEnd: at('asyncEnd'), error: at('error') }
  channel.subscribe(handlers)
  try {
    await fn()
  } finally {
    channel.unsubscribe(handlers)
  }
  return seen
}

describe('tracing channels', () => {
  test('the channel names are the named constants, and the plain channels keep theirs', () => {
    assert.deepEqual(
      [GET_CHANNEL, FETCH_CHANNEL, LOAD_CHANNEL, SERVE_CHANNEL, FETCH_MANY_CHANNEL, SERVE_MANY_CHANNEL, PEER_CHANNEL],
      [
        'groupcache:get',
        'groupcache:fetch',
        'groupcache:load',
        'groupcache:serve',
        'groupcache:fetchMany',
        'groupcache:serveMany',
        'groupcache:peer',
      ],
    )
    assert.equal(getTracing.start, tracingChannel(GET_CHANNEL).start)
    assert.equal(fetchManyTracing.start, tracingChannel(FETCH_MANY_CHANNEL).start)
    assert.equal(serveManyTracing.start, tracingChannel(SERVE_MANY_CHANNEL).start)
    assert.equal(loadChannel, channel('groupcache:load'))
    assert.equal(peerChannel, channel('groupcache:peer'))
  })

  test('groupcache:get traces each get with where its value came from: a load, then a hit', async () => {
    const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => `v:${k}` })
    const values: unknown[] = []
    const seen = await traceOn(getTracing, async () => {
      values.push(await g.get('a'), await g.getWithSource('a'))
    })
    assert.deepEqual(values, ['v:a', { value: 'v:a', source: 'hit' }])
    assert.deepEqual(
      seen.map(([event]) => event),
      ['start', 'end', 'asyncStart', 'asyncEnd', 'start', 'end', 'asyncStart', 'asyncEnd'],
    )
    assert.deepEqual(
      seen.filter(([event]) => event === 'asyncEnd').map(([, m]) => [m.self, m.group, m.key, m.source, m.owner]),
      [
        ['http://127.0.0.1:1', 'g', 'a', 'load', 'http://127.0.0.1:1'],
        ['http://127.0.0.1:1', 'g', 'a', 'hit', undefined],
      ],
    )
    await gc.close()
  })

  test('groupcache:get reports a failed get on its error event, and a bad key too', async () => {
    const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: () => {
        throw new NotFoundError('nope')
      },
    })
    const seen = await traceOn(getTracing, async () => {
      await assert.rejects(g.get('a'), { code: 'ERR_GROUPCACHE_NOT_FOUND' })
      await assert.rejects(g.get(42 as unknown as string), { code: 'ERR_GROUPCACHE_INVALID_KEY' })
    })
    assert.deepEqual(
      seen.filter(([event]) => event === 'error').map(([, m]) => (m.error as { code: string }).code),
      ['ERR_GROUPCACHE_NOT_FOUND', 'ERR_GROUPCACHE_INVALID_KEY'],
    )
    await gc.close()
  })

  test("groupcache:load runs the loader inside the start subscriber's wrap, so a tracer's context reaches it", async () => {
    const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
    const store = new AsyncLocalStorage<string>()
    let inside: string | undefined
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (k) => {
        inside = store.getStore()
        return k
      },
    })
    const seen = await traceOn(
      loadTracing,
      () => g.get('a'),
      (m) => {
        m.wrap = (operation) => store.run(`span of ${m.key}`, operation)
      },
    )
    assert.equal(inside, 'span of a')
    assert.deepEqual(
      seen.filter(([event]) => event === 'start').map(([, m]) => [m.group, m.key, m.forPeer]),
      [['g', 'a', false]],
    )
    await gc.close()
  })

  test('a store bound to groupcache:get.start (bindStore) is current inside the get, down to the loader', async () => {
    const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
    const store = new AsyncLocalStorage<string>()
    let inside: string | undefined
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (k) => {
        inside = store.getStore()
        return k
      },
    })
    getTracing.start.bindStore(store, (m) => `get of ${m.key}`)
    try {
      await g.get('a')
    } finally {
      getTracing.start.unbindStore(store)
    }
    assert.equal(inside, 'get of a')
    await gc.close()
  })

  test("groupcache:fetch sends a subscriber's headers to the owner, whose groupcache:serve hears them and its load says it was for a peer", async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ secret: 's3cret' }))
    try {
      const groups = nodes.map((gc) =>
        gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', promote: false, load: (k) => `v:${k}` }),
      )
      const key = keyOwnedBy(nodes[0]!, urls[1]!)
      let served: Seen[] = []
      let loads: Seen[] = []
      const fetched = await traceOn(
        fetchTracing,
        async () => {
          served = await traceOn(serveTracing, async () => {
            loads = await traceOn(loadTracing, () => groups[0]!.get(key))
          })
        },
        (m) => {
          m.headers.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
          // A subscriber cannot replace the secret, however it spells the name: the fetch still succeeds.
          m.headers.Authorization = 'Bearer wrong'
        },
      )
      assert.deepEqual(
        fetched.filter(([event]) => event === 'asyncEnd').map(([, m]) => [m.self, m.peer, m.key, m.error]),
        [[urls[0], urls[1], key, undefined]],
      )
      const serve = served.find(([event]) => event === 'start')?.[1]
      assert.equal(serve?.self, urls[1])
      assert.equal(serve?.key, key)
      assert.equal((serve?.headers as Record<string, string>).traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')
      assert.deepEqual(
        loads.filter(([event]) => event === 'start').map(([, m]) => [m.self, m.forPeer]),
        [[urls[1], true]],
      )
      assert.equal(groups[0]!.stats.peerLoads, 1)
    } finally {
      await closeAll()
    }
  })

  test("groupcache:fetchMany traces one owner's batch and sends a subscriber's headers with it; the owner's groupcache:serveMany hears them", async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ secret: 's3cret', handoffMs: 0 }))
    try {
      const groups = nodes.map((gc) =>
        gc.newGroup<string>({
          name: 'g',
          maxBytes: 1 << 20,
          codec: 'string',
          promote: false,
          load: (k) => {
            if (k.startsWith('nf')) throw new NotFoundError('no')
            return `v:${k}`
          },
        }),
      )
      const keys = [keyOwnedBy(nodes[0]!, urls[1]!, 'a-'), keyOwnedBy(nodes[0]!, urls[1]!, 'b-'), keyOwnedBy(nodes[0]!, urls[1]!, 'nf-')]
      const mine = keyOwnedBy(nodes[0]!, urls[0]!, 'mine-')
      let served: Seen[] = []
      let loads: Seen[] = []
      const fetched = await traceOn(
        fetchManyTracing,
        async () => {
          served = await traceOn(serveManyTracing, async () => {
            loads = await traceOn(loadTracing, () => groups[0]!.getMany([...keys, mine]))
          })
        },
        (m) => {
          m.headers.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
          m.headers.Authorization = 'Bearer wrong'
        },
      )
      // One batch to the one other owner; the local key is no fetch.
      assert.deepEqual(
        fetched.map(([event]) => event),
        ['start', 'end', 'asyncStart', 'asyncEnd'],
      )
      const end = fetched[3]![1]
      assert.deepEqual(
        [end.self, end.group, end.peer, end.keys, end.outcome, end.error],
        [urls[0], 'g', urls[1], keys, 'verdict', undefined],
      )
      const serve = served.find(([event]) => event === 'start')?.[1]
      assert.deepEqual([serve?.self, serve?.group, serve?.keys], [urls[1], 'g', keys])
      assert.equal((serve?.headers as Record<string, string>).traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')
      assert.deepEqual(
        loads
          .filter(([event]) => event === 'start')
          .map(([, m]) => [m.self, m.key, m.forPeer])
          .sort(),
        [...keys.map((key) => [urls[1], key, true]), [urls[0], mine, false]].sort(),
      )
      assert.equal(groups[0]!.stats.peerLoads, 2)
    } finally {
      await closeAll()
    }
  })

  test('groupcache:serve stays silent for a request the endpoint refuses before any group is looked at', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(1, () => ({ secret: 's3cret' }))
    try {
      nodes[0]!.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => k })
      const port = Number(new URL(urls[0]!).port)
      const seen = await traceOn(serveTracing, async () => {
        const res = await rawRequest(port, '/_groupcache/g/k', {
          headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
        })
        assert.equal(res.status, 401)
      })
      assert.deepEqual(seen, [])
    } finally {
      await closeAll()
    }
  })
})
