import assert from 'node:assert/strict'
import { test } from 'node:test'
import { decodeDeferred, deferredBody, encodeFrame, HEARTBEAT, heartbeatEvery, MIN_HEARTBEAT_MS, parseWait } from '../src/deferred.js'

test('a frame after any number of heartbeats decodes to the answer it holds', () => {
  const answer = { status: 404, headers: { 'x-groupcache-error': 'ERR_GROUPCACHE_NOT_FOUND' }, body: Buffer.from('no such row') }
  for (const beats of [0, 1, 7]) {
    const bytes = Buffer.concat([Buffer.alloc(beats), encodeFrame(answer)])
    const got = decodeDeferred(bytes)
    assert.equal(got.status, 404)
    assert.deepEqual(got.headers, answer.headers)
    assert.equal(Buffer.from(got.body).toString(), 'no such row')
  }
})

test('a body that is not heartbeats and one frame is refused', () => {
  const frame = encodeFrame({ status: 200, headers: {}, body: Buffer.from('v') })
  const bad = [
    Buffer.alloc(0),
    Buffer.alloc(5),
    Buffer.from([2, 0, 0, 0, 0]),
    frame.subarray(0, 8),
    Buffer.concat([Buffer.from([1, 0, 0, 0, 2]), Buffer.from('{}')]),
    Buffer.concat([Buffer.from([1, 0, 0, 0, 14]), Buffer.from('{"status":999}')]),
  ]
  for (const bytes of bad) assert.throws(() => decodeDeferred(bytes), Error, bytes.toString('hex'))
})

test('parseWait reads a positive budget in ms and nothing else', () => {
  assert.equal(parseWait('10000'), 10_000)
  for (const value of [undefined, '', '0', '-1', '1.5', 'abc', '01', ['100']]) assert.equal(parseWait(value), undefined, String(value))
})

test('heartbeats come three times per budget, never more often than MIN_HEARTBEAT_MS', () => {
  assert.equal(heartbeatEvery(9_000), 3_000)
  assert.equal(heartbeatEvery(1), MIN_HEARTBEAT_MS)
})

test('deferredBody beats until the answer settles, then ends with its frame', async () => {
  let settle!: (v: { status: number; headers: Record<string, string>; body: Uint8Array }) => void
  const answer = new Promise<{ status: number; headers: Record<string, string>; body: Uint8Array }>((resolve) => (settle = resolve))
  const chunks: Uint8Array[] = []
  const reading = (async () => {
    for await (const chunk of deferredBody(answer, MIN_HEARTBEAT_MS)) {
      chunks.push(chunk)
      if (chunks.length === 3) settle({ status: 200, headers: {}, body: Buffer.from('done') })
    }
  })()
  await reading
  assert.deepEqual(chunks.slice(0, 3), [HEARTBEAT, HEARTBEAT, HEARTBEAT])
  assert.equal(Buffer.from(decodeDeferred(Buffer.concat(chunks)).body).toString(), 'done')
})
