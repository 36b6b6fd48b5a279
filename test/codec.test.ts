import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type Codec, type CodecName, DEFAULT_CODEC, encodeValue, MSGPACK_SCRATCH_BYTES, resolveCodec } from '../src/codec.js'
import { CodecError } from '../src/errors.js'

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

/** objects lists every object and array reachable from a value, itself included. */
function objects(value: unknown, out: object[] = []): object[] {
  if (typeof value !== 'object' || value === null) return out
  out.push(value)
  if (ArrayBuffer.isView(value) || value instanceof Map || value instanceof Set || value instanceof Date) return out
  for (const child of Object.values(value)) objects(child, out)
  return out
}

function nested(): { name: string; n: number; list: unknown[]; inner: { deep: { deeper: number[]; flag: boolean } } } {
  return {
    name: 'groupcache',
    n: -7,
    list: [1, 2.5, 'three', null, true, { x: 'y' }],
    inner: { deep: { deeper: [1, 2, 3], flag: false } },
  }
}

function isCodecError(err: unknown): boolean {
  assert.ok(err instanceof CodecError, `expected a CodecError, got ${String(err)}`)
  assert.equal(err.code, 'ERR_GROUPCACHE_CODEC')
  return true
}

describe('resolveCodec', () => {
  for (const name of ['msgpack', 'json'] as const) {
    describe(`'${name}'`, () => {
      test('round-trips a nested object', () => {
        const codec = resolveCodec(name, 'options.codec')
        const bytes = codec.encode(nested())
        assert.ok(bytes instanceof Uint8Array)
        assert.deepEqual(codec.decode(bytes), nested())
      })

      test('share deep-freezes a decoded plain value at every level and says it could', () => {
        const codec = resolveCodec(name, 'options.codec')
        const value = codec.decode(codec.encode(nested())) as ReturnType<typeof nested>
        assert.equal(codec.share(value), true)
        const all = objects(value)
        assert.equal(all.length, 6) // root, list, list[5], inner, deep, deeper
        for (const o of all) assert.ok(Object.isFrozen(o), `not frozen: ${JSON.stringify(o)}`)
        // Modules run in strict mode, so writes to frozen objects throw.
        assert.throws(() => {
          value.name = 'changed'
        }, TypeError)
        assert.throws(() => {
          value.inner.deep.flag = true
        }, TypeError)
        assert.throws(() => {
          value.inner.deep.deeper.push(4)
        }, TypeError)
        assert.throws(() => {
          ;(value.list[5] as { x: string }).x = 'z'
        }, TypeError)
        assert.deepEqual(value, nested())
      })

      test('share says a primitive can be shared', () => {
        const codec = resolveCodec(name, 'options.codec')
        for (const v of [1, 'text', true, null]) assert.equal(codec.share(codec.decode(codec.encode(v))), true, String(v))
      })

      const specials: Array<[string, () => unknown]> = [
        ['Buffer', () => Buffer.from([1, 2, 3])],
        ['Uint8Array', () => new Uint8Array([1, 2, 3])],
        ['Date', () => new Date(0)],
        ['Map', () => new Map([['a', 1]])],
        ['Set', () => new Set([1])],
      ]
      for (const [kind, make] of specials) {
        test(`share refuses a value holding a ${kind} and freezes nothing in it`, () => {
          const codec = resolveCodec(name, 'options.codec')
          // Plain siblings come before the special value, so a walk that froze
          // as it went would have frozen them before finding it.
          const value = { first: { a: [1, { b: 2 }] }, second: [{ c: 3 }], deep: { list: [{ d: 4 }, { special: make() }] } }
          assert.equal(codec.share(value), false)
          const all = objects(value)
          assert.equal(all.length, 11)
          for (const o of all) assert.ok(!Object.isFrozen(o), `frozen: ${Object.prototype.toString.call(o)}`)
        })
      }
    })
  }

  test("'msgpack' refuses to share a decoded value holding binary data or a Date", () => {
    const codec = resolveCodec('msgpack', 'options.codec')
    const value = codec.decode(codec.encode({ meta: { n: 1 }, blob: Buffer.from([9, 8]), when: new Date(5) })) as {
      meta: { n: number }
      blob: Uint8Array
      when: Date
    }
    assert.ok(value.blob instanceof Uint8Array)
    assert.ok(value.when instanceof Date)
    assert.equal(codec.share(value), false)
    for (const o of objects(value)) assert.ok(!Object.isFrozen(o))
    value.blob[0] = 1
    assert.equal(value.blob[0], 1)
  })

  test("'msgpack' is the default codec", () => {
    assert.equal(DEFAULT_CODEC, 'msgpack')
    const byDefault = resolveCodec(undefined, 'options.codec')
    const msgpack = resolveCodec('msgpack', 'options.codec')
    assert.deepEqual(byDefault.encode(nested()), msgpack.encode(nested()))
    assert.deepEqual(msgpack.decode(byDefault.encode(nested())), nested())
  })

  test("'json' writes JSON text as UTF-8", () => {
    const codec = resolveCodec('json', 'options.codec')
    assert.deepEqual(codec.encode({ a: 'ä', b: [1] }), utf8('{"a":"ä","b":[1]}'))
  })

  test("'json' refuses bytes that are not valid UTF-8 instead of replacing them", () => {
    const codec = resolveCodec('json', 'options.codec')
    // A lenient decoder would read this as "\uFFFD", which is valid JSON.
    assert.throws(() => codec.decode(new Uint8Array([0x22, 0xff, 0x22])), TypeError)
  })

  test("'string' round-trips unicode text as UTF-8 and can always share", () => {
    const codec = resolveCodec('string', 'options.codec')
    for (const text of ['', 'plain', 'héllo wörld', 'ключ — 日本語 🎉 \u0000 end']) {
      const bytes = codec.encode(text)
      assert.deepEqual(bytes, utf8(text), text)
      assert.equal(codec.decode(bytes), text, text)
      assert.equal(codec.share(codec.decode(bytes)), true)
    }
  })

  test("'string' refuses bytes that are not valid UTF-8", () => {
    const codec = resolveCodec('string', 'options.codec')
    assert.throws(() => codec.decode(new Uint8Array([0x61, 0xc3])), TypeError)
  })

  test("'bytes' decodes a fresh copy each time, so a caller's writes do not reach the next caller", () => {
    const codec = resolveCodec('bytes', 'options.codec')
    const stored = new Uint8Array([1, 2, 3])
    const first = codec.decode(stored) as Uint8Array
    first[0] = 99
    const second = codec.decode(stored) as Uint8Array
    assert.deepEqual([...second], [1, 2, 3])
    assert.deepEqual([...stored], [1, 2, 3])
    assert.equal(codec.share(second), false)
  })

  test("'bytes' hands out bytes it is told are a fresh copy as they are, and copies any others", () => {
    const codec = resolveCodec('bytes', 'options.codec')
    const fresh = Buffer.from([1, 2, 3])
    assert.equal(codec.decode(fresh, true), fresh)
    const held = Buffer.from([1, 2, 3])
    const copy = codec.decode(held, false) as Buffer
    assert.notEqual(copy, held)
    assert.deepEqual([...copy], [1, 2, 3])
  })

  test("'msgpack' decodes binary data into copies, so a caller writing to it cannot change the bytes it came from", () => {
    const codec = resolveCodec('msgpack', 'options.codec')
    const bytes = codec.encode({ blob: Buffer.alloc(2000, 7) })
    const before = [...bytes]
    const value = codec.decode(bytes) as { blob: Uint8Array }
    value.blob.fill(0)
    assert.deepEqual([...bytes], before)
    assert.equal((codec.decode(bytes) as { blob: Uint8Array }).blob[0], 7)
  })

  test("'msgpack' does not keep a large scratch buffer after a large value: later values come from a small one", () => {
    const codec = resolveCodec('msgpack', 'options.codec')
    const large = codec.encode('x'.repeat(256 * 1024))
    assert.equal(large.length, 256 * 1024 + 5)
    const small = codec.encode({ id: 1 })
    assert.ok(
      small.buffer.byteLength <= MSGPACK_SCRATCH_BYTES,
      `a small value was written into a buffer of ${small.buffer.byteLength} bytes`,
    )
    assert.deepEqual(codec.decode(small), { id: 1 })
    assert.equal((codec.decode(large) as string).length, 256 * 1024, 'the large value was not overwritten')
  })

  test("'bytes' encode copies its input, including only a view's own range", () => {
    const codec = resolveCodec('bytes', 'options.codec')
    for (const input of [new Uint8Array([4, 5, 6]), Buffer.from([4, 5, 6]), new Uint8Array([0, 4, 5, 6, 0]).subarray(1, 4)]) {
      const bytes = codec.encode(input)
      assert.deepEqual([...bytes], [4, 5, 6])
      input[0] = 0
      assert.deepEqual([...bytes], [4, 5, 6], 'a later write to the input changed the encoded bytes')
    }
  })

  test('a custom codec passes values and bytes through and is never shared', () => {
    const seen: unknown[] = []
    class Upper implements Codec<unknown> {
      readonly prefix = 'up:'
      encode(value: unknown): Uint8Array {
        seen.push(['encode', value])
        return utf8(this.prefix + String(value).toUpperCase())
      }
      decode(bytes: Uint8Array): unknown {
        seen.push(['decode', bytes.length])
        return { text: new TextDecoder().decode(bytes) }
      }
    }
    const codec = resolveCodec(new Upper(), 'options.codec')
    const bytes = codec.encode('abc')
    assert.deepEqual(bytes, utf8('up:ABC'))
    const value = codec.decode(bytes)
    assert.deepEqual(value, { text: 'up:ABC' })
    assert.equal(codec.share(value), false)
    assert.equal(Object.isFrozen(value), false)
    assert.deepEqual(seen, [
      ['encode', 'abc'],
      ['decode', 6],
    ])
  })

  test('a bad codec option throws a TypeError that names the option and what it got', () => {
    const cases: Array<{ option: unknown; got: string }> = [
      { option: 'yaml', got: '"yaml"' },
      { option: 42, got: '42' },
      { option: [], got: 'an array' },
      { option: () => {}, got: 'a function' },
      { option: { encode: () => new Uint8Array(0) }, got: 'an object' },
      { option: { decode: () => null }, got: 'an object' },
      { option: { encode: 1, decode: 2 }, got: 'an object' },
    ]
    for (const { option, got } of cases) {
      assert.throws(
        () => resolveCodec(option as CodecName, 'options.codec'),
        (err: unknown) => {
          assert.ok(err instanceof TypeError, `${got}: ${String(err)}`)
          assert.match(err.message, /^expected options\.codec to be /)
          assert.ok(err.message.endsWith(`got ${got}`), err.message)
          return true
        },
        got,
      )
    }
  })

  test('each resolve of msgpack makes its own codec', () => {
    assert.notEqual(resolveCodec('msgpack', 'options.codec'), resolveCodec('msgpack', 'options.codec'))
  })
})

