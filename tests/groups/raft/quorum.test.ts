import { describe, expect, it } from 'vitest'
import { majority, quorumActive, quorumValue, tallyVotes } from '../../../src/groups/raft/quorum.ts'
import type { VoteAnswer } from '../../../src/groups/raft/types.ts'

const votes = (answers: Record<string, VoteAnswer>) => new Map(Object.entries(answers))

describe('quorum math', () => {
  it('a majority of n voters is ⌊n/2⌋ + 1', () => {
    expect([1, 2, 3, 4, 5].map(majority)).toEqual([1, 2, 2, 3, 3])
  })

  it('the quorum value is the greatest value a majority reached', () => {
    expect(quorumValue([7])).toBe(7)
    expect(quorumValue([5, 9, 7])).toBe(7)
    expect(quorumValue([1, 9, 9, 2])).toBe(2)
    expect(quorumValue([10, 1, 8, 2, 9])).toBe(8)
    expect(quorumValue([])).toBe(0)
  })

  it('the quorum value agrees with a full sort for every arrangement of up to seven values', () => {
    // Every sequence over {0, 1, 2, 3} of lengths 1 to 7 (ties and every order included).
    for (let n = 1; n <= 7; n++) {
      for (let code = 0; code < 4 ** n; code++) {
        const values = Array.from({ length: n }, (_, i) => Math.floor(code / 4 ** i) % 4)
        const sorted = [...values].sort((a, b) => b - a)
        expect(quorumValue([...values])).toBe(sorted[majority(n) - 1])
      }
    }
  })

  it('a candidate wins with grants + abstains ≥ a majority and grants > denials', () => {
    const five = ['a', 'b', 'c', 'd', 'e']
    expect(tallyVotes(five, votes({ a: 'grant', b: 'grant', c: 'grant' }))).toBe('won')
    expect(tallyVotes(five, votes({ a: 'grant', b: 'abstain', c: 'abstain' }))).toBe('won')
    // Abstentions make the majority only if grants outnumber denials.
    expect(tallyVotes(five, votes({ a: 'grant', b: 'abstain', c: 'abstain', d: 'deny' }))).toBe('pending')
    expect(tallyVotes(five, votes({ a: 'grant', b: 'abstain', c: 'abstain', d: 'deny', e: 'deny' }))).toBe(
      'lost',
    )
    // A dead voter is not a denial: the most up-to-date survivor can still win.
    expect(tallyVotes(five, votes({ a: 'grant', b: 'grant', c: 'abstain' }))).toBe('won')
    expect(tallyVotes(five, votes({ a: 'grant', b: 'deny', c: 'deny', d: 'deny' }))).toBe('lost')
    // Answers from non-voters never count.
    expect(tallyVotes(['a', 'b', 'c'], votes({ a: 'grant', x: 'grant', y: 'grant' }))).toBe('pending')
    expect(tallyVotes(['a'], votes({ a: 'grant' }))).toBe('won')
  })

  it('CheckQuorum counts active voters against a majority', () => {
    const active = new Set(['a', 'b'])
    expect(quorumActive(['a', 'b', 'c'], (v) => active.has(v))).toBe(true)
    expect(quorumActive(['a', 'b', 'c', 'd'], (v) => active.has(v))).toBe(false)
  })
})
