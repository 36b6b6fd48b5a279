import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, test } from 'node:test'
import { HOT_SCAN } from '../src/cache.js'
import { PeerError } from '../src/errors.js'
import { PROMISE_BYTES, SLICE_BYTES } from '../src/heap.js'
import {
  ClosedError,
  ENTRY_OVERHEAD_BYTES,
  Groupcache,
  InvalidKeyError,
  LoadError,
  LoadTimeoutError,
  MIN_HOT_COPIES,
  NotFoundError,
  type PeerTransport,
  type PeerValue,
} from '../src/index.js'
import { RATE_BYTES } from '../src/rate.js'
import { decodeGetResponse, encodeGetResponse } from '../src/wire.js'
import { ROOT } from './helpers/child.js'
import { keyOwnedBy, startLocalNodes } from './helpers/local.js'
import { deferred, waitFor } from './helpers/wait.js'

const SELF = 'http://127.0.0.1:1'
const OTHER = 'http://127.0.0.1:2'

/** A transport that answers from a function, to drive the peer path exactly. */
function fakeTransport(answer: (peer: string, group: string, key: string) => Promise<PeerValue>): PeerTransport & { calls: string[] } {
  const calls: string[] = []
  return {
    calls,
    fetch: (peer, group, key) => {
      calls.push(key)
      return answer(peer, group, key)
    },
  }
}

