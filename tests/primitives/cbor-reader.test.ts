import { describe, expect, it } from 'vitest'
import { DecodeError, decodeCanonical, encodeCanonical } from '../../platform/node/index.ts'
import { fromHex as parseHex, utf8 } from '../../src/primitives/bytes.ts'
import { GIVE_UP, readCanonical } from '../../src/primitives/cbor-reader.ts'
import { decodeCanonicalSlow, encodeCanonicalSlow } from '../../src/primitives/codec.ts'
import { nestedArrays, prng, randomValue } from './support.ts'

function fromHex(hex: string): Uint8Array {
  const bytes = parseHex(hex)
  if (bytes === undefined) throw new Error(`bad hex in test: ${hex}`)
  return bytes
}

type Outcome = { value: unknown } | { error: string }

function outcome(decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array): Outcome {
  try {
    return { value: decode(bytes) }
  } catch (err) {
    expect(err).toBeInstanceOf(DecodeError)
    return { error: (err as Error).message }
  }
}

/** decodeCanonical (direct reader first) against cborg alone: the same value, or the same error. */
function expectSameDecoding(bytes: Uint8Array): Outcome {
  const slow = outcome(decodeCanonicalSlow, bytes)
  const fast = outcome(decodeCanonical, bytes)
  expect(fast).toStrictEqual(slow)
  return slow
}

function holdsBigint(value: unknown): boolean {
  if (typeof value === 'bigint') return true
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return false
  return Object.values(value).some(holdsBigint)
}

function mutate(rand: () => number, bytes: Uint8Array): Uint8Array {
  const at = Math.floor(rand() * Math.max(1, bytes.length))
  const byte = Math.floor(rand() * 256)
  switch (Math.floor(rand() * 4)) {
    case 0: {
      const out = bytes.slice()
      out[at] = byte
      return out
    }
    case 1:
      return bytes.slice(0, at)
    case 2:
      return Uint8Array.of(...bytes, byte)
    default:
      return Uint8Array.of(...bytes.subarray(0, at), byte, ...bytes.subarray(at))
  }
}

