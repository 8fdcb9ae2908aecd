import { describe, expect, it } from 'vitest'
import { DecodeError, decodeCanonical, encodeCanonical } from '../../platform/node/index.ts'
import { equalBytes } from '../../src/primitives/bytes.ts'

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
