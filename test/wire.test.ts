import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  decodeGetResponse,
  encodeGetResponse,
  type GetResponse,
  MINUTE_QPS_FIELD_BYTES,
  MinuteQpsText,
  minuteQpsField,
  WireError,
} from '../src/wire.js'

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

/** plain turns a decoded message into comparable plain data. */
function plain(msg: GetResponse): { value: string; minuteQps?: number; expire?: number; staleUntil?: number } {
  const out: { value: string; minuteQps?: number; expire?: number; staleUntil?: number } = { value: hex(msg.value) }
  if (msg.minuteQps !== undefined) out.minuteQps = msg.minuteQps
  if (msg.expire !== undefined) out.expire = msg.expire
  if (msg.staleUntil !== undefined) out.staleUntil = msg.staleUntil
  return out
}

describe('encodeGetResponse', () => {
  test("encodes Go's example (value-of:hello) byte for byte", () => {
    assert.equal(hex(encodeGetResponse({ value: utf8('value-of:hello') })), '0a0e76616c75652d6f663a68656c6c6f')
  })

  test('encodes an empty value as 0a 00', () => {
    assert.equal(hex(encodeGetResponse({ value: new Uint8Array(0) })), '0a00')
  })

  test('writes expire as field 3, wire type 0 (varint), after the value', () => {
    // 1764000000000 as a varint is 80 d0 df b4 ab 33.
    assert.equal(hex(encodeGetResponse({ value: utf8('v'), expire: 1764000000000 })), '0a0176' + '18' + '80d0dfb4ab33')
  })

  test('writes stale_until as field 4, wire type 0 (varint), after expire', () => {
    // 1764000020000 as a varint is a0 ec e0 b4 ab 33.
    assert.equal(
      hex(encodeGetResponse({ value: utf8('v'), expire: 1764000000000, staleUntil: 1764000020000 })),
      '0a0176' + '18' + '80d0dfb4ab33' + '20' + 'a0ece0b4ab33',
    )
  })

  test('omits stale_until when it is 0 or negative, and caps it at the largest safe integer', () => {
    for (const staleUntil of [0, -1]) assert.equal(hex(encodeGetResponse({ value: utf8('v'), staleUntil })), '0a0176')
    const capped = decodeGetResponse(encodeGetResponse({ value: utf8('v'), staleUntil: Infinity }))
    assert.equal(capped.staleUntil, Number.MAX_SAFE_INTEGER)
  })

  test('writes minute_qps as field 2, wire type 1 (little-endian double)', () => {
    assert.equal(hex(encodeGetResponse({ value: new Uint8Array(0), minuteQps: 1.5 })), '0a00' + '11' + '000000000000f83f')
  })

  test('writes minute_qps last: a message without it followed by minuteQpsField is the same bytes, for a server that keeps answers encoded', () => {
    for (const msg of [
      { value: utf8('cached'), expire: 1764000000000, staleUntil: 1764000060000 },
      { value: utf8('cached') },
      { value: new Uint8Array(300).fill(7), expire: 5 },
    ]) {
      const whole = encodeGetResponse({ ...msg, minuteQps: 42.5 })
      const tail = minuteQpsField(42.5)
      assert.equal(tail.length, MINUTE_QPS_FIELD_BYTES)
      assert.equal(hex(whole), hex(encodeGetResponse(msg)) + hex(tail))
      assert.deepEqual(plain(decodeGetResponse(whole)), { ...plain({ ...msg }), minuteQps: 42.5 })
    }
  })

  test('MinuteQpsText writes the minute_qps field as a one-byte string of the same bytes as minuteQpsField, call after call', () => {
    const text = new MinuteQpsText()
    for (const qps of [0, 1 / 60, 1.5, 42.5, 1e9, 123456.789, Number.MIN_VALUE]) {
      const field = text.of(qps)
      assert.equal(field.length, MINUTE_QPS_FIELD_BYTES)
      assert.equal(Buffer.from(field, 'latin1').toString('hex'), hex(minuteQpsField(qps)), `qps ${qps}`)
      const msg = { value: utf8('cached'), expire: 1764000000000 }
      const sent = Buffer.concat([encodeGetResponse(msg), Buffer.from(field, 'latin1')])
      assert.equal(decodeGetResponse(sent).minuteQps, qps)
    }
  })

  test('omits expire when it is 0, negative or rounds down to 0', () => {
    for (const expire of [0, -5, 0.5]) {
      assert.equal(hex(encodeGetResponse({ value: utf8('v'), expire })), '0a0176', `expire ${expire}`)
    }
  })

  test('writes a fractional expire rounded down', () => {
    assert.deepEqual(plain(decodeGetResponse(encodeGetResponse({ value: utf8('v'), expire: 1000.9 }))), { value: '76', expire: 1000 })
  })

  test('writes a 64 KB value with a three-byte length and reads it back unchanged', () => {
    const value = new Uint8Array(64 * 1024)
    for (let i = 0; i < value.length; i++) value[i] = (i * 31 + 7) & 0xff
    const bytes = encodeGetResponse({ value, expire: 42 })
    assert.equal(bytes.length, 1 + 3 + 65536 + 2)
    assert.equal(hex(bytes.subarray(0, 4)), '0a808004')
    assert.equal(hex(bytes.subarray(bytes.length - 2)), '182a')
    const decoded = decodeGetResponse(bytes)
    assert.equal(Buffer.compare(decoded.value, value), 0)
    assert.equal(decoded.expire, 42)
  })
})