describe('Group.get on the owner', () => {
  test('loads a key once and serves later gets from the main cache', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    let loads = 0
    const g = gc.newGroup({ name: 'g', maxBytes: 1 << 20, load: (key) => ({ key, n: ++loads }) })
    assert.deepEqual(await g.get('a'), { key: 'a', n: 1 })
    assert.deepEqual(await g.get('a'), { key: 'a', n: 1 })
    assert.equal(loads, 1)
    assert.deepEqual(g.stats, {
      gets: 2,
      cacheHits: 1,
      peerLoads: 0,
      peerErrors: 0,
      loads: 1,
      loadsDeduped: 1,
      localLoads: 1,
      localLoadErrs: 0,
      serverRequests: 0,
      staleHits: 0,
      refreshes: 0,
      refreshErrors: 0,
      peekHits: 0,
      peekMisses: 0,
      handoffsSent: 0,
      handoffsReceived: 0,
    })
    assert.equal(g.cacheStats('main').items, 1)
    assert.equal(g.cacheStats('hot').items, 0)
    await gc.close()
  })

  test('merges concurrent gets of one key into one load', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const held = deferred<string>()
    let loads = 0
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: () => (loads++, held.promise) })
    const gets = Array.from({ length: 50 }, () => g.get('k'))
    held.resolve('v')
    assert.deepEqual(await Promise.all(gets), Array(50).fill('v'))
    assert.equal(loads, 1)
    assert.equal(g.stats.loads, 50)
    assert.equal(g.stats.loadsDeduped, 1)
    await gc.close()
  })

  test('hands every caller the same deep-frozen object, so no caller can corrupt the cache', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const g = gc.newGroup({ name: 'g', maxBytes: 1 << 20, load: () => ({ list: [1, 2], nested: { a: 'x' } }) })
    const first = (await g.get('k')) as { list: number[]; nested: { a: string } }
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first.list) && Object.isFrozen(first.nested))
    assert.throws(() => {
      first.nested.a = 'changed'
    }, TypeError)
    assert.equal(await g.get('k'), first)
    await gc.close()
  })

  test('an ASCII string is kept as a slice of the bytes it is held in, not a second copy; other text keeps its decoded string, counted', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const ascii = 'plain text, ASCII only'
    const other = 'naïve, not ASCII at all'
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (key) => (key === 'a' ? ascii : other) })
    assert.equal(await g.get('a'), ascii)
    assert.equal(await g.get('a'), ascii)
    assert.equal(g.cacheStats('main').bytes, ENTRY_OVERHEAD_BYTES + 1 + ascii.length + SLICE_BYTES + PROMISE_BYTES)
    assert.equal(await g.get('n'), other)
    assert.equal(await g.get('n'), other)
    // Its UTF-8 bytes are one more than its characters; the decoded string takes 16 + its characters, rounded to 8.
    const decoded = 16 + Math.ceil(other.length / 8) * 8
    assert.equal(
      g.cacheStats('main').bytes,
      2 * ENTRY_OVERHEAD_BYTES + 2 + ascii.length + other.length + 1 + SLICE_BYTES + decoded + 2 * PROMISE_BYTES,
    )
    await gc.close()
  })

  test('a hit can be awaited after async_hooks starts tracking promises (AsyncLocalStorage, OpenTelemetry), without ending the process', () => {
    // async_hooks writes its ids onto a promise when one is first chained
    // to it; on a promise it cannot extend that throws inside the hook,
    // which kills the process. So the hits' shared promises, made before
    // any hook was on, are awaited in a child process, by every codec that
    // shares one, with a hook and an AsyncLocalStorage context.
    const script = `
      import { AsyncLocalStorage, createHook } from 'node:async_hooks'
      import { Groupcache } from './src/index.ts'
      const gc = new Groupcache({ self: '${SELF}', peers: ['${SELF}'] })
      const groups = ['msgpack', 'json', 'string'].map((codec) =>
        gc.newGroup({ name: codec, maxBytes: 1 << 20, codec, load: (key) => (codec === 'string' ? 'v:' + key : { key }) }))
      for (const g of groups) await g.get('k')
      createHook({ init() {} }).enable()
      const als = new AsyncLocalStorage()
      const seen = await als.run('request', async () => {
        const out = []
        for (const g of groups) out.push([await g.get('k'), await g.get('k').then((v) => v), als.getStore()])
        return out
      })
      console.log(JSON.stringify(seen))
      await gc.close()
    `
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    })
    assert.equal(child.status, 0, child.stderr)
    const hit = { key: 'k' }
    assert.deepEqual(JSON.parse(child.stdout), [
      [hit, hit, 'request'],
      [hit, hit, 'request'],
      ['v:k', 'v:k', 'request'],
    ])
  })

  test("get's type says a shared value is frozen: writing to it does not compile, reading and setting it back do", async () => {
    interface User {
      name: string
      tags: string[]
      address: { city: string }
    }
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const users = gc.newGroup<User>({
      name: 'users',
      maxBytes: 1 << 20,
      load: (key) => ({ name: key, tags: ['a'], address: { city: 'Oslo' } }),
    })
    const user = await users.get('ann')
    // `npm test` type-checks this file: each @ts-expect-error fails the build
    // if the write it marks compiles, as it would with get(): Promise<User>.
    assert.throws(() => {
      // @ts-expect-error: the shared object's properties are readonly
      user.address.city = 'Bergen'
    }, TypeError)
    assert.throws(() => {
      // @ts-expect-error: and so are its arrays
      user.tags.push('b')
    }, TypeError)
    const city: string = user.address.city
    assert.equal(city, 'Oslo')
    await users.set('bob', user)
    assert.equal((await users.get('bob')).name, 'ann')
    const bytes = gc.newGroup<Uint8Array>({ name: 'bytes', codec: 'bytes', maxBytes: 1 << 20, load: () => new Uint8Array([1]) })
    const copy = await bytes.get('k')
    copy[0] = 2 // a fresh copy per caller: writable, and typed so
    assert.deepEqual([...(await bytes.get('k'))], [1])
    await gc.close()
  })

  test("returns the codec's round trip of the loader's value, the same on a miss as on a hit", async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const g = gc.newGroup({ name: 'g', maxBytes: 1 << 20, codec: 'json', load: () => ({ at: new Date(0), skip: undefined }) })
    const miss = await g.get('k')
    const hit = await g.get('k')
    assert.deepEqual(miss, { at: '1970-01-01T00:00:00.000Z' })
    assert.equal(hit, miss)
    await gc.close()
  })

  test('gives each caller its own copy of binary values', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const g = gc.newGroup<Uint8Array>({ name: 'g', maxBytes: 1 << 20, codec: 'bytes', load: () => Buffer.from('abc') })
    const first = await g.get('k')
    first[0] = 0x7a
    assert.equal(Buffer.from(await g.get('k')).toString(), 'abc')
    await gc.close()
  })

  test('wraps a loader failure in LoadError with the message and cause, and does not cache it', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    let loads = 0
    const cause = new Error('db down')
    const g = gc.newGroup({
      name: 'g',
      maxBytes: 1 << 20,
      load: () => {
        loads++
        throw cause
      },
    })
    await assert.rejects(g.get('k'), (err: unknown) => {
      assert.ok(err instanceof LoadError)
      assert.equal(err.code, 'ERR_GROUPCACHE_LOAD_FAILED')
      assert.match(err.message, /db down/)
      assert.equal(err.cause, cause)
      return true
    })
    await assert.rejects(g.get('k'), LoadError)
    assert.equal(loads, 2)
    assert.equal(g.stats.localLoadErrs, 2)
    await gc.close()
  })

  test('passes a NotFoundError from the loader through unchanged', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const g = gc.newGroup({
      name: 'g',
      maxBytes: 1 << 20,
      load: (key) => {
        throw new NotFoundError(`no ${key}`)
      },
    })
    await assert.rejects(g.get('x'), { code: 'ERR_GROUPCACHE_NOT_FOUND', message: 'no x' })
    await gc.close()
  })

  test('rejects a value its codec cannot encode with ERR_GROUPCACHE_CODEC', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const g = gc.newGroup({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: () => 42 as unknown as string })
    await assert.rejects(g.get('x'), { code: 'ERR_GROUPCACHE_CODEC' })
    await gc.close()
  })

  test('returns but does not store a value larger than maxEntryBytes', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    let loads = 0
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 800,
      codec: 'string',
      load: (key) => (loads++, key === 'big' ? 'x'.repeat(101) : 'small'),
    })
    assert.equal((await g.get('big')).length, 101)
    assert.equal((await g.get('big')).length, 101)
    assert.equal(loads, 2, 'an entry over maxBytes / 8 was not kept')
    await g.get('s')
    await g.get('s')
    assert.equal(loads, 3)
    // Counted: key and value bytes, the per-entry overhead, and the decoded
    // string kept beside them (a 16-byte header and 5 characters, rounded to
    // 8; V8 copies a string this short rather than slice it) with the
    // promise every hit shares.
    assert.equal(g.cacheStats('main').bytes, ENTRY_OVERHEAD_BYTES + 's'.length + 'small'.length + 24 + PROMISE_BYTES)
    await gc.close()
  })

  test('rejects keys that are not strings or are too long before any load', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF], maxKeyBytes: 8 })
    let loads = 0
    const g = gc.newGroup({ name: 'g', maxBytes: 1 << 20, load: () => ++loads })
    await assert.rejects(g.get(7 as unknown as string), InvalidKeyError)
    await assert.rejects(g.get('ééééé'), { code: 'ERR_GROUPCACHE_INVALID_KEY', message: /at most 8 bytes in UTF-8, got 10/ })
    assert.equal(await g.get('éééé'), 1)
    assert.equal(loads, 1)
    await gc.close()
  })

  test('refuses a key with a lone surrogate (it has no UTF-8 form) with InvalidKeyError, on its owner and before asking a peer', async () => {
    const transport = fakeTransport(async (_peer, _group, key) => ({ value: Buffer.from(key), expire: 0, generation: 0 }))
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport, dangerouslyAllowUnauthenticatedChanges: true })
    let loads = 0
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: () => String(++loads) })
    const mine = keyOwnedBy(gc, SELF, '\uD800')
    const theirs = keyOwnedBy(gc, OTHER, '\uDFFF')
    for (const key of [mine, theirs, `${mine}\uDC00\uDC00`]) {
      await assert.rejects(g.get(key), { code: 'ERR_GROUPCACHE_INVALID_KEY', message: /lone surrogate/ })
      await assert.rejects(g.getWithSource(key), InvalidKeyError)
      await assert.rejects(g.getMany(['fine', key]), InvalidKeyError)
      await assert.rejects(g.set(key, 'v'), InvalidKeyError)
      await assert.rejects(g.remove(key), InvalidKeyError)
    }
    assert.equal(loads, 0)
    assert.deepEqual(transport.calls, [])
    // A well-formed pair is one character, not two halves.
    assert.equal(await g.get(keyOwnedBy(gc, SELF, '\uD83D\uDE00')), '1')
    await gc.close()
  })

  test('rejects gets after close with ClosedError', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const g = gc.newGroup({ name: 'g', maxBytes: 1 << 20, load: () => 1 })
    await gc.close()
    await assert.rejects(g.get('k'), ClosedError)
  })
})

