// group.getMany, loadMany, notFoundTtlMs and batchWindowMs, on one node and
// between nodes in this process (fake transports, or real HTTP on loopback).
// The multi-process acceptance runs are in batch-cluster.test.ts.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { describe, test } from 'node:test'
import { PeerError } from '../src/errors.js'
import {
  AbortedError,
  ClosedError,
  ENTRY_OVERHEAD_BYTES,
  Groupcache,
  InvalidKeyError,
  InvalidOptionError,
  LoadError,
  LoadTimeoutError,
  MAX_BATCH_KEYS,
  NotFoundError,
  type PeerTransport,
  type PeerValue,
} from '../src/index.js'
import { ROOT } from './helpers/child.js'
import { deferred, keyOwnedBy, startLocalNodes } from './helpers/local.js'

const SELF = 'http://127.0.0.1:1'
const OTHER = 'http://127.0.0.1:2'
const THIRD = 'http://127.0.0.1:3'

/** alone is a node that owns every key. */
function alone(options: Partial<ConstructorParameters<typeof Groupcache>[0]> = {}): Groupcache {
  return new Groupcache({ self: SELF, peers: [SELF], ...options })
}

/** until waits, a turn of the event loop at a time, for a condition (at most 10 s). */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in 10 s')
    await new Promise((resolve) => setImmediate(resolve))
  }
}

const value = (key: string): PeerValue => ({ value: Buffer.from(`remote:${key}`), expire: 0, generation: 0 })

/** batchTransport answers fetchMany from a function and records each call's peer and keys. */
function batchTransport(answer: (peer: string, key: string) => PeerValue | Error = (_p, key) => value(key)): PeerTransport & {
  batches: Array<{ peer: string; keys: string[] }>
  singles: string[]
} {
  const batches: Array<{ peer: string; keys: string[] }> = []
  const singles: string[] = []
  return {
    batches,
    singles,
    fetch: async (peer, _group, key) => {
      singles.push(key)
      const a = answer(peer, key)
      if (a instanceof Error) throw a
      return a
    },
    fetchMany: async (peer, _group, keys) => {
      batches.push({ peer, keys: [...keys] })
      return new Map(keys.map((key) => [key, answer(peer, key)]))
    },
  }
}

describe('Group.getMany on the owner', () => {
  test('returns every key found, in the order given, duplicates merged, and leaves out keys not found', async () => {
    const gc = alone()
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (key) => {
        if (key.startsWith('missing')) throw new NotFoundError()
        return `v:${key}`
      },
    })
    const got = await g.getMany(['c', 'a', 'missing-1', 'b', 'a', 'c'])
    assert.deepEqual(
      [...got],
      [
        ['c', 'v:c'],
        ['a', 'v:a'],
        ['b', 'v:b'],
      ],
    )
    assert.equal(g.stats.gets, 4)
    await gc.close()
  })

  test('answers hits from the cache and loads only the misses', async () => {
    const gc = alone()
    const loaded: string[] = []
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (key) => (loaded.push(key), key) })
    await g.get('a')
    const got = await g.getMany(['a', 'b'])
    assert.deepEqual([...got.keys()], ['a', 'b'])
    assert.deepEqual(loaded, ['a', 'b'])
    assert.equal(g.stats.cacheHits, 1)
    await gc.close()
  })

  test("rejects with a failing key's own error, and its key says which", async () => {
    const gc = alone()
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (key) => {
        if (key === 'bad') throw new Error('database is down')
        return key
      },
    })
    await assert.rejects(g.getMany(['ok', 'bad', 'fine']), (err: unknown) => {
      assert.ok(err instanceof LoadError)
      assert.equal(err.key, 'bad')
      assert.match(err.message, /database is down/)
      return true
    })
    // The other keys' loads were not thrown away.
    assert.deepEqual([...(await g.getMany(['ok', 'fine'])).keys()], ['ok', 'fine'])
    assert.equal(g.stats.localLoads, 2)
    await gc.close()
  })

  test('checks every key before loading any, and refuses what is not a list of strings', async () => {
    const gc = alone({ maxKeyBytes: 10 })
    let loads = 0
    const g = gc.newGroup({ name: 'g', maxBytes: 1 << 20, load: () => ++loads })
    await assert.rejects(g.getMany(['a', 'b', 'x'.repeat(11)]), InvalidKeyError)
    await assert.rejects(g.getMany(['a', 42 as unknown as string]), InvalidKeyError)
    await assert.rejects(g.getMany(undefined as unknown as string[]), InvalidKeyError)
    await assert.rejects(g.getMany('abc' as unknown as string[]), InvalidKeyError)
    assert.equal(loads, 0)
    assert.deepEqual(await g.getMany(new Set<string>()), new Map())
    await gc.close()
    await assert.rejects(g.getMany(['a']), ClosedError)
  })

  test('a caller who gives up is rejected with AbortedError; the load goes on for the others', async () => {
    const gc = alone()
    const held = deferred<string>()
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: () => held.promise })
    const controller = new AbortController()
    const leaving = g.getMany(['a', 'b'], { signal: controller.signal })
    const staying = g.get('a')
    controller.abort()
    await assert.rejects(leaving, AbortedError)
    held.resolve('value')
    assert.equal(await staying, 'value')
    await gc.close()
  })
})