describe('canonical codec: direct reader', () => {
  it('reads thousands of random plain values itself, exactly as cborg does', () => {
    const rand = prng(0xdec0de)
    for (let i = 0; i < 4000; i++) {
      const bytes = encodeCanonical(randomValue(rand, 0))
      const direct = readCanonical(bytes)
      const slow = decodeCanonicalSlow(bytes)
      // -2^53, an edge of the random integers, decodes as a bigint: the reader leaves those to cborg
      if (direct === GIVE_UP && !holdsBigint(slow)) throw new Error(`value #${i} was left to cborg`)
      if (direct !== GIVE_UP) expect(direct).toStrictEqual(slow)
    }
  })

  it('gives the same value or the same error as cborg for damaged input', () => {
    const rand = prng(0xbad)
    let accepted = 0
    let rejected = 0
    let direct = 0
    for (let i = 0; i < 6000; i++) {
      const bytes = mutate(rand, encodeCanonical(randomValue(rand, 0)))
      if (readCanonical(bytes) !== GIVE_UP) direct++
      if ('value' in expectSameDecoding(bytes)) accepted++
      else rejected++
    }
    // the damage is varied enough to exercise both outcomes, and the reader's own path
    expect(accepted).toBeGreaterThan(500)
    expect(rejected).toBeGreaterThan(500)
    expect(direct).toBeGreaterThan(500)
  })

  it('reads integers at every head size, and leaves non-minimal heads and bigints to cborg', () => {
    const numbers = ['00', '17', '1818', '18ff', '190100', '19ffff', '1a00010000', '1affffffff']
    const wide = ['1b0000000100000000', '1b001fffffffffffff', '20', '37', '3818', '3b001ffffffffffffe']
    for (const hex of [...numbers, ...wide]) {
      expect(readCanonical(fromHex(hex))).not.toBe(GIVE_UP)
      expectSameDecoding(fromHex(hex))
    }
    expect(readCanonical(fromHex('1b001fffffffffffff'))).toBe(2 ** 53 - 1)
    expect(readCanonical(fromHex('3b001ffffffffffffe'))).toBe(-(2 ** 53 - 1))
    // past the safe range cborg gives bigints: -2^53 and 2^53
    for (const hex of ['3b001fffffffffffff', '1b0020000000000000', '1bffffffffffffffff']) {
      expect(readCanonical(fromHex(hex))).toBe(GIVE_UP)
      expect(typeof decodeCanonical(fromHex(hex))).toBe('bigint')
    }
    for (const hex of ['1817', '1900ff', '1a0000ffff', '1b00000000ffffffff', '3817', '1c', '5f', '9f01ff']) {
      expect(readCanonical(fromHex(hex))).toBe(GIVE_UP)
      expect('error' in expectSameDecoding(fromHex(hex))).toBe(true)
    }
  })

  it('reads floats of every width as cborg does, NaN, infinities and -0 included', () => {
    const halves = [
      'f90000',
      'f98000',
      'f93c00',
      'f97bff',
      'f90001',
      'f903ff',
      'f97c00',
      'fcfc00',
      'f97e00',
      'f97c01',
    ]
    const wider = [
      'fa47c35000',
      'fa7f800000',
      'faff800001',
      'fb3ff8000000000000',
      'fbfff0000000000000',
      'fb8000000000000000',
    ]
    for (const hex of [...halves.map((h) => h.replace(/^fc/, 'f9')), ...wider]) {
      expect(readCanonical(fromHex(hex))).not.toBe(GIVE_UP)
      expect('value' in expectSameDecoding(fromHex(hex))).toBe(true)
    }
    for (const value of [1.5, -0.25, 2 ** 60, -(2 ** 53), 1e300, Number.NaN, 0.1]) {
      expect(readCanonical(encodeCanonical(value))).toStrictEqual(value)
    }
    expect(Object.is(readCanonical(fromHex('f98000')), -0)).toBe(true)
    expect('error' in expectSameDecoding(fromHex('fa0000'))).toBe(true)
  })

  it('decodes text as cborg does: invalid UTF-8 as U+FFFD, a leading BOM dropped, at any length', () => {
    for (const body of ['62ff61', '64efbbbf61', `6a${'ef'.repeat(10)}`, `7820ff${'61'.repeat(31)}`]) {
      expect(readCanonical(fromHex(body))).not.toBe(GIVE_UP)
      expectSameDecoding(fromHex(body))
    }
    for (const s of ['\ufeffkey', 'é'.repeat(40), 'x'.repeat(31), 'x'.repeat(32), '日本'.repeat(100)]) {
      const bytes = encodeCanonical({ [s]: s })
      expect(readCanonical(bytes)).toStrictEqual(decodeCanonicalSlow(bytes))
    }
  })

  it('keeps a __proto__ key as an own property and rejects duplicate and non-text keys, like cborg', () => {
    const proto = encodeCanonicalSlow(JSON.parse('{"__proto__": {"polluted": 1}, "a": 2}'))
    expect(readCanonical(proto)).toBe(GIVE_UP)
    const decoded = decodeCanonical(proto) as Record<string, unknown>
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype)
    expect(Object.hasOwn(decoded, '__proto__')).toBe(true)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    for (const hex of ['a2616101616102', 'a10102', 'a1f401', 'a2616101']) {
      expect(readCanonical(fromHex(hex))).toBe(GIVE_UP)
      expect('error' in expectSameDecoding(fromHex(hex))).toBe(true)
    }
  })

  it('gives byte strings the caller owns, also out of a Buffer, as plain Uint8Arrays', () => {
    const frame = encodeCanonical([1, new Uint8Array([7, 8, 9]), 'x'])
    const inBig = new Uint8Array(frame.length + 10)
    inBig.set(frame, 5)
    for (const input of [frame, inBig.subarray(5, 5 + frame.length), Buffer.from(frame)]) {
      const value = decodeCanonical(input) as [number, Uint8Array, string]
      expect(value[1]).toStrictEqual(new Uint8Array([7, 8, 9]))
      expect(value[1].constructor).toBe(Uint8Array)
      expect(value[1].buffer).not.toBe(input.buffer)
      input.fill(0)
      expect([...value[1]]).toEqual([7, 8, 9])
    }
  })

  it('leaves tags, undefined, deep nesting and huge length claims to cborg', () => {
    const deep = nestedArrays(100)
    const outside: unknown[] = [
      2n ** 64n,
      new Map<unknown, unknown>([[1, 'a']]),
      new Set(['b', 'a']),
      { ok: 1, nested: new Map([['k', [1, 2]]]) },
      [1, undefined, 2],
      deep,
    ]
    for (const value of outside) {
      const bytes = encodeCanonical(value)
      expect(readCanonical(bytes)).toBe(GIVE_UP)
      expect('value' in expectSameDecoding(bytes)).toBe(true)
    }
    // lengths no input of this size can hold: an error, not an allocation
    for (const hex of ['9affffffff', 'baffffffff', '5affffffff', '7affffffff', '9a0000ffff01']) {
      expect(readCanonical(fromHex(hex))).toBe(GIVE_UP)
      expect('error' in expectSameDecoding(fromHex(hex))).toBe(true)
    }
    for (const bad of [new Uint8Array(0), utf8('not cbor at all'), fromHex('0000')]) expectSameDecoding(bad)
  })
})