describe('Group.get with a caller that gives up', () => {
  test('an aborted caller leaves; the others get the value from the one load', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const held = deferred<string>()
    let loaderSignal: AbortSignal | undefined
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (_k, ctx) => ((loaderSignal = ctx.signal), held.promise),
    })
    const quitter = new AbortController()
    const a = g.get('k', { signal: quitter.signal })
    const b = g.get('k')
    await Promise.resolve()
    quitter.abort(new Error('user went away'))
    await assert.rejects(a, { code: 'ERR_GROUPCACHE_ABORTED', name: 'AbortError' })
    assert.equal(loaderSignal?.aborted, false)
    held.resolve('v')
    assert.equal(await b, 'v')
    await gc.close()
  })

  test("the loader's signal aborts once every caller left, and the next get loads afresh", async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const signals: AbortSignal[] = []
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (_k, ctx) =>
        new Promise((resolve, reject) => {
          signals.push(ctx.signal)
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))
          if (signals.length === 2) resolve('fresh')
        }),
    })
    const one = new AbortController()
    const two = new AbortController()
    const a = g.get('k', { signal: one.signal })
    const b = g.get('k', { signal: two.signal })
    await new Promise((r) => setImmediate(r))
    one.abort()
    assert.equal(signals[0]?.aborted, false)
    two.abort()
    await assert.rejects(a, { name: 'AbortError' })
    await assert.rejects(b, { name: 'AbortError' })
    assert.equal(signals[0]?.aborted, true)
    assert.equal(await g.get('k'), 'fresh')
    assert.equal(signals.length, 2)
    await gc.close()
  })
})