describe('loadMany', () => {
  test('loads the misses of one getMany with one call, in chunks of MAX_BATCH_KEYS', async () => {
    const gc = alone()
    const calls: number[] = []
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 64 << 20,
      codec: 'string',
      loadMany: (keys) => (calls.push(keys.length), keys.map((key) => [key, `v:${key}`] as const)),
    })
    const keys = Array.from({ length: 2 * MAX_BATCH_KEYS + 500 }, (_, i) => `k${i}`)
    const got = await g.getMany(keys)
    assert.equal(got.size, keys.length)
    assert.equal(got.get('k7'), 'v:k7')
    assert.deepEqual(calls, [MAX_BATCH_KEYS, MAX_BATCH_KEYS, 500])
    assert.equal(g.stats.localLoads, keys.length)
    await gc.close()
  })

  test('merges single gets of one tick into one call; a lone get uses load when there is one', async () => {
    const gc = alone()
    const batches: string[][] = []
    const singles: string[] = []
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (key) => (singles.push(key), `one:${key}`),
      loadMany: (keys) => (batches.push([...keys]), new Map(keys.map((key) => [key, `many:${key}`]))),
    })
    assert.deepEqual(await Promise.all([g.get('a'), g.get('b'), g.get('c')]), ['many:a', 'many:b', 'many:c'])
    assert.deepEqual(batches, [['a', 'b', 'c']])
    assert.equal(await g.get('d'), 'one:d')
    assert.deepEqual(singles, ['d'])
    await gc.close()
  })

  test('a group with only loadMany loads a lone key with it', async () => {
    const gc = alone()
    const batches: string[][] = []
    const g = gc.newGroup<number>({
      name: 'g',
      maxBytes: 1 << 20,
      loadMany: (keys) => (batches.push([...keys]), new Map([[keys[0] as string, 1]])),
    })
    assert.equal(await g.get('x'), 1)
    assert.deepEqual(batches, [['x']])
    await gc.close()
  })

  test('a key already loading is joined, not loaded again', async () => {
    const gc = alone()
    const batches: string[][] = []
    const held = deferred<void>()
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      loadMany: async (keys) => {
        batches.push([...keys])
        if (keys.includes('slow')) await held.promise
        return new Map(keys.map((key) => [key, `v:${key}`]))
      },
    })
    const slow = g.get('slow')
    await until(() => batches.length === 1)
    const many = g.getMany(['a', 'slow', 'b'])
    await new Promise((resolve) => setImmediate(resolve))
    held.resolve()
    assert.equal(await slow, 'v:slow')
    assert.deepEqual([...(await many).values()], ['v:a', 'v:slow', 'v:b'])
    assert.deepEqual(batches, [['slow'], ['a', 'b']])
    await gc.close()
  })

  test('a key missing from the result is not found; a throw or a result that is no Map fails every key', async () => {
    const gc = alone()
    let mode: 'partial' | 'throw' | 'garbage' = 'partial'
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      loadMany: (keys) => {
        if (mode === 'throw') throw new Error('query failed')
        if (mode === 'garbage') return 42 as unknown as Map<string, string>
        return new Map(keys.includes('a') ? [['a', 'first']] : [])
      },
    })
    const got = await g.getMany(['a', 'b', 'c'])
    assert.deepEqual([...got], [['a', 'first']])
    await assert.rejects(g.get('b'), NotFoundError)
    mode = 'throw'
    await assert.rejects(g.getMany(['d', 'e']), { code: 'ERR_GROUPCACHE_LOAD_FAILED', message: /query failed/ })
    mode = 'garbage'
    await assert.rejects(g.getMany(['f', 'g']), { code: 'ERR_GROUPCACHE_LOAD_FAILED', message: /expected loadMany to return a Map/ })
    assert.equal(g.cacheStats('main').items, 1)
    await gc.close()
  })

  test('ctx.ttlMs set by loadMany applies to every key of the call', async () => {
    let now = 1_000_000
    const gc = alone({ now: () => now })
    let calls = 0
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      loadMany: (keys, ctx) => {
        calls++
        ctx.ttlMs = 1000
        return new Map(keys.map((key) => [key, key]))
      },
    })
    await g.getMany(['a', 'b'])
    now += 999
    await g.getMany(['a', 'b'])
    assert.equal(calls, 1)
    now += 1
    await g.getMany(['a', 'b'])
    assert.equal(calls, 2)
    await gc.close()
  })

  test("the call's signal aborts only when every key's callers left", async () => {
    const gc = alone()
    let seen: AbortSignal | undefined
    const held = deferred<void>()
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      loadMany: async (keys, ctx) => {
        seen = ctx.signal
        await held.promise
        return new Map(keys.map((key) => [key, key]))
      },
    })
    const a = new AbortController()
    const b = new AbortController()
    const first = g.get('a', { signal: a.signal })
    const second = g.get('b', { signal: b.signal })
    await until(() => seen !== undefined)
    a.abort()
    await assert.rejects(first, AbortedError)
    assert.equal(seen?.aborted, false)
    b.abort()
    await assert.rejects(second, AbortedError)
    assert.equal(seen?.aborted, true)
    held.resolve()
    await gc.close()
  })

  test('a loadMany call that outlives loadTimeoutMs fails each of its keys with LoadTimeoutError and its signal aborts; nothing it returns later is kept', {
    timeout: 120_000,
  }, async () => {
    const gc = alone()
    const signals: AbortSignal[] = []
    const late = deferred<Map<string, string>>()
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      loadTimeoutMs: 50,
      loadMany: (keys, ctx) => {
        signals.push(ctx.signal)
        return signals.length === 1 ? late.promise : new Map(keys.map((key) => [key, `fresh ${key}`]))
      },
    })
    const many = g.getMany(['a', 'b', 'c'])
    const one = g.get('a')
    await assert.rejects(many, (err: unknown) => {
      assert.ok(err instanceof LoadTimeoutError, String(err))
      assert.equal(err.code, 'ERR_GROUPCACHE_LOAD_TIMEOUT')
      return true
    })
    await assert.rejects(one, LoadTimeoutError)
    assert.equal(signals.length, 1, 'one loadMany call for the getMany, which the get joined')
    // Each key's load ends on its own timer; the call's signal, once they all have.
    await until(() => signals[0]?.aborted === true)
    assert.ok(signals[0]?.reason instanceof LoadTimeoutError)
    late.resolve(new Map([['a', 'late a']]))
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(
      [...(await g.getMany(['a', 'b']))],
      [
        ['a', 'fresh a'],
        ['b', 'fresh b'],
      ],
    )
    assert.equal(signals.length, 2)
    await gc.close()
  })

  test('newGroup needs load or loadMany, and checks the new options', () => {
    const gc = alone()
    const base = { name: 'g', maxBytes: 1 }
    assert.throws(() => gc.newGroup(base as never), /expected options.load to be a function \(or options.loadMany\)/)
    assert.throws(() => gc.newGroup({ ...base, loadMany: 'no' as never }), InvalidOptionError)
    assert.throws(() => gc.newGroup({ ...base, load: () => 1, notFoundTtlMs: 0 }), /options.notFoundTtlMs/)
    assert.throws(() => gc.newGroup({ ...base, load: () => 1, batchWindowMs: -1 }), /options.batchWindowMs/)
    assert.throws(() => gc.newGroup({ ...base, load: () => 1, batchWindowMs: Infinity }), /options.batchWindowMs/)
    void gc.close()
  })
})

