import { describe, expect, it } from 'vitest'
import { Fifo } from '../../src/primitives/fifo.ts'

describe('Fifo', () => {
  it('takes entries in the order they were pushed', () => {
    const q = new Fifo<number>()
    expect(q.length).toBe(0)
    expect(q.shift()).toBeUndefined()
    expect(q.peek()).toBeUndefined()
    expect(q.last()).toBeUndefined()
    q.push(1)
    q.push(2)
    q.push(3)
    expect(q.length).toBe(3)
    expect(q.peek()).toBe(1)
    expect(q.last()).toBe(3)
    expect(q.shift()).toBe(1)
    q.push(4)
    expect([...q]).toEqual([2, 3, 4])
    expect(q.shift()).toBe(2)
    expect(q.shift()).toBe(3)
    expect(q.shift()).toBe(4)
    expect(q.shift()).toBeUndefined()
    expect(q.length).toBe(0)
  })

  it('keeps its order across compactions of a long dead prefix', () => {
    const q = new Fifo<number>()
    let next = 0
    let expected = 0
    // Interleave pushes and shifts so the head passes the compaction threshold many times.
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 300; i++) q.push(next++)
      for (let i = 0; i < 250; i++) expect(q.shift()).toBe(expected++)
      expect(q.length).toBe(next - expected)
      expect(q.peek()).toBe(expected)
      expect(q.at(0)).toBe(expected)
      expect(q.at(q.length - 1)).toBe(next - 1)
    }
    expect([...q]).toEqual(Array.from({ length: next - expected }, (_, i) => expected + i))
  })

  it('indexes from the front, drops a prefix and truncates the tail', () => {
    const q = new Fifo<string>()
    for (const s of ['a', 'b', 'c', 'd', 'e', 'f']) q.push(s)
    q.shift()
    expect(q.at(0)).toBe('b')
    expect(q.at(4)).toBe('f')
    expect(q.at(5)).toBeUndefined()
    expect(q.at(-1)).toBeUndefined()
    expect(q.slice(1, 3)).toEqual(['c', 'd'])
    expect(q.slice(3)).toEqual(['e', 'f'])
    expect(q.slice(4, 99)).toEqual(['f'])
    expect(q.slice(9, 12)).toEqual([])
    q.drop(2)
    expect([...q]).toEqual(['d', 'e', 'f'])
    q.truncate(2)
    expect([...q]).toEqual(['d', 'e'])
    expect(q.last()).toBe('e')
    q.truncate(5)
    expect(q.length).toBe(2)
    q.push('g')
    expect([...q]).toEqual(['d', 'e', 'g'])
    q.drop(10)
    expect(q.length).toBe(0)
    q.push('h')
    q.truncate(0)
    expect(q.length).toBe(0)
    expect(q.at(0)).toBeUndefined()
  })

  it('removes an entry from anywhere, and clears', () => {
    const a = { id: 'a' }
    const b = { id: 'b' }
    const c = { id: 'c' }
    const q = new Fifo<{ id: string }>()
    q.push(a)
    q.push(b)
    q.push(c)
    expect(q.remove(b)).toBe(true)
    expect(q.remove(b)).toBe(false)
    expect(q.remove(a)).toBe(true)
    expect([...q]).toEqual([c])
    q.push(a)
    q.clear()
    expect(q.length).toBe(0)
    expect([...q]).toEqual([])
    q.push(b)
    expect(q.shift()).toBe(b)
  })

  it('releases the entries it hands out', () => {
    const q = new Fifo<object>()
    const held = { big: true }
    q.push(held)
    q.push({})
    q.shift()
    // The slot is cleared: iteration and indexing no longer reach the taken entry.
    expect([...q]).not.toContain(held)
    expect(q.slice(-5)).not.toContain(held)
  })
})