describe('encodeValue', () => {
  test('returns exactly the bytes the codec encoded', () => {
    const out = new Uint8Array([1, 2])
    const codec = resolveCodec({ encode: () => out, decode: () => null }, 'options.codec')
    assert.equal(encodeValue(codec, 'x', 'the value'), out)
  })

  test('wraps an encode error as a CodecError with the error as cause', () => {
    const boom = new Error('cannot do it')
    const codec = resolveCodec(
      {
        encode: () => {
          throw boom
        },
        decode: () => null,
      },
      'options.codec',
    )
    assert.throws(
      () => encodeValue(codec, 'x', 'the value of "k"'),
      (err: unknown) => {
        isCodecError(err)
        assert.equal((err as CodecError).cause, boom)
        assert.match((err as CodecError).message, /the value of "k"/)
        return true
      },
    )
  })

  test('rejects an encode that returns something other than a Uint8Array', () => {
    const returns: unknown[] = ['text', undefined, null, new ArrayBuffer(2), [1, 2], new DataView(new ArrayBuffer(2))]
    for (const result of returns) {
      const codec = resolveCodec({ encode: () => result as Uint8Array, decode: () => null }, 'options.codec')
      assert.throws(() => encodeValue(codec, 'x', 'v'), isCodecError, String(result))
    }
  })

  test('reports values a built-in codec cannot represent as CodecError', () => {
    const cases: Array<{ codec: CodecName; value: unknown }> = [
      { codec: 'string', value: 42 },
      { codec: 'string', value: { a: 1 } },
      { codec: 'bytes', value: 'not bytes' },
      { codec: 'json', value: undefined },
      { codec: 'json', value: 10n },
    ]
    for (const { codec, value } of cases) {
      assert.throws(
        () => encodeValue(resolveCodec(codec, 'options.codec'), value, 'v'),
        (err: unknown) => {
          isCodecError(err)
          assert.ok((err as CodecError).cause instanceof TypeError)
          return true
        },
        `${codec} ${typeof value}`,
      )
    }
  })
})
