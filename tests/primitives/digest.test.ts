import { blake3 } from '@noble/hashes/blake3.js'
import { describe, expect, it } from 'vitest'
import { Digest } from '../../platform/node/index.ts'
import { toHex, utf8 } from '../../src/primitives/bytes.ts'

describe('Digest', () => {
  it('hashes names with blake3', () => {
    expect(Digest.from('my-app').toString()).toBe(toHex(blake3(utf8('my-app'))))
  })

  it('decodes 64-hex strings directly, so printed ids can be pasted back', () => {
    const d = Digest.random()
    expect(Digest.from(d.toString()).equals(d)).toBe(true)
    // 64 characters that are not hex are hashed, not decoded
    const notHex = 'z'.repeat(64)
    expect(Digest.from(notHex).toString()).toBe(toHex(blake3(utf8(notHex))))
  })

  it('derive is blake3(self ‖ info) and differs per info', () => {
    const root = Digest.from('root')
    expect(root.derive('a').toString()).toBe(toHex(blake3(new Uint8Array([...root.bytes, ...utf8('a')]))))
    expect(root.derive('a').equals(root.derive('b'))).toBe(false)
    expect(root.hashed().equals(Digest.hash(root.bytes))).toBe(true)
  })

  it('orders by bytes and rejects wrong lengths', () => {
    const a = Digest.fromBytes(new Uint8Array(32))
    const b = Digest.fromBytes(new Uint8Array(32).fill(1))
    expect(a.compare(b)).toBe(-1)
    expect(Digest.zero().equals(a)).toBe(true)
    expect(() => Digest.fromBytes(new Uint8Array(31))).toThrow(RangeError)
    expect(a.short()).toHaveLength(8)
  })
})