describe('Group.get with loadTimeoutMs', () => {
  /** timers counts the timers alive in this process. */
  const timers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length

  test("a loader that never settles is given up after loadTimeoutMs: every caller rejects with LoadTimeoutError and the loader's signal aborts with it", {
    timeout: 120_000,
  }, async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const signals: AbortSignal[] = []
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      loadTimeoutMs: 50,
      load: (_k, ctx) => {
        signals.push(ctx.signal)
        return new Promise<string>(() => {})
      },
    })
    const callers = [g.get('k'), g.get('k'), g.getWithSource('k')]
    for (const caller of callers) {
      await assert.rejects(caller, (err: unknown) => {
        assert.ok(err instanceof LoadTimeoutError)
        assert.ok(err instanceof LoadError, 'a LoadError: a verdict, like any failed load')
        assert.equal(err.code, 'ERR_GROUPCACHE_LOAD_TIMEOUT')
        assert.equal(err.status, 504)
        assert.equal(err.statusCode, 504)
        assert.equal(err.expose, false)
        assert.match(err.message, /"k" in group g took longer than loadTimeoutMs \(50 ms\)/)
        return true
      })
    }
    assert.equal(signals.length, 1, 'one load for every caller')
    assert.equal(signals[0]?.aborted, true)
    assert.ok(signals[0]?.reason instanceof LoadTimeoutError)
    assert.equal(g.stats.localLoadErrs, 1)
    await gc.close()
  })

  test('what a timed-out load returns later is not cached: the next get loads again', { timeout: 120_000 }, async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const late = deferred<string>()
    let loads = 0
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      loadTimeoutMs: 50,
      load: () => (++loads === 1 ? late.promise : `fresh ${loads}`),
    })
    await assert.rejects(g.get('k'), LoadTimeoutError)
    late.resolve('late')
    // Let whatever the late value would set off run before looking.
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
    assert.equal(g.cacheStats('main').items, 0, 'the late value was kept')
    assert.deepEqual(await g.getWithSource('k'), { value: 'fresh 2', source: 'load' })
    assert.equal(loads, 2)
    await gc.close()
  })

  test('one timer per load, not per caller, cleared when the load settles; none without the option', { timeout: 120_000 }, async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const held = [deferred<string>(), deferred<string>()]
    let started = 0
    const load = (): Promise<string> => (held[started++] as ReturnType<typeof deferred<string>>).promise
    const plain = gc.newGroup<string>({ name: 'plain', maxBytes: 1 << 20, codec: 'string', load })
    const timed = gc.newGroup<string>({ name: 'timed', maxBytes: 1 << 20, codec: 'string', loadTimeoutMs: 600_000, load })
    const before = timers()
    const plainCallers = [plain.get('k'), plain.get('k'), plain.get('k')]
    await waitFor('the first load', () => started === 1)
    assert.equal(timers(), before, 'a timer without loadTimeoutMs')
    const timedCallers = [timed.get('k'), timed.get('k'), timed.get('k')]
    await waitFor('the second load', () => started === 2)
    assert.equal(timers(), before + 1, 'one timer for three callers')
    held[1]?.resolve('b')
    assert.deepEqual(await Promise.all(timedCallers), ['b', 'b', 'b'])
    assert.equal(timers(), before, 'the timer outlived its load')
    held[0]?.resolve('a')
    assert.deepEqual(await Promise.all(plainCallers), ['a', 'a', 'a'])
    await gc.close()
  })
})

describe('Group.get on the owner, with a peer waiting', () => {
  test("hears a load's value only after the peer's answer is ready, however many of this node's callers wait", async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER] })
    const held = deferred<string>()
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: () => held.promise })
    const key = keyOwnedBy(gc, SELF)
    const order: string[] = []
    const peer = gc.handler({ method: 'GET', url: `/_groupcache/g/${key}`, headers: {} }).then((res) => {
      assert.equal(res.status, 200)
      order.push('peer answered')
    })
    const locals = Array.from({ length: 100 }, () => g.get(key).then(() => void order.push('local')))
    await waitFor('the peer request to join the load', () => g.stats.serverRequests === 1)
    held.resolve('v')
    await Promise.all([peer, ...locals])
    assert.equal(order.indexOf('peer answered'), 0)
    assert.equal(g.stats.localLoads, 1)
    await gc.close()
  })
})

