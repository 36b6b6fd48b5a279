import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { AbortedError, CodecError, LoadError, LoadTimeoutError, NotFoundError, OverloadedError, PeerError } from '../src/errors.js'
import {
  answerError,
  ERROR_HEADER,
  errorAnswer,
  escapePathPart,
  MAX_ERROR_TEXT,
  MAX_REFRESH_WAIT_MS,
  parseGeneration,
  parseRefreshWait,
  unescapePathPart,
} from '../src/protocol.js'

describe('escapePathPart and unescapePathPart', () => {
  const cases: Array<[string, string]> = [
    ['plain-Key_1.0~', 'plain-Key_1.0~'],
    ['a b', 'a%20b'],
    ['a+b', 'a%2Bb'],
    ['a/b', 'a%2Fb'],
    ['/lead', '%2Flead'],
    ['100%', '100%25'],
    ['q?x=1&y=2', 'q%3Fx%3D1%26y%3D2'],
    ["it's (a) *star*!", 'it%27s%20%28a%29%20%2Astar%2A%21'],
    ['Привет', '%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82'],
    ['😀', '%F0%9F%98%80'],
    ['', ''],
  ]
  for (const [key, escaped] of cases) {
    test(`escapes ${JSON.stringify(key)} as ${JSON.stringify(escaped)} and decodes it back`, () => {
      assert.equal(escapePathPart(key), escaped)
      assert.equal(unescapePathPart(escaped), key)
    })
  }

  test("decodes Go's QueryEscape form, where a space is '+'", () => {
    assert.equal(unescapePathPart('a+b%2Bc'), 'a b+c')
  })

  test('rejects a bare % and bytes that are not UTF-8', () => {
    assert.throws(() => unescapePathPart('100%'), URIError)
    assert.throws(() => unescapePathPart('%zz'), URIError)
    assert.throws(() => unescapePathPart('%FF'), URIError)
  })
})

describe('parseGeneration', () => {
  test('reads a positive safe integer and nothing else', () => {
    assert.equal(parseGeneration('1'), 1)
    assert.equal(parseGeneration('9007199254740991'), Number.MAX_SAFE_INTEGER)
    for (const bad of [undefined, '', '0', '-1', '01', '1.5', ' 1', '1e3', '9007199254740993', ['1']]) {
      assert.equal(parseGeneration(bad), undefined, JSON.stringify(bad))
    }
  })
})

describe('the verdict mapping between server and client', () => {
  // What the server answers for an error, the client must read back as the
  // same kind of error: both sides go through protocol.ts.
  const roundTrip = (err: unknown): Error => {
    const answer = errorAnswer(err)
    return answerError('http://peer', answer.status, answer.headers[ERROR_HEADER], Buffer.from(answer.message))
  }

  test("a loader's verdict comes back as the same error, so the caller does not load again", () => {
    assert.ok(roundTrip(new NotFoundError('no such user')) instanceof NotFoundError)
    assert.ok(roundTrip(new LoadError('db down')) instanceof LoadError)
    assert.ok(roundTrip(new Error('thrown by a loader')) instanceof LoadError)
    assert.ok(roundTrip(new CodecError('cannot encode')) instanceof CodecError)
    assert.equal(roundTrip(new NotFoundError('no such user')).message, 'no such user')
  })

  test("a load's timeout is a verdict with its own code, yet a plain 500 on the wire, as Go peers expect of any failed load", () => {
    const answer = errorAnswer(new LoadTimeoutError('took too long'))
    assert.equal(answer.status, 500)
    assert.equal(answer.headers[ERROR_HEADER], 'ERR_GROUPCACHE_LOAD_TIMEOUT')
    const back = roundTrip(new LoadTimeoutError('took too long'))
    assert.ok(back instanceof LoadTimeoutError)
    assert.ok(back instanceof LoadError)
    assert.equal(back.message, 'took too long')
    assert.equal(back.status, 504)
  })

  test('a failure that is no verdict comes back as a PeerError, so the caller loads the key itself', () => {
    for (const err of [new AbortedError(undefined), new OverloadedError('busy')]) {
      const back = roundTrip(err)
      assert.ok(back instanceof PeerError, String(back))
      assert.equal(back.peerStatus, 503)
    }
  })

  test('an unknown verdict code from a peer is a PeerError, not a verdict', () => {
    const err = answerError('http://peer', 500, 'ERR_SOMETHING_ELSE', Buffer.from('boom'))
    assert.ok(err instanceof PeerError)
  })

  test('error text is cut at MAX_ERROR_TEXT on both sides', () => {
    const long = 'x'.repeat(MAX_ERROR_TEXT * 2)
    assert.equal(errorAnswer(new LoadError(long)).message.length, MAX_ERROR_TEXT)
    assert.equal(answerError('http://peer', 500, 'ERR_GROUPCACHE_LOAD_FAILED', Buffer.from(long)).message.length, MAX_ERROR_TEXT)
  })
})

describe('parseRefreshWait', () => {
  test('reads whole milliseconds, capped at MAX_REFRESH_WAIT_MS, and anything else as 0 (answer at once)', () => {
    const cases: Array<[string | string[] | undefined, number]> = [
      ['5000', 5000],
      ['0', 0],
      ['999999999', MAX_REFRESH_WAIT_MS],
      ['1e9', 0],
      ['-5', 0],
      ['5000 ', 0],
      ['0x10', 0],
      ['', 0],
      ['1234567890', 0],
      [['5000', '6000'], 0],
      [undefined, 0],
    ]
    for (const [value, want] of cases) assert.equal(parseRefreshWait(value), want, JSON.stringify(value))
  })
})