describe('notFoundTtlMs: remembered not found', () => {
  const missingGroup = (gc: Groupcache, options: { notFoundTtlMs?: number } = { notFoundTtlMs: 60_000 }) => {
    const counter = { loads: 0 }
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      ...options,
      load: (key) => {
        counter.loads++
        if (key.startsWith('missing')) throw new NotFoundError(`no user ${key}`)
        return key
      },
    })
    return { g, counter }
  }

  test('the owner answers a key not found again without loading, until the verdict expires', async () => {
    let now = 1_000_000
    const gc = alone({ now: () => now })
    const { g, counter } = missingGroup(gc)
    for (let i = 0; i < 5; i++) await assert.rejects(g.get('missing-1'), { code: 'ERR_GROUPCACHE_NOT_FOUND', message: 'no user missing-1' })
    assert.equal((await g.getMany(['missing-1', 'here'])).size, 1)
    assert.equal(counter.loads, 2, 'one load for the missing key, one for the other')
    now += 60_000
    await assert.rejects(g.get('missing-1'), NotFoundError)
    assert.equal(counter.loads, 3)
    await gc.close()
  })

  test('a remembered verdict counts in maxBytes, and remove, set and clear drop it', async () => {
    const gc = alone()
    const { g, counter } = missingGroup(gc)
    await assert.rejects(g.get('missing-1'), NotFoundError)
    const main = g.cacheStats('main')
    assert.equal(main.items, 1)
    // Counted as any entry is: key and message bytes, plus the per-entry overhead.
    assert.ok(
      main.bytes >= ENTRY_OVERHEAD_BYTES + Buffer.byteLength('missing-1') + Buffer.byteLength('no user missing-1'),
      `${main.bytes} bytes`,
    )
    await g.remove('missing-1')
    await assert.rejects(g.get('missing-1'), NotFoundError)
    assert.equal(counter.loads, 2)
    await g.set('missing-1', 'now it exists')
    assert.equal(await g.get('missing-1'), 'now it exists')
    await g.remove('missing-1')
    await assert.rejects(g.get('missing-1'), NotFoundError)
    await g.clear()
    await assert.rejects(g.get('missing-1'), NotFoundError)
    assert.equal(counter.loads, 4)
    await gc.close()
  })

  test('without notFoundTtlMs nothing is remembered', async () => {
    const gc = alone()
    const { g, counter } = missingGroup(gc, {})
    await assert.rejects(g.get('missing-1'), NotFoundError)
    await assert.rejects(g.get('missing-1'), NotFoundError)
    assert.equal(counter.loads, 2)
    assert.equal(g.cacheStats('main').items, 0)
    await gc.close()
  })

  test('a verdict that began before a remove is not remembered', async () => {
    const gc = alone()
    const held = deferred<void>()
    let loads = 0
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      notFoundTtlMs: 60_000,
      load: async () => {
        loads++
        await held.promise
        throw new NotFoundError()
      },
    })
    const first = g.get('k')
    await new Promise((resolve) => setImmediate(resolve))
    await g.remove('k')
    held.resolve()
    await assert.rejects(first, NotFoundError)
    assert.equal(g.cacheStats('main').items, 0)
    await assert.rejects(g.get('k'), NotFoundError)
    assert.equal(loads, 2)
    await gc.close()
  })

  test("peers get the owner's remembered verdict over HTTP, by GET and in batches, without a load", async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2)
    try {
      const [owner, asker] = nodes.map((gc) => missingGroup(gc)) as [ReturnType<typeof missingGroup>, ReturnType<typeof missingGroup>]
      const key = keyOwnedBy(nodes[0]!, urls[0]!, 'missing-')
      await assert.rejects(owner.g.get(key), NotFoundError)
      for (let i = 0; i < 3; i++) await assert.rejects(asker.g.get(key), { code: 'ERR_GROUPCACHE_NOT_FOUND', message: `no user ${key}` })
      assert.equal((await asker.g.getMany([key])).size, 0)
      assert.equal(owner.counter.loads, 1)
      assert.equal(asker.counter.loads, 0)
      assert.equal(asker.g.stats.peerErrors, 0)
    } finally {
      await closeAll()
    }
  })
})