describe('Group.get on a non-owner', () => {
  test('fetches from the owner and keeps a hot copy when promotion says so', async () => {
    const transport = fakeTransport(async (_p, _g, key) => ({ value: Buffer.from(`remote:${key}`), expire: 0, generation: 0 }))
    const draws = [0.05, 0.5]
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport, random: () => draws.shift() ?? 0.99 })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: () => 'local' })
    const promoted = keyOwnedBy(gc, OTHER, 'p')
    const notPromoted = keyOwnedBy(gc, OTHER, 'q')
    assert.equal(await g.get(promoted), `remote:${promoted}`)
    assert.equal(await g.get(notPromoted), `remote:${notPromoted}`)
    assert.equal(await g.get(promoted), `remote:${promoted}`)
    assert.equal(await g.get(notPromoted), `remote:${notPromoted}`)
    assert.deepEqual(transport.calls, [promoted, notPromoted, notPromoted])
    assert.equal(g.cacheStats('hot').items, 1)
    assert.equal(g.cacheStats('main').items, 0)
    assert.equal(g.stats.peerLoads, 3)
    assert.equal(g.stats.localLoads, 0)
    await gc.close()
  })

  test('loads locally and counts peerErrors when the owner cannot be reached', async () => {
    const transport = fakeTransport(async (peer) => {
      throw new PeerError(peer, 'connection refused')
    })
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport })
    let loads = 0
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => (loads++, `local:${k}`) })
    const key = keyOwnedBy(gc, OTHER)
    assert.equal(await g.get(key), `local:${key}`)
    assert.equal(g.stats.peerErrors, 1)
    assert.equal(g.stats.localLoads, 1)
    assert.equal(loads, 1)
    await gc.close()
  })

  test("surfaces the owner's verdict without loading a second time", async () => {
    const transport = fakeTransport(async (_p, _g, key) => {
      throw key.startsWith('nf') ? new NotFoundError('gone') : new LoadError('owner failed')
    })
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport })
    let loads = 0
    const g = gc.newGroup({ name: 'g', maxBytes: 1 << 20, load: () => ++loads })
    await assert.rejects(g.get(keyOwnedBy(gc, OTHER, 'nf')), NotFoundError)
    await assert.rejects(g.get(keyOwnedBy(gc, OTHER, 'lf')), { code: 'ERR_GROUPCACHE_LOAD_FAILED', message: 'owner failed' })
    assert.equal(loads, 0)
    assert.equal(g.stats.peerErrors, 0)
    await gc.close()
  })

  test('treats bytes it cannot decode as a peer error: no hot copy, a local load instead', async () => {
    const transport = fakeTransport(async () => ({ value: Buffer.from([0xff, 0xfe]), expire: 0, generation: 0 }))
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', promote: true, load: () => 'local' })
    assert.equal(await g.get(keyOwnedBy(gc, OTHER)), 'local')
    assert.equal(g.stats.peerErrors, 1)
    assert.equal(g.cacheStats('hot').items, 0)
    await gc.close()
  })

  test("gives each caller of one fetch its own copy of binary data, and never writes to the owner's answer", async () => {
    const answer = Buffer.from('0123456789')
    const held = deferred<void>()
    const transport = fakeTransport(async () => {
      await held.promise
      return { value: answer.subarray(2, 8), expire: 0, generation: 0 }
    })
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport })
    const g = gc.newGroup<Uint8Array>({ name: 'g', maxBytes: 1 << 20, codec: 'bytes', promote: false, load: () => Buffer.from('local') })
    const key = keyOwnedBy(gc, OTHER)
    const gets = [g.get(key), g.get(key), g.getWithSource(key).then((s) => s.value)]
    held.resolve()
    const values = await Promise.all(gets)
    assert.deepEqual(transport.calls, [key])
    for (const value of values) assert.equal(Buffer.from(value).toString(), '234567')
    ;(values[0] as Uint8Array)[0] = 0x78
    ;(values[1] as Uint8Array)[1] = 0x78
    assert.equal(Buffer.from(values[2] as Uint8Array).toString(), '234567')
    assert.equal(answer.toString(), '0123456789')
    assert.equal(Buffer.from(await g.get(key)).toString(), '234567')
    assert.equal(g.cacheStats('hot').items, 0)
    await gc.close()
  })

  test('gives binary data from a real owner to its callers as their own, alone or together', async () => {
    const frame = encodeGetResponse({ value: Buffer.from('owner value') })
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-protobuf' })
      res.end(frame)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const owner = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const gc = new Groupcache({ self: SELF, peers: [SELF, owner] })
    try {
      const g = gc.newGroup<Uint8Array>({ name: 'g', maxBytes: 1 << 20, codec: 'bytes', promote: false, load: () => Buffer.from('local') })
      const key = keyOwnedBy(gc, owner)
      const alone = await g.get(key)
      alone.fill(0x78)
      const together = await Promise.all([g.get(key), g.get(key)])
      together[0]?.fill(0x79)
      for (const value of [together[1], await g.get(key)]) assert.equal(Buffer.from(value as Uint8Array).toString(), 'owner value')
      assert.equal(g.stats.peerLoads, 3)
    } finally {
      await gc.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })

  test('hands every caller of one fetch the same deep-frozen value, kept or not', async () => {
    for (const promote of [false, true]) {
      const held = deferred<void>()
      const transport = fakeTransport(async () => {
        await held.promise
        return { value: Buffer.from(JSON.stringify({ list: [1, 2], nested: { a: 'b' } })), expire: 0, generation: 0 }
      })
      const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport })
      const g = gc.newGroup<{ list: number[]; nested: { a: string } }>({
        name: 'g',
        maxBytes: 1 << 20,
        codec: 'json',
        promote,
        load: () => ({ list: [], nested: { a: 'local' } }),
      })
      const key = keyOwnedBy(gc, OTHER)
      const gets = [g.get(key), g.get(key)]
      held.resolve()
      const [first, second] = await Promise.all(gets)
      assert.equal(first, second, `promote: ${promote}`)
      assert.deepEqual(first, { list: [1, 2], nested: { a: 'b' } })
      assert.ok(Object.isFrozen(first) && Object.isFrozen(first?.list) && Object.isFrozen(first?.nested))
      assert.equal(g.cacheStats('hot').items, promote ? 1 : 0)
      await gc.close()
    }
  })
})

