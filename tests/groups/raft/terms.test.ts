/**
 * Terms and indices are bounded: one message with a huge term from a bonded member must not move a
 * cluster's term to where no election can follow (2^53 − 1 + 1 is not a safe integer).
 */
import { describe, expect, it } from 'vitest'
import { DecodeError } from '../../../platform/node/index.ts'
import {
  type HeartbeatMessage,
  MAX_TERM_LEAP,
  MAX_TERM_OR_INDEX,
  parseMessage,
} from '../../../src/groups/raft/index.ts'
import { decodeRaftMessage, encodeRaftMessage } from '../../../src/groups/wire.ts'
import { RaftCluster } from '../../support/raft-cluster.ts'

const ids = ['n1', 'n2', 'n3']

describe('bounded terms and indices', () => {
  it('decoding rejects terms and indices that are not safe integers below 2^48', () => {
    const heartbeat: HeartbeatMessage = {
      type: 'heartbeat',
      from: 'a',
      to: 'b',
      term: 3,
      clusterId: 'x',
      commit: 2,
      seq: 1,
    }
    expect(decodeRaftMessage(encodeRaftMessage(heartbeat), 'a', 'b')).toEqual(heartbeat)
    const top = MAX_TERM_OR_INDEX - 1
    expect(parseMessage({ ...heartbeat, term: top, commit: top })).toMatchObject({ term: top })
    for (const bad of [2 ** 53 - 1, 2 ** 53, MAX_TERM_OR_INDEX, -1, 0.5, Number.NaN]) {
      for (const field of ['term', 'commit', 'seq'] as const) {
        const m = { ...heartbeat, [field]: bad }
        expect(() => parseMessage(m), `${field}=${bad}`).toThrow(DecodeError)
        expect(() => decodeRaftMessage(encodeRaftMessage(m), 'a', 'b'), `${field}=${bad}`).toThrow(
          DecodeError,
        )
      }
    }
    const entry = [MAX_TERM_OR_INDEX, 1, 1]
    const append = [0, 3, 'x', MAX_TERM_OR_INDEX - 1, 1, [entry], 0, 0]
    expect(() => decodeRaftMessage(append, 'a', 'b')).toThrow(DecodeError)
    const concede = { type: 'concede', from: 'a', to: 'b', term: 1, clusterId: 'x' }
    const winner = { clusterId: 'y', commit: 2 ** 53 - 1, lastTerm: 1, lastIndex: 3, commands: true }
    expect(() => parseMessage({ ...concede, winner })).toThrow(DecodeError)
  })

  for (const term of [2 ** 53 - 1, MAX_TERM_OR_INDEX, MAX_TERM_OR_INDEX - 1]) {
    it(`a member sending term ${term} cannot wedge a 3-node cluster`, () => {
      const c = new RaftCluster({ seed: 3, nodes: ids, establishedVoters: ids })
      let leader = c.awaitLeader()
      c.propose(leader.id, 'before')
      c.run(100)
      const honest = leader.status().term
      // Every node gets a heartbeat (and a vote request) with the bogus term from a fellow member.
      for (const to of ids) {
        const from = ids.find((id) => id !== to)!
        c.withCore(to, (core, now) => {
          core.step({ type: 'heartbeat', from, to, term, clusterId: 'established', commit: 0, seq: 0 }, now)
          core.step(
            {
              type: 'vote',
              from,
              to,
              term,
              clusterId: 'established',
              preVote: false,
              lastIndex: 1000,
              lastTerm: term,
            },
            now,
          )
        })
      }
      // A term just beyond the plausible leap is refused too.
      c.withCore(leader.id, (core, now) => {
        const from = ids.find((id) => id !== leader.id)!
        const far = honest + MAX_TERM_LEAP + 1
        core.step(
          { type: 'heartbeat', from, to: leader.id, term: far, clusterId: 'established', commit: 0, seq: 0 },
          now,
        )
      })
      c.run(100)
      for (const node of c.alive()) expect(node.status().term).toBeLessThan(honest + 10)
      // Elections still work, again and again, and the cluster keeps committing.
      for (let round = 0; round < 3; round++) {
        c.crash(leader.id)
        const next = c.awaitLeader(3000)
        expect(next.id).not.toBe(leader.id)
        c.restart(leader.id)
        leader = next
        expect(c.propose(leader.id, `after${round}`).ok).toBe(true)
        // The restarted member is back as a voter before the next crash.
        const settled = c.runUntil(() => {
          const s = leader.status()
          return s.voters.length === 3 && c.alive().every((n) => n.status().commitIndex === s.lastIndex)
        }, 5000)
        expect(settled).toBe(true)
      }
      for (const node of c.alive()) expect(node.status().term).toBeLessThan(MAX_TERM_LEAP)
      expect(c.violations).toEqual([])
    })
  }
})