describe('Group.getMany on a non-owner', () => {
  test('asks each owner once, with every key it owns, and loads its own keys here', async () => {
    const transport = batchTransport()
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER, THIRD], transport })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (key) => `local:${key}` })
    const keys = Array.from({ length: 300 }, (_, i) => `k${i}`)
    const got = await g.getMany(keys)
    assert.equal(got.size, 300)
    for (const key of keys) assert.equal(got.get(key), gc.ownerOf(key) === SELF ? `local:${key}` : `remote:${key}`)
    assert.deepEqual(transport.batches.map((b) => b.peer).sort(), [OTHER, THIRD])
    for (const { peer, keys: asked } of transport.batches)
      assert.deepEqual(
        asked,
        keys.filter((key) => gc.ownerOf(key) === peer),
      )
    assert.deepEqual(transport.singles, [])
    assert.equal(g.stats.peerLoads, keys.filter((key) => gc.ownerOf(key) !== SELF).length)
    await gc.close()
  })

  test("loads here the keys an owner could not answer, and passes on the owner's verdicts", async () => {
    const transport = batchTransport((peer, key) => {
      if (key.startsWith('down')) return new PeerError(peer, 'connection reset')
      if (key.startsWith('gone')) return new NotFoundError('gone')
      if (key.startsWith('fail')) return new LoadError('owner failed')
      return value(key)
    })
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport })
    const loaded: string[] = []
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (key) => (loaded.push(key), `local:${key}`) })
    const down = keyOwnedBy(gc, OTHER, 'down')
    const gone = keyOwnedBy(gc, OTHER, 'gone')
    const fine = keyOwnedBy(gc, OTHER, 'fine')
    const got = await g.getMany([down, gone, fine])
    assert.deepEqual(
      [...got],
      [
        [down, `local:${down}`],
        [fine, `remote:${fine}`],
      ],
    )
    assert.deepEqual(loaded, [down])
    assert.equal(g.stats.peerErrors, 1)
    const fail = keyOwnedBy(gc, OTHER, 'fail')
    await assert.rejects(g.getMany([fine, fail]), { code: 'ERR_GROUPCACHE_LOAD_FAILED', key: fail })
    assert.deepEqual(loaded, [down])
    await gc.close()
  })

  test("a batch whose loadMany outlives the owner's loadTimeoutMs gets the owner's verdict for each key, over HTTP: the asker loads none itself", {
    timeout: 180_000,
  }, async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ secret: 'shared' }))
    try {
      const calls: string[][][] = [[], []]
      const groups = nodes.map((gc, i) =>
        gc.newGroup<string>({
          name: 'db',
          maxBytes: 1 << 20,
          codec: 'string',
          loadTimeoutMs: 50,
          load: (key) => {
            calls[i]?.push([key])
            return new Promise<string>(() => {})
          },
          loadMany: (keys) => {
            calls[i]?.push([...keys])
            return new Promise<Map<string, string>>(() => {})
          },
        }),
      )
      const keys = [keyOwnedBy(nodes[0]!, urls[1]!, 'a-'), keyOwnedBy(nodes[0]!, urls[1]!, 'b-')]
      await assert.rejects(groups[0]!.getMany(keys), (err: unknown) => {
        assert.ok(err instanceof LoadTimeoutError, String(err))
        assert.ok(keys.includes(err.key as string))
        return true
      })
      assert.deepEqual(calls[0], [], 'the asker loaded keys itself')
      assert.deepEqual(calls[1], [keys], 'the owner loaded them in one call')
      assert.equal(groups[0]!.stats.peerErrors, 0)
    } finally {
      await closeAll()
    }
  })

  test('a key already being fetched is joined, not asked for again', async () => {
    const held = deferred<PeerValue>()
    const transport: PeerTransport & { batches: string[][] } = {
      batches: [],
      fetch: () => held.promise,
      fetchMany: async (_peer, _group, keys) => {
        transport.batches.push([...keys])
        return new Map(keys.map((key) => [key, value(key)]))
      },
    }
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: () => 'local' })
    const a = keyOwnedBy(gc, OTHER, 'a')
    const b = keyOwnedBy(gc, OTHER, 'b')
    const single = g.get(a)
    const many = g.getMany([a, b])
    await new Promise((resolve) => setImmediate(resolve))
    held.resolve(value(a))
    assert.equal(await single, `remote:${a}`)
    assert.deepEqual([...(await many).values()], [`remote:${a}`, `remote:${b}`])
    assert.deepEqual(transport.batches, [[b]])
    await gc.close()
  })

  test("a custom transport's fetchMany that throws instead of rejecting, answers no promise or no Map fails or answers its keys, without ending the process", () => {
    // A batch is sent from a microtask or a timer: a throw there ends the
    // process, and leaves the batch's callers waiting. So in a child process.
    const script = `
      import { Groupcache } from './src/index.ts'
      const SELF = '${SELF}'
      const OTHER = '${OTHER}'
      const answers = {
        throws: () => { throw new TypeError('fetchMany threw') },
        plain: (keys) => new Map(keys.map((key) => [key, { value: Buffer.from('remote:' + key), expire: 0, generation: 0 }])),
        object: () => Promise.resolve({}),
      }
      const seen = []
      for (const [name, fetchMany] of Object.entries(answers)) {
        const transport = { fetch: async () => { throw new Error('unused') }, fetchMany: (_peer, _group, keys) => fetchMany(keys) }
        const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport })
        const g = gc.newGroup({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (key) => 'local:' + key })
        const keys = []
        for (let i = 0; keys.length < 2; i++) if (gc.ownerOf('k' + i) === OTHER) keys.push('k' + i)
        seen.push(await g.getMany(keys).then((found) => [name, [...found.values()]], (err) => [name, err.name]))
        await gc.close()
      }
      console.log(JSON.stringify(seen))
    `
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    })
    assert.equal(child.status, 0, child.stderr)
    const [plain] = (JSON.parse(child.stdout) as Array<[string, unknown]>).filter(([name]) => name === 'plain')
    assert.deepEqual(JSON.parse(child.stdout), [['throws', 'TypeError'], plain, ['object', 'TypeError']])
    assert.match(JSON.stringify(plain), /^\["plain",\["remote:k\d+","remote:k\d+"\]\]$/)
  })

  test('a transport without fetchMany is asked one key at a time', async () => {
    const singles: string[] = []
    const transport: PeerTransport = {
      fetch: async (_peer, _group, key) => (singles.push(key), value(key)),
    }
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: () => 'local' })
    const keys = [keyOwnedBy(gc, OTHER, 'a'), keyOwnedBy(gc, OTHER, 'b')]
    assert.deepEqual(
      [...(await g.getMany(keys)).values()],
      keys.map((key) => `remote:${key}`),
    )
    assert.deepEqual(singles.sort(), [...keys].sort())
    await gc.close()
  })
})

describe('batchWindowMs', () => {
  test('by default a get asks its owner at once, with a plain fetch', async () => {
    const transport = batchTransport()
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: () => 'local' })
    const keys = [keyOwnedBy(gc, OTHER, 'a'), keyOwnedBy(gc, OTHER, 'b')]
    await Promise.all(keys.map((key) => g.get(key)))
    assert.deepEqual(transport.batches, [])
    assert.deepEqual(transport.singles.sort(), [...keys].sort())
    await gc.close()
  })

  test('with a window, concurrent gets for one owner share one batch', async () => {
    const transport = batchTransport()
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER, THIRD], transport })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', batchWindowMs: 2, load: () => 'local' })
    const keys = Array.from({ length: 40 }, (_, i) => `w${i}`)
    const got = await Promise.all(keys.map((key) => g.get(key)))
    assert.deepEqual(
      got,
      keys.map((key) => (gc.ownerOf(key) === SELF ? 'local' : `remote:${key}`)),
    )
    assert.deepEqual(transport.singles, [])
    assert.deepEqual(transport.batches.map((b) => b.peer).sort(), [OTHER, THIRD])
    await gc.close()
  })
})