describe('hot copies by the rate owners report', () => {
  /** keysOwnedBy lists `n` distinct keys that `owner` owns. */
  function keysOwnedBy(gc: Groupcache, owner: string, n: number, prefix: string): string[] {
    return Array.from({ length: n }, (_, i) => keyOwnedBy(gc, owner, `${prefix}${i}-`))
  }

  /** rated is a transport whose owner reports `rates.get(key)` (default 1) as the key's minute_qps. */
  function rated(rates: Map<string, number | undefined>): PeerTransport & { calls: string[] } {
    return fakeTransport(async (_p, _g, key) => ({
      value: Buffer.from(`remote:${key}`),
      expire: 0,
      generation: 0,
      minuteQps: rates.has(key) ? rates.get(key) : 1,
    }))
  }

  test('with room, any copy is kept, without a coin flip; past MIN_HOT_COPIES and main / HOT_SHARE, only one hotter than a least recently used copy, which gives way', async () => {
    const rates = new Map<string, number | undefined>()
    const transport = rated(rates)
    // A coin flip would keep nothing.
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport, random: () => 0.99 })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 30, codec: 'string', load: () => 'local' })
    const first = keysOwnedBy(gc, OTHER, MIN_HOT_COPIES, 'first')
    for (const key of first) await g.get(key)
    assert.equal(g.cacheStats('hot').items, MIN_HOT_COPIES)
    assert.equal(g.cacheStats('main').items, 0)
    const [cold, hot] = keysOwnedBy(gc, OTHER, 2, 'late') as [string, string]
    rates.set(cold, 1)
    rates.set(hot, 5)
    assert.equal(await g.get(cold), `remote:${cold}`)
    assert.equal(await g.get(cold), `remote:${cold}`)
    assert.equal(transport.calls.filter((k) => k === cold).length, 2, 'as cold as the coldest copy: fetched every time')
    await g.get(hot)
    await g.get(hot)
    assert.equal(transport.calls.filter((k) => k === hot).length, 1, 'hotter: kept')
    assert.equal(g.cacheStats('hot').items, MIN_HOT_COPIES)
    assert.equal(g.cacheStats('hot').evictions, 1)
    // The copy that gave way was the least recently used that the two
    // refusals had not passed over (each passed HOT_SCAN copies, as hot as
    // the offer, and gave them a second chance).
    const gone = first[2 * HOT_SCAN] as string
    for (const key of [first[0] as string, gone]) await g.get(key)
    assert.equal(transport.calls.filter((k) => k === first[0]).length, 1)
    assert.equal(transport.calls.filter((k) => k === gone).length, 2)
    await gc.close()
  })

  test('a copy this node keeps reading counts its hits, so it outlasts copies read less, even as the least recently used', async () => {
    const rates = new Map<string, number | undefined>()
    const transport = rated(rates)
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport, random: () => 0.99 })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 30, codec: 'string', load: () => 'local' })
    const first = keysOwnedBy(gc, OTHER, MIN_HOT_COPIES, 'first')
    for (const key of first) await g.get(key)
    const [read, next] = first as [string, string]
    for (let i = 0; i < 200; i++) await g.get(read)
    // Every other copy is read once after it: `read` is the least recently used.
    for (const key of first.slice(1)) await g.get(key)
    const offered = keyOwnedBy(gc, OTHER, 'offered-')
    rates.set(offered, 2)
    await g.get(offered)
    assert.equal(g.cacheStats('hot').evictions, 1)
    const fetches = (key: string): number => transport.calls.filter((k) => k === key).length
    for (const key of [read, next, offered]) await g.get(key)
    assert.equal(fetches(read), 1, 'the copy read 200 times stayed')
    assert.equal(fetches(next), 2, 'the next least recently used, read twice, gave way')
    assert.equal(fetches(offered), 1)
    await gc.close()
  })

  test("an owner that reports no rate, or a bad one, gets Go's coin flip", async () => {
    for (const reported of [undefined, Number.NaN, -1, Infinity]) {
      for (const [draw, kept] of [
        [0.99, 0],
        [0.05, 1],
      ] as const) {
        const rates = new Map<string, number | undefined>()
        const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport: rated(rates), random: () => draw })
        const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: () => 'local' })
        const key = keyOwnedBy(gc, OTHER)
        rates.set(key, reported)
        await g.get(key)
        assert.equal(g.cacheStats('hot').items, kept, `rate ${reported}, draw ${draw}`)
        await gc.close()
      }
    }
  })

  test("a promote function gets the key, the value's size and the owner's rate, and decides alone", async () => {
    const seen: Array<[string, number, number | undefined]> = []
    const rates = new Map<string, number | undefined>()
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport: rated(rates) })
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: () => 'local',
      promote: (key, bytes, minuteQps) => (seen.push([key, bytes, minuteQps]), minuteQps !== undefined && minuteQps > 2),
    })
    const [a, b, c] = keysOwnedBy(gc, OTHER, 3, 'p') as [string, string, string]
    rates.set(a, 3).set(b, 1).set(c, undefined)
    for (const key of [a, b, c]) await g.get(key)
    assert.deepEqual(seen, [
      [a, `remote:${a}`.length, 3],
      [b, `remote:${b}`.length, 1],
      [c, `remote:${c}`.length, undefined],
    ])
    assert.equal(g.cacheStats('hot').items, 1)
    await gc.close()
  })

  test("an owner reports how often peers ask for a key in minute_qps, counts the Rate in the entry's bytes, and does not count its own gets", async () => {
    const now = 1_764_000_000_000 - (1_764_000_000_000 % 60_000) + 30_000
    const gc = new Groupcache({ self: SELF, peers: [SELF], now: () => now })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (key) => `v:${key}` })
    await g.get('k')
    await g.get('k')
    const before = g.cacheStats('main').bytes
    const reported: Array<number | undefined> = []
    for (let i = 0; i < 3; i++) {
      const res = await gc.handler({ method: 'GET', url: '/_groupcache/g/k', headers: {} })
      assert.equal(res.status, 200)
      reported.push(decodeGetResponse(res.body as Uint8Array).minuteQps)
    }
    assert.deepEqual(reported, [1 / 60, 2 / 60, 3 / 60])
    assert.equal(g.cacheStats('main').bytes, before + RATE_BYTES)
    // A key loaded for a peer's request is counted too.
    const loaded = await gc.handler({ method: 'GET', url: '/_groupcache/g/new', headers: {} })
    assert.equal(decodeGetResponse(loaded.body as Uint8Array).minuteQps, 1 / 60)
    await gc.close()
  })
})

