/**
 * Promotion by catch-up rounds (Raft dissertation §4.2.1): the leader promotes a learner once a round
 * (catching up to the leader's last index as of the round's start) took less than an election timeout,
 * so learners are promoted under full write load, and a learner that cannot keep up is not.
 */
import { describe, expect, it } from 'vitest'
import { RaftCluster, type RaftClusterOptions } from '../../support/raft-cluster.ts'

const ids = (n: number) => Array.from({ length: n }, (_, i) => `n${i + 1}`)

function cluster(options: Partial<RaftClusterOptions> & { nodes: RaftClusterOptions['nodes'] }) {
  return new RaftCluster({ seed: 1, network: { minDelayMs: 1, maxDelayMs: 8 }, ...options })
}

/** Proposes `batch` commands on the current leader every `everyMs` until `until`. */
function load(c: RaftCluster, batch: number, everyMs: number, until: number): void {
  let n = 0
  const tick = () => {
    const leader = c.leader()
    if (leader !== undefined) {
      const texts = Array.from({ length: batch }, () => `k${n++}`)
      c.propose(leader.id, ...texts)
    }
    if (c.now < until) c.sim.after(everyMs, tick)
  }
  tick()
}

describe('promotion under load', () => {
  for (const seed of [1, 2, 3]) {
    it(`5 members reach 5 voters within a few election timeouts while the leader commits continuously (seed ${seed})`, () => {
      const c = cluster({ seed, nodes: ids(5) })
      const leader = c.awaitLeader(3000)
      const start = c.now
      load(c, 100, 3, start + 1500)
      const grown = c.runUntil(() => c.leader()?.status().voters.length === 5, 3000)
      const took = c.now - start
      expect(grown, `voters: ${c.leader()?.status().voters.join(',')}`).toBe(true)
      expect(took).toBeLessThan(8 * c.timing.electionTimeoutMs)
      // The load was real: thousands of entries committed meanwhile.
      expect(leader.status().commitIndex).toBeGreaterThan(1000)
      c.run(300)
      expect(c.violations).toEqual([])
    })
  }

  for (const seed of [1, 2, 3, 4, 5]) {
    it(`a learner that cannot keep up is not promoted until it does (seed ${seed})`, () => {
      // The leader's own back-fill only (no parallel pull from peers), so that only rounds matter.
      const c = cluster({
        seed,
        nodes: ids(3),
        establishedVoters: ['n1', 'n2'],
        raft: { catchUpThreshold: 1e9 },
      })
      // n3 joins late, behind a busy leader, over a lossy link.
      c.crash('n3')
      c.awaitLeader(3000)
      const start = c.now
      load(c, 30, 3, start + 3000)
      c.run(300)
      let promotedAt: number | undefined
      c.on((event) => {
        if (event.type === 'status' && event.status.voters.includes('n3')) promotedAt ??= c.now
      })
      c.net.setDropRate('n3', 0.5)
      c.restart('n3')
      c.run(1500)
      expect(promotedAt).toBeUndefined()
      expect(c.node('n3').status().commitIndex).toBeGreaterThan(0) // it does replicate, slowly
      c.net.setDropRate('n3', 0)
      const fixedAt = c.now
      expect(c.runUntil(() => c.leader()?.status().voters.includes('n3') === true, 1500)).toBe(true)
      expect(c.now - fixedAt).toBeLessThan(8 * c.timing.electionTimeoutMs)
      c.run(300)
      expect(c.violations).toEqual([])
    })
  }
})
