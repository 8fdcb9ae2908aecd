import { describe, expect, it } from 'vitest'
import { DecodeError, decodeCanonical, encodeCanonical, MosaikError } from '../../platform/node/index.ts'
import { equalBytes, toHex } from '../../src/primitives/bytes.ts'
import { encodeCanonicalShared, encodeCanonicalSlow } from '../../src/primitives/codec.ts'
import { INTS, KEYS, nestedArrays, prng, randomValue, withoutUndefined } from './support.ts'

describe('canonical codec', () => {
  it('gives the same bytes for the same value however it was built', () => {
    const a = encodeCanonical({
      b: 1,
      a: [1, 2],
      s: new Set([3, 1, 2]),
      m: new Map([
        [[2], 'x'],
        [[1], 'y'],
      ]),
    })
    const b = encodeCanonical({
      m: new Map([
        [[1], 'y'],
        [[2], 'x'],
      ]),
      s: new Set([2, 3, 1]),
      a: [1, 2],
      b: 1,
    })
    expect(equalBytes(a, b)).toBe(true)
  })

  it('round-trips JSON-like values, bytes, bigint, Map and Set', () => {
    const value = {
      n: -3,
      f: 1.5,
      s: 'héllo',
      bytes: new Uint8Array([1, 2, 3]),
      big: 2n ** 70n,
      nested: [null, true, { x: 1 }],
      map: new Map<unknown, unknown>([[{ k: 1 }, 'object key']]),
      set: new Set(['a', 'b']),
    }
    expect(decodeCanonical(encodeCanonical(value))).toEqual(value)
  })

  it('keeps what holds a Map or Set: arrays, objects, and each other', () => {
    const map = new Map<unknown, unknown>([
      ['b', [1, 2]],
      ['a', new Set([3])],
    ])
    const values: unknown[] = [
      [1, map],
      [new Set([1, 2]), 'after'],
      [[new Map([[1, 'x']])], { m: map }],
      new Map([['k', [map, map]]]),
      // A key the direct writer leaves to cborg, larger than the first scratch buffer.
      [0, new Map([[new Set(['x'.repeat(5000)]), 'big key']])],
    ]
    for (const value of values) expect(decodeCanonical(encodeCanonical(value))).toEqual(value)
    const alone = encodeCanonical(map)
    const held = encodeCanonical([1, map])
    expect([...held.subarray(0, 2)]).toEqual([0x82, 0x01])
    expect(equalBytes(held.subarray(2), alone)).toBe(true)
  })

  it('ignores undefined properties, like JSON', () => {
    expect(equalBytes(encodeCanonical({ a: 1, b: undefined }), encodeCanonical({ a: 1 }))).toBe(true)
  })

  it('rejects malformed, non-minimal and trailing input with a DecodeError', () => {
    expect(() => decodeCanonical(new Uint8Array([0xff]))).toThrow(DecodeError)
    expect(() => decodeCanonical(new Uint8Array([0x18, 0x01]))).toThrow(DecodeError) // 1 encoded in 2 bytes
    expect(() => decodeCanonical(new Uint8Array([0x01, 0x02]))).toThrow(DecodeError) // trailing bytes
    expect(() => decodeCanonical(new Uint8Array([0x9f, 0x01, 0xff]))).toThrow(DecodeError) // indefinite
    expect(() => decodeCanonical(new Uint8Array([0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02]))).toThrow(
      DecodeError,
    )
  })
})

function expectSameEncoding(value: unknown): void {
  let slow: Uint8Array | undefined
  let slowError: unknown
  try {
    slow = encodeCanonicalSlow(value)
  } catch (err) {
    slowError = err
  }
  if (slow === undefined) {
    expect(() => encodeCanonical(value)).toThrow(slowError as Error)
    try {
      encodeCanonical(value)
    } catch (err) {
      expect(err).toBeInstanceOf(MosaikError)
      expect((err as MosaikError).code).toBe((slowError as MosaikError).code)
    }
    return
  }
  const fast = encodeCanonical(value)
  if (!equalBytes(fast, slow)) expect(toHex(fast)).toBe(toHex(slow))
}

