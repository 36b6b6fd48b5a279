import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Breaker, DEFAULT_BREAKER_BACKOFF_MS, DEFAULT_BREAKER_FAILURES } from '../src/breaker.js'

describe('Breaker', () => {
  test('stays closed below the failure threshold, and a success resets the count', () => {
    const b = new Breaker({ failures: 3, now: () => 0 })
    b.failure('one')
    b.failure('two')
    assert.equal(b.state, 'closed')
    assert.equal(b.allow(), true)
    b.success()
    b.failure('three')
    b.failure('four')
    assert.equal(b.state, 'closed')
    assert.equal(b.failures, 2)
  })

  test('opens after the threshold, skips its peer for the back-off, then lets exactly one probe through', () => {
    let now = 1_000
    const b = new Breaker({ failures: 2, backoffMs: 100, now: () => now })
    b.failure('refused')
    b.failure('refused')
    assert.equal(b.state, 'open')
    assert.equal(b.allow(), false)
    assert.equal(b.lastError, 'refused')
    now += 99
    assert.equal(b.allow(), false)
    now += 1
    assert.equal(b.state, 'half-open')
    assert.equal(b.allow(), true, 'the probe')
    assert.equal(b.allow(), false, 'only one probe at a time')
    b.success()
    assert.equal(b.state, 'closed')
    assert.equal(b.allow(), true)
  })

  test('a failed probe reopens the circuit with a doubled back-off, capped', () => {
    let now = 0
    const b = new Breaker({ failures: 1, backoffMs: 100, maxBackoffMs: 300, now: () => now })
    b.failure('x')
    const probeAt = (after: number): void => {
      now += after - 1
      assert.equal(b.allow(), false, `still open ${after - 1} ms later`)
      now += 1
      assert.equal(b.allow(), true, `probe ${after} ms later`)
      b.failure('x')
    }
    probeAt(100)
    probeAt(200)
    probeAt(300)
    probeAt(300)
  })

  test('a probe that ends without a verdict lets the next one through', () => {
    let now = 0
    const b = new Breaker({ failures: 1, backoffMs: 10, now: () => now })
    b.failure('x')
    now = 10
    assert.equal(b.allow(), true)
    b.release()
    assert.equal(b.allow(), true)
  })

  test('has documented defaults', () => {
    assert.equal(DEFAULT_BREAKER_FAILURES, 3)
    assert.equal(DEFAULT_BREAKER_BACKOFF_MS, 1_000)
  })
})
