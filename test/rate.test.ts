import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { RATE_WINDOW_MS, Rate } from '../src/rate.js'

const MINUTE = RATE_WINDOW_MS
const T0 = 1_764_000_000_000 - (1_764_000_000_000 % MINUTE) // the start of a window

describe('Rate', () => {
  test('counts events per second over the current minute', () => {
    const rate = new Rate(T0)
    assert.equal(rate.perSecond(T0), 0)
    for (let i = 0; i < 120; i++) rate.add(T0 + i * 100)
    assert.equal(rate.perSecond(T0 + 30_000), 2)
    assert.equal(rate.lastPerSecond, 2)
  })

  test("blends the previous minute's count in, less of it the further into the current minute", () => {
    const rate = new Rate(T0)
    for (let i = 0; i < 600; i++) rate.add(T0 + i * 100) // 10 per second for the first minute
    rate.add(T0 + MINUTE) // one event at the start of the next
    assert.equal(rate.perSecond(T0 + MINUTE), 601 / 60)
    assert.equal(rate.perSecond(T0 + MINUTE + MINUTE / 4), (600 * 0.75 + 1) / 60)
    assert.equal(rate.perSecond(T0 + MINUTE + MINUTE / 2), (600 * 0.5 + 1) / 60)
  })

  test('fades to 0 over the minute after the last event, and stays there', () => {
    const rate = new Rate(T0)
    for (let i = 0; i < 60; i++) rate.add(T0 + i * 1000)
    assert.equal(rate.perSecond(T0 + MINUTE - 1), 1)
    assert.equal(rate.perSecond(T0 + MINUTE + MINUTE / 2), 0.5)
    assert.equal(rate.perSecond(T0 + 2 * MINUTE), 0)
    assert.equal(rate.perSecond(T0 + 60 * MINUTE), 0)
    // Counting again after a long pause starts from nothing.
    rate.add(T0 + 60 * MINUTE)
    assert.equal(rate.perSecond(T0 + 60 * MINUTE), 1 / 60)
  })

  test('lastPerSecond is the rate as of the last event, whatever the time now', () => {
    const rate = new Rate(T0)
    for (let i = 0; i < 30; i++) rate.add(T0 + MINUTE / 2)
    assert.equal(rate.lastPerSecond, 0.5)
    rate.add(T0 + MINUTE + MINUTE / 2)
    assert.equal(rate.lastPerSecond, (30 * 0.5 + 1) / 60)
  })

  test('of takes a rate another node reported, which then fades like a counted one', () => {
    const rate = Rate.of(2.5, T0 + 10_000)
    assert.equal(rate.perSecond(T0 + 10_000), 2.5)
    assert.equal(rate.lastPerSecond, 2.5)
    assert.equal(rate.perSecond(T0 + MINUTE + MINUTE / 2), 1.25)
    assert.equal(rate.perSecond(T0 + 2 * MINUTE), 0)
  })

  test('of keeps whole events per minute: a rate under half an event a minute is 0, and absurd rates are capped', () => {
    assert.equal(Rate.of(0.001, T0).perSecond(T0), 0)
    assert.equal(Rate.of(1 / 60, T0).perSecond(T0), 1 / 60)
    const huge = Rate.of(1e300, T0).perSecond(T0)
    assert.ok(Number.isFinite(huge) && huge > 1e6, `got ${huge}`)
  })

  test('a clock that steps back counts in the window it has', () => {
    const rate = new Rate(T0 + MINUTE)
    rate.add(T0 + MINUTE)
    rate.add(T0 + 10) // earlier than the window
    assert.equal(rate.perSecond(T0 + MINUTE), 2 / 60)
  })
})
