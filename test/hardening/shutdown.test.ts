// close(): peer requests get 503 at once, loads in flight finish within the
// grace period or are aborted after it, and no socket is left open.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ClosedError, type LoadContext } from '../../src/index.js'
import { rawRequest } from '../helpers/raw.js'
import { startLocalNodes } from '../helpers/local.js'
import { settledTcpHandles, tcpHandles } from '../helpers/handles.js'
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
    const stuck = assert.rejects(group.get('stuck'), { code: 'ERR_GROUPCACHE_LOAD_FAILED' })
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