describe('decodeGetResponse', () => {
  test('reads an empty value from both 0a 00 and an empty message', () => {
    for (const input of ['0a00', '']) {
      const msg = decodeGetResponse(fromHex(input))
      assert.ok(msg.value instanceof Uint8Array, `input "${input}"`)
      assert.deepEqual(plain(msg), { value: '' }, `input "${input}"`)
    }
  })

  test('round-trips every combination of value, minuteQps, expire and staleUntil', () => {
    const cases: GetResponse[] = [
      { value: utf8('value-of:hello') },
      { value: utf8('x'), expire: 1764000000000 },
      { value: utf8('x'), expire: 1 },
      { value: utf8('x'), expire: 127 },
      { value: utf8('x'), expire: 128 },
      { value: utf8('x'), expire: Number.MAX_SAFE_INTEGER },
      { value: new Uint8Array(0), minuteQps: 0 },
      { value: utf8('qps'), minuteQps: 12.25 },
      { value: utf8('qps'), minuteQps: -3.5e100 },
      { value: utf8('всё'), minuteQps: 0.1, expire: 1764000000000 },
      { value: utf8('x'), expire: 1764000000000, staleUntil: 1764000020000 },
      { value: utf8('x'), staleUntil: 5 },
      { value: utf8('x'), minuteQps: 1, expire: 1, staleUntil: Number.MAX_SAFE_INTEGER },
    ]
    for (const msg of cases) {
      assert.deepEqual(plain(decodeGetResponse(encodeGetResponse(msg))), plain(msg), JSON.stringify(plain(msg)))
    }
  })

  test('reads minute_qps correctly from a view that does not start at offset 0', () => {
    const encoded = encodeGetResponse({ value: utf8('ab'), minuteQps: 7.75, expire: 99 })
    const backing = new Uint8Array(encoded.length + 3)
    backing.set(encoded, 3)
    const view = backing.subarray(3)
    assert.deepEqual(plain(decodeGetResponse(view)), { value: '6162', minuteQps: 7.75, expire: 99 })
  })

  test('returns the value as a view into the input, not a copy', () => {
    const input = fromHex('0a03616263')
    const msg = decodeGetResponse(input)
    assert.equal(msg.value.buffer, input.buffer)
    assert.equal(msg.value.byteOffset, input.byteOffset + 2)
    assert.equal(msg.value.length, 3)
  })

  test('skips unknown fields of wire types 0, 1, 2 and 5 wherever they appear', () => {
    const cases: Array<{ name: string; input: string; want: ReturnType<typeof plain> }> = [
      { name: 'varint field 8 before value', input: '40 96 01' + '0a 02 6869', want: { value: '6869' } },
      { name: 'fixed64 field 5 before value', input: '29 0102030405060708' + '0a 02 6869', want: { value: '6869' } },
      { name: 'bytes field 6 before value', input: '32 03 ffffff' + '0a 02 6869', want: { value: '6869' } },
      { name: 'fixed32 field 7 before value', input: '3d 01020304' + '0a 02 6869', want: { value: '6869' } },
      {
        name: 'unknown fields after value',
        input: '0a 02 6869' + '40 01' + '29 0000000000000000' + '32 00' + '3d 00000000',
        want: { value: '6869' },
      },
      {
        name: 'field 100 (two-byte tag) between known fields',
        input: '0a 01 61' + 'a2 06 02 6263' + '18 05',
        want: { value: '61', expire: 5 },
      },
      {
        name: 'known field numbers with unexpected wire types',
        input: '08 07' + '0a 01 61' + '1a 01 62' + '10 09' + '22 01 63',
        want: { value: '61' },
      },
      { name: 'only unknown fields', input: '40 01', want: { value: '' } },
    ]
    for (const c of cases) {
      assert.deepEqual(plain(decodeGetResponse(fromHex(c.input))), c.want, c.name)
    }
  })

  test('keeps the last value when field 1 repeats, as protobuf does', () => {
    assert.deepEqual(plain(decodeGetResponse(fromHex('0a 01 61 0a 01 62'))), { value: '62' })
  })

  test('throws WireError for truncated or malformed input', () => {
    const cases: Array<{ name: string; input: string }> = [
      { name: 'truncated tag varint', input: '8a' },
      { name: 'truncated length varint', input: '0a 80' },
      { name: 'missing length', input: '0a' },
      { name: 'length past the end', input: '0a 05 6162' },
      { name: 'huge length', input: '0a ffffffffffffffff7f' },
      { name: 'truncated fixed64 (minute_qps)', input: '11 00000000' },
      { name: 'truncated unknown fixed64', input: '29 00' },
      { name: 'truncated fixed32', input: '3d 000000' },
      { name: 'truncated expire varint', input: '0a00 18 80' },
      { name: 'varint longer than 10 bytes', input: '18 ffffffffffffffffffff01' },
      { name: 'wire type 3 (start group)', input: '23 0a00' },
      { name: 'wire type 4 (end group)', input: '24' },
      { name: 'wire type 6', input: '26 00' },
      { name: 'wire type 7', input: '0a00 27' },
      { name: 'field number 0, varint', input: '00 00' },
      { name: 'field number 0, bytes', input: '02 00' },
    ]
    for (const c of cases) {
      assert.throws(
        () => decodeGetResponse(fromHex(c.input)),
        (err: unknown) => {
          assert.ok(err instanceof WireError, `${c.name}: got ${String(err)}`)
          assert.equal(err.name, 'WireError')
          return true
        },
        c.name,
      )
    }
  })
})
