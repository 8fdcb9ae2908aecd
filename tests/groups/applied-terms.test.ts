import { describe, expect, it } from 'vitest'
import { AppliedTerms } from '../../src/groups/worker/applied-terms.ts'

describe('AppliedTerms', () => {
  it('keeps nothing until retained, so a member that never proposes holds no ring', () => {
    const terms = new AppliedTerms(8)
    terms.set(1, 2)
    terms.setResult(1, 'r')
    expect(terms.get(1)).toBeUndefined()
    expect(terms.result(1)).toBeUndefined()
    terms.clear()
    terms.retain()
    expect(terms.get(1)).toBeUndefined()
    terms.set(2, 3)
    terms.setResult(2, 'r')
    expect(terms.get(2)).toBe(3)
    expect(terms.result(2)).toBe('r')
  })

  it('forgets an index once the ring wrapped past it, and everything on clear', () => {
    const terms = new AppliedTerms(4)
    terms.retain()
    for (let i = 1; i <= 6; i++) terms.set(i, 1)
    expect(terms.get(2)).toBeUndefined()
    expect(terms.get(3)).toBe(1)
    expect(terms.get(6)).toBe(1)
    terms.retain()
    expect(terms.get(6)).toBe(1)
    terms.clear()
    expect(terms.get(6)).toBeUndefined()
  })
})