describe('two nodes over real HTTP', () => {
  test('a non-owner keeps a hot copy of a key its owner reports as asked for, over real HTTP, without a coin flip', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ random: () => 0.99 }))
    try {
      const groups = nodes.map((gc) => gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (key) => `v:${key}` }))
      const key = keyOwnedBy(nodes[0]!, urls[1]!)
      assert.equal(await groups[0]!.get(key), `v:${key}`)
      assert.equal(await groups[0]!.get(key), `v:${key}`)
      assert.equal(groups[0]!.cacheStats('hot').items, 1)
      assert.equal(groups[0]!.stats.peerLoads, 1)
      assert.equal(groups[1]!.stats.serverRequests, 1)
    } finally {
      await closeAll()
    }
  })

  test('a non-owner gets the value its owner loaded, once, and the owner counts the server request', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ secret: 'shared' }))
    try {
      const loads: number[] = [0, 0]
      const groups = nodes.map((gc, i) =>
        gc.newGroup({ name: 'users', maxBytes: 1 << 20, promote: false, load: (key) => (loads[i]!++, { id: key, by: i }) }),
      )
      const key = keyOwnedBy(nodes[0]!, urls[1]!)
      const got = await Promise.all([groups[0]!.get(key), groups[0]!.get(key), groups[1]!.get(key)])
      assert.deepEqual(got, [
        { id: key, by: 1 },
        { id: key, by: 1 },
        { id: key, by: 1 },
      ])
      assert.deepEqual(loads, [0, 1])
      assert.equal(groups[1]!.stats.serverRequests, 1)
      assert.equal(groups[0]!.stats.peerLoads, 1)
    } finally {
      await closeAll()
    }
  })

  test("an owner's loadTimeoutMs reaches the asker as its verdict: the asker does not load the key itself, and the owner's slot is free again", {
    timeout: 180_000,
  }, async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ secret: 'shared' }))
    try {
      const loads: string[][] = [[], []]
      const signals: AbortSignal[] = []
      const groups = nodes.map((gc, i) =>
        gc.newGroup<string>({
          name: 'db',
          maxBytes: 1 << 20,
          codec: 'string',
          promote: false,
          loadTimeoutMs: 50,
          // One load for peers at a time: a slot the hung load kept would refuse the next key.
          maxPeerLoads: 1,
          load: (key, ctx) => {
            loads[i]?.push(key)
            signals.push(ctx.signal)
            // The database hangs on the first key, and answers the others.
            return key.startsWith('hung-') ? new Promise<string>(() => {}) : `v ${key}`
          },
        }),
      )
      const hung = keyOwnedBy(nodes[0]!, urls[1]!, 'hung-')
      await assert.rejects(groups[0]!.get(hung), (err: unknown) => {
        assert.ok(err instanceof LoadTimeoutError, String(err))
        assert.equal(err.code, 'ERR_GROUPCACHE_LOAD_TIMEOUT')
        return true
      })
      assert.deepEqual(loads, [[], [hung]], 'the asker loaded the key itself, or the owner loaded it twice')
      assert.equal(groups[0]!.stats.peerErrors, 0)
      assert.equal(signals[0]?.aborted, true)
      // The hung load's slot was given back: the owner loads the next key for its peer.
      const next = keyOwnedBy(nodes[0]!, urls[1]!, 'ok-')
      assert.equal(await groups[0]!.get(next), `v ${next}`)
      assert.deepEqual(loads, [[], [hung, next]])
    } finally {
      await closeAll()
    }
  })

  test('a node with the wrong secret is refused and falls back to loading locally', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, (i) => ({ secret: i === 0 ? 'right' : 'wrong' }))
    try {
      const groups = nodes.map((gc, i) => gc.newGroup({ name: 'g', maxBytes: 1 << 20, load: () => `from-${i}` }))
      const key = keyOwnedBy(nodes[1]!, urls[0]!)
      assert.equal(await groups[1]!.get(key), 'from-1')
      assert.equal(groups[1]!.stats.peerErrors, 1)
      assert.equal(groups[0]!.stats.serverRequests, 0)
    } finally {
      await closeAll()
    }
  })
})

