// close(): peer requests get 503 at once, loads in flight finish within the
// grace period or are aborted after it (their callers get ClosedError then,
// even from a loader that ignores ctx.signal), and no socket is left open.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ClosedError, type LoadContext } from '../../src/index.js'
import { settledTcpHandles, tcpHandles } from '../helpers/handles.js'
import { startLocalNodes } from '../helpers/local.js'
import { rawRequest } from '../helpers/raw.js'
import { deferred, waitFor } from '../helpers/wait.js'

/** GRACE_MS is the grace period of the test that outlives it. */
const GRACE_MS = 100

describe('gc.close()', () => {
  test('answers peers 503 while it drains, lets a load in flight finish, then closes every socket', async () => {
    const before = await settledTcpHandles()
    const { nodes, urls } = await startLocalNodes(1)
    const gc = nodes[0]!
    const held = deferred<string>()
    const group = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: () => held.promise })
    const port = Number(new URL(urls[0]!).port)
    const inFlight = rawRequest(port, '/_groupcache/g/slow')
    const local = group.get('slow')
    await waitFor('the peer request and the local get to wait on the load', () => group.stats.loads >= 2)
    // A grace period far longer than the test needs: the load finishes when the test says.
    const closing = gc.close({ graceMs: 60_000 })
    assert.equal(gc.close({ graceMs: 60_000 }), closing, 'close is idempotent')
    const refused = await gc.handler({ method: 'GET', url: '/_groupcache/g/other', headers: {} })
    assert.equal(refused.status, 503)
    await assert.rejects(group.get('later'), ClosedError)
    held.resolve('done')
    assert.equal(await local, 'done')
    const answered = await inFlight
    assert.equal(answered.status, 200, 'the peer waiting on the load got its answer')
    await closing
    await waitFor(`the TCP handles to be back to ${before}`, () => tcpHandles() === before).catch(() => {})
    assert.equal(tcpHandles(), before)
  })

  test('aborts loads still running after the grace period', async () => {
    const { nodes } = await startLocalNodes(1)
    const gc = nodes[0]!
    let signal: AbortSignal | undefined
    const group = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (_key: string, ctx: LoadContext) =>
        new Promise<string>((_resolve, reject) => {
          signal = ctx.signal
          ctx.signal.addEventListener('abort', () => reject(new Error('stopped')))
        }),
    })
    // Its rejection is expected from the moment close() aborts the load, which may be before close() resolves.
    // Its callers hear that the node closed, not the loader's own error.
    const stuck = assert.rejects(group.get('stuck'), ClosedError)
    await waitFor('the load to start', () => signal !== undefined)
    // A timer set just before close() for 1 ms less than the grace period
    // fires before close()'s own, however late both fire on a busy machine:
    // the load must still be running then.
    const duringGrace = new Promise<boolean>((resolve) => setTimeout(() => resolve(signal!.aborted), GRACE_MS - 1))
    const closing = gc.close({ graceMs: GRACE_MS })
    assert.equal(await duringGrace, false, 'the load ran on through the grace period')
    await closing
    assert.equal(signal!.aborted, true)
    await stuck
  })
})

describe('gc.close() with loaders that ignore ctx.signal', () => {
  test('rejects their callers with ClosedError at the grace deadline, without waiting for the loader', async () => {
    const { nodes, urls } = await startLocalNodes(1)
    const gc = nodes[0]!
    const held = deferred<string>()
    let started = 0
    const group = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      // Never looks at ctx.signal: only the test ends it.
      load: async () => (started++, held.promise),
    })
    try {
      const local = group.get('stuck')
      const fromPeer = rawRequest(Number(new URL(urls[0]!).port), '/_groupcache/g/stuck')
      await waitFor('the local get and the peer request to wait on the load', () => started === 1 && group.stats.serverRequests === 1)
      const closing = gc.close({ graceMs: 100 })
      // A guard against hanging, not a timing claim: the loader never ends on its own.
      const hung = new Promise<never>((_resolve, reject) =>
        setTimeout(() => reject(new Error('still waiting long after the grace period')), 10_000).unref(),
      )
      await Promise.race([assert.rejects(local, ClosedError), hung])
      const answer = await Promise.race([fromPeer.catch(() => ({ status: 0 })), hung])
      assert.ok(answer.status === 503 || answer.status === 0, `the peer got ${answer.status}`)
      await Promise.race([closing, hung])
      assert.equal(started, 1)
    } finally {
      held.resolve('too late')
    }
  })

  test('rejects with ClosedError the callers of loads that remove() and clear() detached from their keys', async () => {
    // remove() and clear() let a load in flight answer its callers but keep
    // nothing; a loader that never ends kept those callers waiting past
    // close(), for ever.
    const { nodes } = await startLocalNodes(1)
    const gc = nodes[0]!
    const held = deferred<string>()
    let started = 0
    const group = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: async () => (started++, held.promise) })
    try {
      const removed = group.get('removed')
      const cleared = group.get('cleared')
      await waitFor('both loads to start', () => started === 2)
      await group.remove('removed')
      await group.clear()
      const hung = new Promise<never>((_resolve, reject) =>
        setTimeout(() => reject(new Error('still waiting long after the grace period')), 10_000).unref(),
      )
      await Promise.race([gc.close({ graceMs: 100 }), hung])
      await Promise.race([assert.rejects(removed, ClosedError), hung])
      await Promise.race([assert.rejects(cleared, ClosedError), hung])
    } finally {
      held.resolve('too late')
    }
  })
})
