import * as varint from 'uint8-varint'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { randomBytes } from '../../src/primitives/bytes.ts'
import { FrameDecoder } from '../../src/transport/frame-decoder.ts'

const limits = { maxDataLength: 1 << 20, maxBufferSize: (1 << 20) + 1024 }

function frame(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(varint.encodingLength(body.length) + body.length)
  varint.encode(body.length, out, 0)
  out.set(body, varint.encodingLength(body.length))
  return out
}

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8ArrayList(...parts).subarray()
}

/** Cuts `bytes` into pieces at random points. */
function cut(bytes: Uint8Array, seed: number): Uint8Array[] {
  const out: Uint8Array[] = []
  let s = seed
  for (let off = 0; off < bytes.length; ) {
    s = (s * 1103515245 + 12345) % 2 ** 31
    const n = 1 + (s % 300)
    out.push(bytes.subarray(off, off + n))
    off += n
  }
  return out
}

describe('FrameDecoder', () => {
  it('cuts a message of whole frames into its bodies', () => {
    const bodies = [randomBytes(1), randomBytes(64), randomBytes(300)]
    const got = [...new FrameDecoder(limits).decode(concat(bodies.map(frame)))]
    expect(got).toEqual(bodies)
  })

  it('joins frames split across messages at any byte, prefixes included', () => {
    const bodies = Array.from({ length: 40 }, (_, i) => randomBytes((i * 97) % 1000))
    const wire = concat(bodies.filter((b) => b.length > 0).map(frame))
    for (const seed of [1, 2, 3, 42]) {
      const decoder = new FrameDecoder(limits)
      const got: Uint8Array[] = []
      for (const piece of cut(wire, seed)) for (const f of decoder.decode(piece)) got.push(f.slice())
      expect(got).toEqual(bodies.filter((b) => b.length > 0))
    }
    const decoder = new FrameDecoder(limits)
    const got: Uint8Array[] = []
    for (let i = 0; i < wire.length; i++) for (const f of decoder.decode(wire.subarray(i, i + 1))) got.push(f)
    expect(got.length).toBe(bodies.filter((b) => b.length > 0).length)
  })

  it('takes Uint8ArrayList messages and skips empty frames', () => {
    const body = randomBytes(10)
    const list = new Uint8ArrayList(
      frame(new Uint8Array(0)),
      frame(body).subarray(0, 3),
      frame(body).subarray(3),
    )
    expect([...new FrameDecoder(limits).decode(list)]).toEqual([body])
  })

  it('refuses a length over the limit at its prefix, and a buffer over its limit', () => {
    const small = { maxDataLength: 100, maxBufferSize: 150 }
    const big = new Uint8Array(varint.encodingLength(101))
    varint.encode(101, big, 0)
    expect(() => [...new FrameDecoder(small).decode(big)]).toThrow(
      expect.objectContaining({ name: 'InvalidMessageLengthError' }),
    )
    expect(() => [...new FrameDecoder(small).decode(new Uint8Array(10).fill(0xff))]).toThrow(
      expect.objectContaining({ name: 'InvalidMessageLengthError' }),
    )
    const d = new FrameDecoder({ maxDataLength: 1000, maxBufferSize: 150 })
    const header = new Uint8Array(2)
    varint.encode(900, header, 0)
    expect([...d.decode(concat([header, new Uint8Array(100)]))]).toEqual([])
    expect(() => [...d.decode(new Uint8Array(100))]).toThrow(
      expect.objectContaining({ name: 'InvalidParametersError' }),
    )
  })
})