describe('TTL, with an injected clock', () => {
  test("a hot copy expires exactly when its owner's copy does", async () => {
    let now = 1_000_000
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ now: () => now }))
    try {
      const loads = [0, 0]
      const groups = nodes.map((gc, i) =>
        gc.newGroup<string>({
          name: 'g',
          maxBytes: 1 << 20,
          codec: 'string',
          promote: true,
          ttlMs: 5_000,
          load: (k) => `${k}@${++loads[i]!}`,
        }),
      )
      const [asker, owner] = groups as [(typeof groups)[0], (typeof groups)[0]]
      const key = keyOwnedBy(nodes[0]!, urls[1]!)
      assert.equal(await asker.get(key), `${key}@1`)
      assert.equal(asker.cacheStats('hot').items, 1)
      now += 4_999
      assert.equal(await asker.get(key), `${key}@1`)
      assert.equal(await owner.get(key), `${key}@1`)
      assert.equal(owner.stats.serverRequests, 1, 'the hot copy answered')
      now += 1
      assert.equal(await asker.get(key), `${key}@2`, 'both copies expired at once; the owner loaded again')
      assert.deepEqual(loads, [0, 2])
      assert.equal(owner.stats.serverRequests, 2)
    } finally {
      await closeAll()
    }
  })

  test('a loader can choose the TTL per key after seeing the value', async () => {
    let now = 0
    const gc = new Groupcache({ self: SELF, peers: [SELF], now: () => now })
    let loads = 0
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      ttlMs: 60_000,
      load: (key, ctx) => {
        loads++
        if (key === 'short') ctx.ttlMs = 10
        if (key === 'forever') ctx.ttlMs = Infinity
        return key
      },
    })
    await Promise.all([g.get('short'), g.get('default'), g.get('forever')])
    now = 9
    await Promise.all([g.get('short'), g.get('default'), g.get('forever')])
    assert.equal(loads, 3)
    now = 10
    await Promise.all([g.get('short'), g.get('default'), g.get('forever')])
    assert.equal(loads, 4, 'only the short-lived key loaded again')
    now = 60_000
    await Promise.all([g.get('short'), g.get('default'), g.get('forever')])
    assert.equal(loads, 6, 'the group TTL expired the default key (and short again), not the forever key')
    await gc.close()
  })

  test('an invalid ctx.ttlMs fails the load with LoadError and stores nothing', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const g = gc.newGroup({ name: 'g', maxBytes: 1 << 20, load: (_k, ctx) => ((ctx.ttlMs = -5), 'v') })
    await assert.rejects(g.get('k'), { code: 'ERR_GROUPCACHE_LOAD_FAILED', message: /expected ctx\.ttlMs to be a positive number/ })
    assert.equal(g.cacheStats('main').items, 0)
    await gc.close()
  })

  test('set takes its own TTL', async () => {
    let now = 0
    const gc = new Groupcache({ self: SELF, peers: [SELF], now: () => now })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: () => 'loaded' })
    await g.set('k', 'manual', { ttlMs: 100 })
    now = 99
    assert.equal(await g.get('k'), 'manual')
    now = 100
    assert.equal(await g.get('k'), 'loaded')
    await assert.rejects(g.set('k', 'x'.repeat(1 << 18)), { code: 'ERR_GROUPCACHE_TOO_LARGE' })
    await assert.rejects(g.set('k', 'v', { ttlMs: -1 }), { code: 'ERR_GROUPCACHE_INVALID_OPTION' })
    await gc.close()
  })
})

describe('Group.getWithSource and ctx.cache', () => {
  test('says whether a value was a hit, a local load or a peer fetch', async () => {
    const transport = fakeTransport(async (_p, _g, key) => ({ value: Buffer.from(key), expire: 0, generation: 0 }))
    const gc = new Groupcache({ self: SELF, peers: [SELF, OTHER], transport })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', promote: true, load: (k) => k })
    const mine = keyOwnedBy(gc, SELF)
    const theirs = keyOwnedBy(gc, OTHER)
    assert.deepEqual(await g.getWithSource(mine), { value: mine, source: 'load' })
    assert.deepEqual(await g.getWithSource(mine), { value: mine, source: 'hit' })
    assert.deepEqual(await g.getWithSource(theirs), { value: theirs, source: 'peer' })
    assert.deepEqual(await g.getWithSource(theirs), { value: theirs, source: 'hit' })
    await gc.close()
  })

  test('a loader that sets ctx.cache = false answers the waiting callers and stores nothing', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const held = deferred<string>()
    let loads = 0
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: async (_k, ctx) => {
        loads++
        ctx.cache = false
        return held.promise
      },
    })
    const waiting = [g.get('k'), g.get('k')]
    held.resolve('once')
    assert.deepEqual(await Promise.all(waiting), ['once', 'once'])
    assert.equal(loads, 1)
    assert.equal(g.cacheStats('main').items, 0)
    await g.get('k')
    assert.equal(loads, 2)
    await gc.close()
  })
})
