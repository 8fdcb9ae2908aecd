import { describe, expect, it } from 'vitest'
import { cbor, Digest } from '../../platform/node/index.ts'
import { CHUNK } from '../../src/collections/priority-buckets.ts'
import { PriorityQueueMachine } from '../../src/collections/priority-queue-machine.ts'
import { ValueCodec } from '../../src/collections/values.ts'
import { prng } from '../support/prng.ts'

/**
 * The PriorityQueue replica against the plainest model of mosaik's DEPQ: one sorted array of buckets,
 * each an array of keys in insertion order. Random commands of every kind, equal priorities and chunk
 * splits (more distinct priorities than a chunk holds), with and without a capacity, and snapshots
 * restored into a fresh replica that must then go on identically.
 */
type Entry = { p: number; k: string; v: number }

class Model {
  buckets: { p: number; keys: string[] }[] = []
  readonly byKey = new Map<string, Entry>()
  readonly capacity: number
  constructor(capacity: number) {
    this.capacity = capacity
  }

  #unlink(k: string): void {
    const e = this.byKey.get(k)
    if (!e) return
    const i = this.buckets.findIndex((b) => b.p === e.p)
    const b = this.buckets[i]!
    b.keys.splice(b.keys.indexOf(k), 1)
    if (b.keys.length === 0) this.buckets.splice(i, 1)
  }

  #link(e: Entry): void {
    let i = this.buckets.findIndex((b) => b.p >= e.p)
    if (i < 0) i = this.buckets.length
    if (this.buckets[i]?.p !== e.p) this.buckets.splice(i, 0, { p: e.p, keys: [] })
    this.buckets[i]!.keys.push(e.k)
  }

  insert(p: number, k: string, v: number): void {
    this.#unlink(k)
    const e = { p, k, v }
    this.byKey.set(k, e)
    this.#link(e)
    while (this.byKey.size > this.capacity) this.remove(this.buckets[0]!.keys.at(-1)!)
  }

  remove(k: string): void {
    this.#unlink(k)
    this.byKey.delete(k)
  }

  updatePriority(k: string, p: number): boolean {
    const e = this.byKey.get(k)
    if (!e) return false
    this.#unlink(k)
    e.p = p
    this.#link(e)
    return true
  }

  setValue(k: string, v: number, expected?: number): boolean {
    const e = this.byKey.get(k)
    if (!e || (expected !== undefined && e.v !== expected)) return false
    e.v = v
    return true
  }

  removeRange(lo: number | undefined, hi: number | undefined): void {
    for (const b of [...this.buckets])
      if ((lo === undefined || b.p >= lo) && (hi === undefined || b.p < hi))
        for (const k of [...b.keys]) this.remove(k)
  }

  ascending(): Entry[] {
    return this.buckets.flatMap((b) => b.keys.map((k) => this.byKey.get(k)!))
  }

  descending(): Entry[] {
    return [...this.buckets].reverse().flatMap((b) => [...b.keys].reverse().map((k) => this.byKey.get(k)!))
  }
}

const codecs = { p: new ValueCodec<number>(), k: new ValueCodec<string>(), v: new ValueCodec<number>() }
const enc = (x: unknown) => cbor.encode(x)
const replica = (capacity: number) =>
  new PriorityQueueMachine<number, string, number>(Digest.from('pq-model'), codecs, capacity, undefined)
/** Applies a command as it comes out of the log: encoded, then read back by the replica's codec. */
const apply = (q: PriorityQueueMachine<number, string, number>, command: Command) =>
  q.applyCommand(q.codecs.command.decode(q.codecs.command.encode(command)))
type Command = Parameters<PriorityQueueMachine<number, string, number>['applyCommand']>[0]
const entries = (it: Iterable<{ priority: number; key: string; value: number }>) =>
  [...it].map((s) => ({ p: s.priority, k: s.key, v: s.value }))

describe('PriorityQueue replica', () => {
  it('orders, evicts and restores as a sorted array of insertion-ordered buckets, under random commands', () => {
    for (const [seed, capacity, priorities] of [
      [1, Number.POSITIVE_INFINITY, 20],
      [2, Number.POSITIVE_INFINITY, 5000],
      [3, 300, 40],
      [4, 900, 5000],
      [5, 1, 10],
    ] as const) {
      const next = prng(seed)
      const pick = (n: number) => Math.floor(next() * n)
      const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`)
      const model = new Model(capacity)
      let q = replica(capacity)
      const check = (at: string) => {
        expect(q.byKey.size, at).toBe(model.byKey.size)
        expect(entries(q.ascending()), at).toEqual(model.ascending())
        expect(entries(q.descending()), at).toEqual(model.descending())
        expect(q.buckets.first?.priority, at).toBe(model.buckets[0]?.p)
        expect(q.buckets.last?.head?.key, at).toBe(model.buckets.at(-1)?.keys[0])
      }
      let distinct = 0
      for (let op = 0; op < 8000; op++) {
        const k = keys[pick(keys.length)]!
        const p = pick(priorities)
        const v = pick(1000)
        const r = next()
        if (r < 0.35) {
          model.insert(p, k, v)
          apply(q, ['insert', enc(p), enc(k), enc(v)])
        } else if (r < 0.45) {
          const batch = Array.from(
            { length: 1 + pick(30) },
            () => [pick(priorities), keys[pick(keys.length)]!, pick(9)] as const,
          )
          for (const [bp, bk, bv] of batch) model.insert(bp, bk, bv)
          apply(q, ['extend', batch.map(([bp, bk, bv]) => [enc(bp), enc(bk), enc(bv)] as const)])
        } else if (r < 0.6) {
          expect(apply(q, ['updatePriority', enc(k), enc(p)])).toBe(model.updatePriority(k, p))
        } else if (r < 0.67) {
          expect(apply(q, ['updateValue', enc(k), enc(v)])).toBe(model.setValue(k, v))
        } else if (r < 0.74) {
          const expected = model.byKey.get(k)?.v ?? 0
          const guess = next() < 0.7 ? expected : expected + 1
          const removes = next() < 0.3
          const held = model.byKey.get(k)?.v === guess
          if (held && removes) model.remove(k)
          else if (held) model.setValue(k, v)
          expect(apply(q, ['cas', enc(k), enc(guess), removes ? null : enc(v)])).toBe(held)
        } else if (r < 0.9) {
          const ks = Array.from({ length: pick(4) }, () => keys[pick(keys.length)]!)
          for (const x of ks) model.remove(x)
          apply(q, ['remove', ks.map(enc)])
        } else if (r < 0.94) {
          const lo = next() < 0.3 ? undefined : pick(priorities)
          const hi = next() < 0.3 ? undefined : (lo ?? 0) + pick(Math.max(2, priorities >> 6))
          model.removeRange(lo, hi)
          apply(q, [
            'removeRange',
            lo === undefined ? null : [enc(lo), true],
            hi === undefined ? null : [enc(hi), false],
          ])
        } else if (r < 0.941) {
          model.removeRange(undefined, undefined)
          apply(q, ['clear'])
        } else {
          const restored = replica(capacity)
          restored.restore(q.snapshot())
          q = restored
        }
        distinct = Math.max(distinct, model.buckets.length)
        if (op % 97 === 0) check(`seed ${seed} op ${op}`)
      }
      check(`seed ${seed} end`)
      if (priorities > CHUNK && capacity > CHUNK) expect(distinct, `seed ${seed}`).toBeGreaterThan(CHUNK)
    }
  })
})
