/** The packed snapshot format collections share: items of byte strings, each behind a varint length. */
import { describe, expect, it } from 'vitest'
import { DecodeError } from '../../platform/node/index.ts'
import { packItems, SNAPSHOT_FORMAT, unpackItems } from '../../src/collections/machine.ts'

const bytes = (n: number, fill = 7) => new Uint8Array(n).fill(fill)

describe('collection snapshot format', () => {
  it('packs items behind shortest-form varint lengths and unpacks them', () => {
    const items = [0, 1, 127, 128, 300, 20_000].map((n) => [bytes(n), bytes(1, n & 0xff)])
    const packed = packItems(2, items)
    expect(unpackItems(2, packed)).toEqual(items)
    expect([...packItems(1, [[bytes(300)]]).subarray(0, 4)]).toEqual([SNAPSHOT_FORMAT, 1, 0xac, 0x02])
  })

  it('refuses a cut varint, a longer form and a length past the end', () => {
    const head = [SNAPSHOT_FORMAT, 1]
    for (const tail of [
      [0x80],
      [0x81, 0x00, 7],
      [0x05, 1, 2],
      [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ]) {
      expect(() => unpackItems(1, new Uint8Array([...head, ...tail])), String(tail)).toThrow(DecodeError)
    }
    expect(() => unpackItems(2, new Uint8Array([SNAPSHOT_FORMAT, 2, 0]))).toThrow(DecodeError) // half an item
  })
})
