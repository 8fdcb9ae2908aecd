import { describe, expect, it } from 'vitest'
import { DecodeError } from '../../platform/node/index.ts'
import { ByteTable } from '../../src/collections/byte-table.ts'
import { packItems, unpackItems } from '../../src/collections/machine.ts'
import { latin1 } from '../../src/collections/values.ts'
import { prng } from '../support/prng.ts'

const bytesOf = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0))
const latin1Of = (b: Uint8Array): string => latin1(b, 0, b.length)

/** The live entries of a table, in order, as `bytesKey` strings. */
function entriesOf(t: ByteTable): [string, string][] {
  const out: [string, string][] = []
  for (let i = 0; i < t.end; i++) if (t.isLive(i)) out.push([t.keyString(i), t.valueString(i)])
  return out
}

/** A byte string of 0-40 bytes over a small alphabet (so keys repeat), any byte value in places. */
function randomBytes(next: () => number): string {
  const n = Math.floor(next() * 40)
  let s = ''
  for (let i = 0; i < n; i++) s += String.fromCharCode(next() < 0.1 ? Math.floor(next() * 256) : 97 + (i % 3))
  return s
}

describe('ByteTable', () => {
  it('behaves as a JS Map of byte strings under random sets, deletes, compactions and restores', () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const next = prng(seed)
      const keys = Array.from({ length: 300 }, () => randomBytes(next))
      const model = new Map<string, string>()
      let t = new ByteTable()
      for (let op = 0; op < 6000; op++) {
        const key = keys[Math.floor(next() * keys.length)]!
        const r = next()
        if (r < 0.45) {
          const value = randomBytes(next)
          model.set(key, value)
          t.set(bytesOf(key), bytesOf(value))
        } else if (r < 0.7) {
          // The same through a range of a larger buffer.
          const value = randomBytes(next)
          const buffer = bytesOf(`<${key}|${value}>`)
          model.set(key, value)
          t.setRanges(buffer, 1, 1 + key.length, buffer, 2 + key.length, 2 + key.length + value.length)
        } else if (r < 0.95) {
          model.delete(key)
          const i = t.find(bytesOf(key))
          if (i >= 0) t.delete(i)
        } else if (r < 0.97) {
          t = t.compacted()
        } else {
          t = ByteTable.fromSnapshot(t.snapshot())
        }
        if (op % 500 === 0 || op === 5999) {
          expect(t.size, `seed ${seed} op ${op}`).toBe(model.size)
          expect(entriesOf(t), `seed ${seed} op ${op}`).toEqual([...model])
          for (const k of keys) {
            const i = t.find(bytesOf(k))
            expect(i >= 0 ? t.valueString(i) : undefined).toBe(model.get(k))
          }
        }
      }
    }
  })

  it('behaves as a JS Set of byte strings with keys alone, in the Set snapshot format', () => {
    for (const seed of [11, 12, 13, 14]) {
      const next = prng(seed)
      const keys = Array.from({ length: 300 }, () => randomBytes(next))
      const model = new Set<string>()
      let t = new ByteTable(1)
      for (let op = 0; op < 6000; op++) {
        const key = keys[Math.floor(next() * keys.length)]!
        const r = next()
        if (r < 0.6) {
          // A value given to a table of keys alone is ignored, and an added key keeps its place.
          model.add(key)
          t.set(bytesOf(key), next() < 0.5 ? undefined : bytesOf('ignored'))
        } else if (r < 0.95) {
          model.delete(key)
          const i = t.find(bytesOf(key))
          if (i >= 0) t.delete(i)
        } else if (r < 0.97) {
          t = t.compacted()
        } else {
          t = ByteTable.fromSnapshot(t.snapshot(), 1)
        }
        if (op % 500 === 0 || op === 5999) {
          expect(entriesOf(t), `seed ${seed} op ${op}`).toEqual([...model].map((k) => [k, '']))
          // Byte for byte what the Set's snapshots always were.
          expect(t.snapshot()).toEqual(
            packItems(
              1,
              [...model].map((k) => [bytesOf(k)]),
            ),
          )
          for (const k of keys) expect(t.find(bytesOf(k)) >= 0).toBe(model.has(k))
        }
      }
    }
    expect(() => ByteTable.fromSnapshot(packItems(2, [[bytesOf('a'), bytesOf('1')]]), 1)).toThrow(DecodeError)
  })

  it('keeps an entry in its place when its value is replaced, and moves it to the end when re-added', () => {
    const t = new ByteTable()
    t.set(bytesOf('a'), bytesOf('1'))
    t.set(bytesOf('b'), bytesOf('2'))
    t.set(bytesOf('c'), bytesOf('3'))
    t.set(bytesOf('a'), bytesOf('one'))
    expect(entriesOf(t)).toEqual([
      ['a', 'one'],
      ['b', '2'],
      ['c', '3'],
    ])
    t.delete(t.find(bytesOf('a')))
    t.set(bytesOf('a'), bytesOf('again'))
    expect(entriesOf(t)).toEqual([
      ['b', '2'],
      ['c', '3'],
      ['a', 'again'],
    ])
  })

  it('holds 100k entries, packs them in the snapshot format and reads that back in place', () => {
    const t = new ByteTable()
    for (let i = 0; i < 100_000; i++)
      t.set(bytesOf(`fill-${i}`), bytesOf(String.fromCharCode(0x1a) + String(i)))
    expect(t.size).toBe(100_000)
    expect(t.valueString(t.find(bytesOf('fill-77777')))).toBe('\x1a77777')
    const packed = t.snapshot()
    expect(packed.subarray(0, 12)).toEqual(Uint8Array.from([1, 2, 6, ...bytesOf('fill-0'), 2, 0x1a, 0x30]))
    expect(unpackItems(2, packed).map(([k, v]) => [latin1Of(k!), latin1Of(v!)])).toEqual(entriesOf(t))
    const back = ByteTable.fromSnapshot(packed)
    expect(entriesOf(back)).toEqual(entriesOf(t))
    // Replaced and removed entries leave garbage: the packed form is built from the live records.
    t.set(bytesOf('fill-5'), bytesOf('five'))
    t.delete(t.find(bytesOf('fill-6')))
    back.set(bytesOf('fill-5'), bytesOf('five'))
    back.delete(back.find(bytesOf('fill-6')))
    expect(entriesOf(ByteTable.fromSnapshot(t.snapshot()))).toEqual(entriesOf(back))
    expect(t.snapshot()).toEqual(back.snapshot())
  })

  it('never changes snapshot bytes it handed out, which log stores keep without a copy', () => {
    const next = prng(7)
    const t = new ByteTable()
    for (let i = 0; i < 2000; i++) t.set(bytesOf(`k${i}`), bytesOf(`v${i % 10}`))
    const restored = ByteTable.fromSnapshot(t.snapshot().slice())
    const taken: Uint8Array[] = []
    const copies: Uint8Array[] = []
    for (let round = 0; round < 20; round++) {
      for (const table of [t, restored]) {
        // Whenever nothing was replaced or removed, the snapshot is a view of the table's own bytes.
        taken.push(table.snapshot())
        copies.push(taken.at(-1)!.slice())
        // Same-length replacements, longer ones, deletions, new keys and the growth they cause.
        for (let i = 0; i < 200; i++) {
          const key = bytesOf(`k${Math.floor(next() * 3000)}`)
          const at = table.find(key)
          if (next() < 0.2 && at >= 0) table.delete(at)
          else
            table.set(key, next() < 0.5 ? bytesOf(`v${Math.floor(next() * 10)}`) : bytesOf(randomBytes(next)))
        }
      }
    }
    expect(taken).toEqual(copies)
  })

  it('reads a snapshot that lists a key twice as setting it twice, and refuses a damaged one', () => {
    const packed = packItems(2, [
      [bytesOf('a'), bytesOf('1')],
      [bytesOf('b'), bytesOf('2')],
      [bytesOf('a'), bytesOf('3')],
    ])
    expect(entriesOf(ByteTable.fromSnapshot(packed))).toEqual([
      ['a', '3'],
      ['b', '2'],
    ])
    expect(() => ByteTable.fromSnapshot(packed.subarray(0, packed.length - 1))).toThrow(DecodeError)
    expect(() => ByteTable.fromSnapshot(Uint8Array.of(9, 2))).toThrow(DecodeError)
    expect(ByteTable.fromSnapshot(new Uint8Array(0)).size).toBe(0)
  })

  it('forgets decoded values when an entry changes, and keeps decoded keys', () => {
    const t = new ByteTable()
    t.set(bytesOf('k'), bytesOf('v'))
    const i = t.find(bytesOf('k'))
    t.keys.set(i, { key: true })
    t.values.set(i, { value: true })
    t.set(bytesOf('k'), bytesOf('w'))
    expect(t.values.has(i)).toBe(false)
    expect(t.keys.get(i)).toEqual({ key: true })
    t.delete(i)
    expect(t.keys.has(i)).toBe(false)
  })

  it('lets iterators of a compacted table go on over the entries as they were', () => {
    const t = new ByteTable()
    for (let i = 0; i < 200; i++) t.set(bytesOf(`k${i}`), bytesOf(`v${i}`))
    for (let i = 0; i < 150; i++) t.delete(t.find(bytesOf(`k${i}`)))
    const next = t.compacted()
    expect(next).not.toBe(t)
    expect(t.closed).toBe(false)
    expect(entriesOf(next)).toEqual(entriesOf(t))
    expect(next.end).toBe(50)
  })
})