describe('canonical codec: direct writer', () => {
  it('writes the same bytes as cborg for thousands of random plain values, and round-trips them', () => {
    const rand = prng(0x5eed)
    for (let i = 0; i < 4000; i++) {
      const value = randomValue(rand, 0)
      const fast = encodeCanonical(value)
      const slow = encodeCanonicalSlow(value)
      if (!equalBytes(fast, slow)) {
        throw new Error(`value #${i} encodes differently:\nfast ${toHex(fast)}\nslow ${toHex(slow)}`)
      }
      expect(decodeCanonical(fast)).toEqual(withoutUndefined(value))
    }
  })

  it('writes integer heads at every size boundary like cborg', () => {
    for (const n of INTS) expectSameEncoding(n)
    expect(toHex(encodeCanonical(23))).toBe('17')
    expect(toHex(encodeCanonical(24))).toBe('1818')
    expect(toHex(encodeCanonical(-25))).toBe('3818')
    expect(toHex(encodeCanonical(2 ** 32))).toBe('1b0000000100000000')
    expect(toHex(encodeCanonical(-(2 ** 53 - 1)))).toBe('3b001ffffffffffffe')
  })

  it('sorts keys by their encoded bytes: shorter first, then UTF-8 byte order', () => {
    const obj: Record<string, number> = {}
    KEYS.forEach((k, i) => {
      obj[k] = i
    })
    expectSameEncoding(obj)
    // UTF-16 puts '😀' (d83d…) before '\uffffa'; UTF-8 puts ef bf bf 61 before f0 9f 98 80
    expect(toHex(encodeCanonical({ '😀': 1, '\uffffa': 2 }))).toBe('a264efbfbf610264f09f988001')
    // ≥ 24 keys of which some are undefined: the head shrinks back to one byte
    const many: Record<string, unknown> = {}
    for (let i = 0; i < 26; i++) many[`k${i}`] = i < 5 ? undefined : i
    expectSameEncoding(many)
    expect(encodeCanonical(many)[0]).toBe(0xa0 + 21)
  })

  it('writes lone surrogates as U+FFFD, like cborg, in short and long strings', () => {
    for (const s of [
      '\ud800',
      'a\udc00b',
      '\ud83d\ud83d\ude00',
      `${'x'.repeat(30)}\ud800`,
      '\udfff'.repeat(100),
    ]) {
      expectSameEncoding(s)
      expectSameEncoding({ [s]: s })
    }
    // Two keys that differ only in lone surrogates become one key twice, as with cborg (which
    // decodeCanonical then rejects)
    expectSameEncoding({ '\ud800': 1, '\udc00': 2, a: 3 })
  })

  it('writes Buffers, large strings and large byte arrays like cborg', () => {
    for (const n of [65535, 65536]) {
      expectSameEncoding('a'.repeat(n))
      expectSameEncoding(`${'a'.repeat(n - 2)}é`)
      expectSameEncoding(`${'a'.repeat(n - 1)}é`)
      expectSameEncoding(new Uint8Array(n).fill(1))
      expectSameEncoding([new Uint8Array(n), { k: 'b'.repeat(n) }])
    }
    expectSameEncoding(Buffer.from('hello buffer'))
    expectSameEncoding({ b: Buffer.alloc(300, 7) })
    expectSameEncoding('é'.repeat(40_000))
    expectSameEncoding(new Uint8Array(1536 * 1024).fill(9))
    expectSameEncoding([1, 'after a large value', new Uint8Array(5)])
  })

  it('leaves values outside the subset to cborg: same bytes, or the same error', () => {
    class Point {
      readonly x: number
      readonly y: number
      constructor(x: number, y: number) {
        this.x = x
        this.y = y
      }
    }
    const deep = nestedArrays(100)
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    const taggedSet = Object.create(null)
    taggedSet[Symbol.toStringTag] = 'Set'
    const outside: unknown[] = [
      1.5,
      -0,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      2 ** 53,
      -(2 ** 53),
      1e300,
      5n,
      -(2n ** 70n),
      2n ** 64n,
      new Map<unknown, unknown>([
        [2, 'b'],
        [1, 'a'],
      ]),
      new Set(['b', 'a']),
      { ok: 1, nested: new Map([['k', [1, 2]]]) },
      { x: [1, { y: new Set([3]) }] },
      [1, undefined, 2],
      new Array(3), // holes
      undefined,
      { a: [undefined] },
      new Date(0),
      new Point(1, 2),
      { p: new Point(1, 2) },
      new Uint16Array([1, 2]),
      new ArrayBuffer(3),
      { f: () => 1 },
      Symbol('s'),
      deep,
      cyclic,
      taggedSet,
      { fl: 0.1, i: 1 },
      [-0],
    ]
    for (const value of outside) expectSameEncoding(value)
  })

  it('turns a throwing getter into the same ENCODE error', () => {
    const value = {
      a: 1,
      get b(): number {
        throw new Error('no b')
      },
    }
    expect(() => encodeCanonicalSlow(value)).toThrow(/no b/)
    expectSameEncoding(value)
  })

  it('encodes re-entrantly when a getter itself encodes', () => {
    const value = {
      a: 1,
      get b(): Uint8Array {
        return encodeCanonical({ inner: [1, 2, 3] })
      },
    }
    expectSameEncoding(value)
  })

  it('returns bytes the caller owns: a later encoding does not change them', () => {
    const first = encodeCanonical({ index: 1, term: 2, data: new Uint8Array([1, 2, 3]) })
    const copy = first.slice()
    encodeCanonical({ index: 99, term: 98, data: new Uint8Array(500).fill(0xee) })
    encodeCanonical('x'.repeat(5000))
    expect(toHex(first)).toBe(toHex(copy))
    expect(first.byteLength).toBe(first.buffer.byteLength)
  })

  it('shares slabs only for bytes to send: the same bytes, none overwritten, large ones apart', () => {
    const next = prng(7)
    const values = Array.from({ length: 3000 }, () => randomValue(next, 3))
    // Enough of them to fill several slabs: every result must survive the encodes after it.
    const shared = values.map((v) => encodeCanonicalShared(v))
    for (let i = 0; i < values.length; i++) {
      expect(toHex(shared[i]!), `value ${i}`).toBe(toHex(encodeCanonical(values[i])))
    }
    const small = encodeCanonicalShared({ term: 1, entries: [[1, 1, 0, new Uint8Array(100)]] })
    expect(small.byteLength).toBeLessThan(small.buffer.byteLength)
    expect(small.byteOffset % 8).toBe(0)
    const large = encodeCanonicalShared(new Uint8Array(10_000))
    expect(large.byteLength).toBe(large.buffer.byteLength)
    // Outside the direct writer's subset it is cborg's bytes, as for encodeCanonical.
    const map = new Map([[1, 'a']])
    expect(toHex(encodeCanonicalShared(map))).toBe(toHex(encodeCanonical(map)))
  })
})
