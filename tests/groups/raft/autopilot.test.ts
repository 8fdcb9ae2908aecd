import { describe, expect, it } from 'vitest'
import {
  type AutopilotInput,
  nextMembershipChange,
  targetVoterCount,
} from '../../../src/groups/raft/index.ts'

function input(
  over: Partial<AutopilotInput> & { memberIds?: string[]; observers?: string[] },
): AutopilotInput {
  const memberIds = over.memberIds ?? []
  const members = new Map(memberIds.map((id) => [id, { observer: over.observers?.includes(id) ?? false }]))
  const peers = new Map(memberIds.map((id) => [id, { match: 100, lastResponseAt: 1000, caughtUp: true }]))
  return {
    leader: 'a',
    voters: ['a'],
    members,
    peers,
    now: 1000,
    maxVoters: 5,
    voterUnreachableMs: 500,
    responsiveMs: 200,
    ...over,
  }
}

describe('autopilot', () => {
  it('targets the largest odd voter count within maxVoters', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 9].map((n) => targetVoterCount(n, 5))).toEqual([1, 1, 3, 3, 5, 5, 5, 5])
    expect(targetVoterCount(9, 7)).toBe(7)
    expect(targetVoterCount(0, 5)).toBe(1)
  })

  it('promotes the most caught-up responsive learner while below the target', () => {
    const base = input({ memberIds: ['b', 'c', 'd'] })
    const peers = new Map([
      ['b', { match: 95, lastResponseAt: 1000, caughtUp: true }],
      ['c', { match: 99, lastResponseAt: 1000, caughtUp: true }],
      ['d', { match: 100, lastResponseAt: 500, caughtUp: true }], // silent too long
    ])
    expect(nextMembershipChange({ ...base, peers })).toEqual({
      kind: 'promote',
      peer: 'c',
      voters: ['a', 'c'],
    })
    // A learner that does not keep up (its catch-up rounds are slow) is not promoted.
    const lagging = new Map([...peers].map(([id, p]) => [id, { ...p, caughtUp: false }]))
    expect(nextMembershipChange({ ...base, peers: lagging })).toBeUndefined()
  })

  it('never promotes observers and keeps an odd count', () => {
    expect(nextMembershipChange(input({ memberIds: ['b'] }))).toBeUndefined() // 2 eligible → 1 voter
    expect(nextMembershipChange(input({ memberIds: ['b', 'c'], observers: ['b', 'c'] }))).toBeUndefined()
    const three = input({ memberIds: ['b', 'c', 'o'], observers: ['o'], voters: ['a', 'b'] })
    expect(nextMembershipChange(three)).toEqual({ kind: 'promote', peer: 'c', voters: ['a', 'b', 'c'] })
    const full = input({ memberIds: ['b', 'c', 'd', 'e', 'f', 'g'], voters: ['a', 'b', 'c', 'd', 'e'] })
    expect(nextMembershipChange(full)).toBeUndefined()
  })

  it('removes an unreachable, departed or observer voter before promoting a replacement', () => {
    const base = input({ memberIds: ['b', 'c', 'd', 'e'], voters: ['a', 'b', 'c'] })
    const peers = new Map(base.peers)
    peers.set('b', { match: 100, lastResponseAt: 400, caughtUp: true })
    expect(nextMembershipChange({ ...base, peers })).toMatchObject({
      kind: 'remove',
      peer: 'b',
      reason: 'unreachable',
    })
    const departed = input({ memberIds: ['c', 'd', 'e', 'f'], voters: ['a', 'b', 'c'] })
    expect(nextMembershipChange(departed)).toMatchObject({ kind: 'remove', peer: 'b', reason: 'departed' })
    // A voter that answered recently is not treated as departed yet (the member view may lag).
    const justLeft = {
      ...departed,
      peers: new Map([...departed.peers, ['b', { match: 100, lastResponseAt: 900, caughtUp: true }]]),
    }
    expect(nextMembershipChange(justLeft)).toMatchObject({ kind: 'promote' })
    const observer = input({ memberIds: ['b', 'c'], observers: ['b'], voters: ['a', 'b', 'c'] })
    expect(nextMembershipChange(observer)).toMatchObject({ kind: 'remove', peer: 'b', reason: 'observer' })
  })

  it('never removes the leader and shrinks an oversized set to the target, not below two', () => {
    const base = input({ memberIds: ['b', 'c', 'd'], voters: ['a', 'b', 'c', 'd'] })
    const peers = new Map(base.peers)
    peers.set('c', { match: 80, lastResponseAt: 1000, caughtUp: true })
    expect(nextMembershipChange({ ...base, peers })).toMatchObject({
      kind: 'remove',
      peer: 'c',
      reason: 'excess',
    })
    expect(nextMembershipChange(input({ memberIds: ['b'], voters: ['a', 'b'] }))).toBeUndefined()
    const alone = input({ memberIds: [], voters: ['a'], now: 10_000 })
    expect(nextMembershipChange(alone)).toBeUndefined()
  })
})

describe('autopilot shrinking', () => {
  it('drops the voter that is no longer bonded, never the follower still connected', () => {
    // Three voters; c was cut off just now (not yet silent for long) but had acknowledged more.
    const change = nextMembershipChange(
      input({
        voters: ['a', 'b', 'c'],
        memberIds: ['b'],
        peers: new Map([
          ['b', { match: 90, lastResponseAt: 1000, caughtUp: true }],
          ['c', { match: 100, lastResponseAt: 990, caughtUp: true }],
        ]),
      }),
    )
    expect(change).toEqual({ kind: 'remove', peer: 'c', reason: 'excess', voters: ['a', 'b'] })
  })

  it('among bonded voters drops the one silent longest, then the least caught up', () => {
    const peers = new Map([
      ['b', { match: 100, lastResponseAt: 1000, caughtUp: true }],
      ['c', { match: 100, lastResponseAt: 900, caughtUp: true }],
      ['d', { match: 50, lastResponseAt: 1000, caughtUp: true }],
    ])
    // Four voters, but with e an observer only three are eligible: shrink to three.
    const base = input({
      voters: ['a', 'b', 'c', 'd'],
      memberIds: ['b', 'c', 'd', 'e'],
      observers: ['e', 'd'],
      peers,
    })
    expect(nextMembershipChange(base)).toMatchObject({ kind: 'remove', peer: 'd', reason: 'observer' })
    const shrink = input({ voters: ['a', 'b', 'c', 'd'], memberIds: ['b', 'c', 'd'], peers, maxVoters: 3 })
    expect(nextMembershipChange(shrink)).toEqual({
      kind: 'remove',
      peer: 'c',
      reason: 'excess',
      voters: ['a', 'b', 'd'],
    })
  })
})
