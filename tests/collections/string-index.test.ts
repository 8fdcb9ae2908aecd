import { describe, expect, it } from 'vitest'
import { StringIndex } from '../../src/collections/string-index.ts'
import { latin1 } from '../../src/collections/values.ts'
import { prng } from '../support/prng.ts'

type Item = { readonly id: string; value: number }

describe('StringIndex', () => {
  it('behaves as a JS Map of strings under random adds, deletes and clears', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const next = prng(seed)
      // Few distinct keys (so they repeat and tombstones pile up), some of them sharing prefixes.
      const keys = Array.from({ length: 400 }, (_, i) =>
        i % 3 === 0 ? `p/${i}` : `${i}`.repeat(1 + (i % 5)),
      )
      const model = new Map<string, Item>()
      const index = new StringIndex<Item>()
      for (let op = 0; op < 20_000; op++) {
        const id = keys[Math.floor(next() * keys.length)]!
        const r = next()
        if (r < 0.5) {
          if (!model.has(id)) {
            const item = { id, value: op }
            model.set(id, item)
            index.add(item)
          }
        } else if (r < 0.95) {
          expect(index.delete(id)).toBe(model.delete(id))
        } else if (r < 0.9505) {
          model.clear()
          index.clear()
        }
        expect(index.get(id)).toBe(model.get(id))
        expect(index.size).toBe(model.size)
      }
      for (const id of keys) expect(index.get(id), `seed ${seed} ${id}`).toBe(model.get(id))
    }
  })

  it('finds 100k keys that differ in one byte, after growing through every size', () => {
    const index = new StringIndex<Item>()
    const bytes = new Uint8Array(6)
    const idOf = (i: number) => {
      new DataView(bytes.buffer).setUint32(2, i)
      return latin1(bytes, 0, bytes.length)
    }
    for (let i = 0; i < 100_000; i++) index.add({ id: idOf(i), value: i })
    expect(index.size).toBe(100_000)
    for (let i = 0; i < 100_000; i += 7) expect(index.get(idOf(i))?.value).toBe(i)
    expect(index.get(idOf(100_000))).toBeUndefined()
    // Deleting every other key leaves the rest found; their numbers are then reused.
    for (let i = 0; i < 100_000; i += 2) expect(index.delete(idOf(i))).toBe(true)
    for (let i = 1; i < 100_000; i += 2) expect(index.get(idOf(i))?.value).toBe(i)
    for (let i = 0; i < 100_000; i += 2) index.add({ id: idOf(i), value: -i })
    expect(index.size).toBe(100_000)
    for (let i = 0; i < 100_000; i += 2) expect(index.get(idOf(i))?.value).toBe(-i)
  })
})
