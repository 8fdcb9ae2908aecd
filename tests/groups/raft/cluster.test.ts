/**
 * Cluster scenarios over the simulated network (random delays and reordering): elections, failures,
 * partitions, the autopilot, and rival clusters. Every test also asserts that the cluster monitor saw
 * no safety violation.
 */
import { describe, expect, it } from 'vitest'
import { compareStanding } from '../../../src/groups/raft/index.ts'
import { RaftCluster, type RaftClusterOptions } from '../../support/raft-cluster.ts'

const ids = (n: number) => Array.from({ length: n }, (_, i) => `n${i + 1}`)

function cluster(options: Partial<RaftClusterOptions> & { nodes: RaftClusterOptions['nodes'] }) {
  return new RaftCluster({ seed: 1, network: { minDelayMs: 1, maxDelayMs: 8 }, ...options })
}

/** Runs until every live node applied everything the leader committed; returns the leader. */
function converge(c: RaftCluster, timeoutMs = 5000) {
  const ok = c.runUntil(() => {
    const leader = c.leader()
    if (leader === undefined) return false
    const commit = leader.status().commitIndex
    return commit === leader.status().lastIndex && c.alive().every((n) => n.applied === commit)
  }, timeoutMs)
  expect(ok, 'the cluster converges').toBe(true)
  return c.leader()!
}

function commandsOf(c: RaftCluster, id: string): string[] {
  const entries = c.node(id).disk.entries
  return entries.flatMap((e) => (e.kind === 'command' ? [new TextDecoder().decode(e.data)] : []))
}

describe('elections over a network', () => {
  for (const size of [3, 5]) {
    it(`${size} voters elect exactly one leader that all follow`, () => {
      for (let seed = 1; seed <= 20; seed++) {
        const c = cluster({ seed, nodes: ids(size), establishedVoters: ids(size) })
        const leader = c.awaitLeader(3000)
        c.run(200)
        expect(c.leaders().map((n) => n.id)).toEqual([leader.id])
        for (const node of c.alive()) expect(node.status().leader).toBe(leader.id)
        expect(c.violations).toEqual([])
      }
    })
  }

  it('re-elects after the leader fails, keeping every committed entry', () => {
    const c = cluster({ nodes: ids(5), establishedVoters: ids(5) })
    const first = c.awaitLeader()
    for (let i = 0; i < 10; i++) c.propose(first.id, `a${i}`)
    converge(c)
    const term = first.status().term
    c.crash(first.id)
    const second = c.awaitLeader(3000)
    expect(second.id).not.toBe(first.id)
    expect(second.status().term).toBeGreaterThan(term)
    for (let i = 0; i < 5; i++) c.propose(second.id, `b${i}`)
    converge(c)
    const want = [
      ...Array.from({ length: 10 }, (_, i) => `a${i}`),
      ...Array.from({ length: 5 }, (_, i) => `b${i}`),
    ]
    for (const node of c.alive()) expect(commandsOf(c, node.id)).toEqual(want)
    c.restart(first.id)
    converge(c)
    expect(commandsOf(c, first.id)).toEqual(want)
    expect(c.violations).toEqual([])
  })

  it('a reluctant voter rarely becomes the first leader', () => {
    let reluctantFirst = 0
    for (let seed = 1; seed <= 30; seed++) {
      const c = cluster({
        seed,
        nodes: [{ id: 'n1', preference: 'reluctant' }, 'n2', 'n3'],
        establishedVoters: ids(3),
      })
      if (c.awaitLeader(5000).id === 'n1') reluctantFirst++
    }
    expect(reluctantFirst).toBeLessThanOrEqual(2)
  })
})

describe('partitions', () => {
  it('a partitioned minority never elects a leader nor commits; the majority goes on', () => {
    const c = cluster({ nodes: ids(5), establishedVoters: ids(5) })
    const old = c.awaitLeader()
    c.propose(old.id, 'before')
    converge(c)
    const oldTerm = old.status().term
    const minority = [old.id, ids(5).find((id) => id !== old.id)!]
    const majority = ids(5).filter((id) => !minority.includes(id))
    c.partition(minority, majority)
    const commitBefore = old.status().commitIndex
    c.propose(old.id, 'lost')
    let minorityLed = false
    c.on((event) => {
      if (event.type === 'status' && minority.includes(event.node.id) && event.status.role === 'leader') {
        minorityLed ||= event.status.term > oldTerm
      }
    })
    c.run(300)
    const newLeader = c.leaders().find((n) => majority.includes(n.id))
    expect(newLeader).toBeDefined()
    c.propose(newLeader!.id, 'after')
    c.run(2000)
    expect(minorityLed).toBe(false)
    for (const id of minority) {
      expect(c.node(id).status().commitIndex).toBe(commitBefore)
      expect(c.node(id).status().role).not.toBe('leader') // check-quorum
    }
    for (const id of majority) expect(commandsOf(c, id)).toEqual(['before', 'after'])
    c.heal()
    converge(c)
    for (const id of ids(5)) expect(commandsOf(c, id)).toEqual(['before', 'after'])
    expect(c.violations).toEqual([])
  })

  it('a 7-member group with 5 voters loses no committed entry when the leader and a voter die', () => {
    const c = cluster({ nodes: ids(7), timing: { voterUnreachableMs: 800 } })
    expect(c.runUntil(() => c.leader()?.status().voters.length === 5, 5000)).toBe(true)
    const leader = c.leader()!
    const voters = [...leader.status().voters]
    const texts = Array.from({ length: 50 }, (_, i) => `x${i}`)
    for (const text of texts) c.propose(leader.id, text)
    converge(c)
    const victim = voters.find((id) => id !== leader.id)!
    c.crash(leader.id)
    c.crash(victim)
    const next = c.awaitLeader(3000)
    expect(voters).toContain(next.id)
    for (const node of c.alive()) expect(commandsOf(c, node.id)).toEqual(texts)
    c.propose(next.id, 'more')
    converge(c)
    // The autopilot then replaces both dead voters with the two learners.
    expect(
      c.runUntil(
        () =>
          c
            .leader()!
            .status()
            .voters.filter((v) => c.node(v).alive).length === 5,
        5000,
      ),
    ).toBe(true)
    expect(c.leader()!.status().voters.length).toBe(5)
    expect(c.violations).toEqual([])
  })
})

describe('autopilot', () => {
  it('grows fresh members to 5 voters, odd, never more, and never promotes observers', () => {
    const observers = ['o1', 'o2']
    const c = cluster({
      nodes: [...ids(7), ...observers.map((id) => ({ id, preference: 'observer' as const }))],
    })
    const sizes: number[] = []
    c.on((event) => {
      if (event.type === 'status' && event.status.role === 'leader') sizes.push(event.status.voters.length)
    })
    expect(c.runUntil(() => c.leader()?.status().voters.length === 5, 5000)).toBe(true)
    c.run(2000)
    const voters = c.leader()!.status().voters
    expect(voters.length).toBe(5)
    expect(Math.max(...sizes)).toBe(5)
    for (const o of observers) {
      expect(voters).not.toContain(o)
      expect(c.node(o).status()).toMatchObject({ isVoter: false, online: true })
    }
    // Every node, observers included, holds the same log.
    converge(c)
    expect(c.violations).toEqual([])
  })

  it('with 3 eligible members keeps 3 voters and replaces an unreachable one when a learner appears', () => {
    const c = cluster({ nodes: ids(4), timing: { voterUnreachableMs: 500 } })
    c.crash('n4') // n4 will join later as a fresh member
    expect(c.runUntil(() => c.leader()?.status().voters.length === 3, 5000)).toBe(true)
    const leader = c.leader()!
    const dead = leader.status().voters.find((v) => v !== leader.id)!
    c.crash(dead)
    c.restart('n4')
    expect(c.runUntil(() => c.leader()?.status().voters.includes('n4') === true, 5000)).toBe(true)
    const voters = c.leader()!.status().voters
    expect(voters.length).toBe(3)
    expect(voters).not.toContain(dead)
    expect(c.violations).toEqual([])
  })

  it('changes membership under load without losing or duplicating a command', () => {
    const c = cluster({ seed: 7, nodes: ids(7), timing: { voterUnreachableMs: 400 } })
    c.crash('n6')
    c.crash('n7')
    c.awaitLeader()
    const acknowledged = new Map<string, number>()
    let sent = 0
    const load = () => {
      const leader = c.leader()
      if (leader !== undefined) {
        const text = `k${sent++}`
        const result = c.propose(leader.id, text)
        if (result.ok) acknowledged.set(text, result.first)
      }
      if (c.now < 4000) c.sim.after(3, load)
    }
    load()
    const changes = [
      () => c.restart('n6'),
      () =>
        c.crash(
          c
            .leader()
            ?.status()
            .voters.find((v) => v !== c.leader()?.id) ?? 'n1',
        ),
      () => c.restart('n7'),
      () => c.crash(c.leader()?.id ?? 'n2'),
      () => {
        for (const id of ids(7)) c.restart(id)
      },
    ]
    for (const [i, change] of changes.entries()) c.sim.after(500 + i * 600, change)
    c.run(4500)
    const leader = converge(c, 10_000)
    const log = commandsOf(c, leader.id)
    expect(new Set(log).size).toBe(log.length) // no command twice
    for (const node of c.alive()) expect(commandsOf(c, node.id)).toEqual(log)
    // Every command applied where its proposal said; the others were overwritten, never reordered.
    const committed = c.committed
    let confirmed = 0
    for (const [text, index] of acknowledged) {
      const entry = committed.get(index)
      if (entry?.kind === 'command' && new TextDecoder().decode(entry.data) === text) confirmed++
      else expect(log).not.toContain(text)
    }
    expect(confirmed).toBeGreaterThan(acknowledged.size / 2)
    const configs = leader.disk.entries.filter((e) => e.kind === 'config').length
    expect(configs).toBeGreaterThan(2)
    expect(c.violations).toEqual([])
  })
})

describe('rival clusters', () => {
  /** Whether a node's committed log (or a snapshot) holds a command. */
  function holdsCommands(c: RaftCluster, id: string): boolean {
    const node = c.node(id)
    const commit = node.disk.hardState.commit
    return (
      node.disk.snapshot !== undefined ||
      node.disk.entries.some((e) => e.index <= commit && e.kind === 'command')
    )
  }

  /** Standings of the clusters alive now, best first. */
  function best(c: RaftCluster): string {
    const standings = c.alive().map((n) => {
      const s = n.status()
      const last = n.disk.entries.at(-1)
      return {
        clusterId: s.clusterId ?? '',
        commit: s.commitIndex,
        lastTerm: last?.term ?? 0,
        lastIndex: s.lastIndex,
        commands: holdsCommands(c, n.id),
      }
    })
    return standings.sort((a, b) => compareStanding(b, a))[0]!.clusterId
  }

  it('orders standings by committed commands first, then commit, last term, last index and id', () => {
    const s = (commit: number, commands: boolean, clusterId = 'x') => ({
      clusterId,
      commit,
      lastTerm: 1,
      lastIndex: commit,
      commands,
    })
    expect(compareStanding(s(2, true), s(50, false))).toBeGreaterThan(0)
    expect(compareStanding(s(50, false), s(2, true))).toBeLessThan(0)
    expect(compareStanding(s(3, true), s(2, true))).toBeGreaterThan(0)
    expect(compareStanding(s(3, false, 'a'), s(3, false, 'b'))).toBeLessThan(0)
  })

  it('three clusters born apart without commands merge into the one with the greatest id', () => {
    const c = cluster({ nodes: ids(3) })
    c.partition(['n1'], ['n2'], ['n3'])
    c.run(500)
    const born = new Set(c.alive().map((n) => n.status().clusterId))
    expect(born.size).toBe(3)
    const winner = [...born].sort().at(-1)
    expect(best(c)).toBe(winner)
    c.heal()
    expect(
      c.runUntil(() => c.alive().every((n) => n.status().clusterId === winner && n.status().online), 5000),
    ).toBe(true)
    converge(c)
    expect(c.leaders().length).toBe(1)
    expect(c.resets).toBeGreaterThanOrEqual(2)
    expect(c.halts).toBe(0)
    expect(c.violations).toEqual([])
  })

  it('a cluster without commands rejoins the one that committed commands, whatever its size', () => {
    const c = cluster({ nodes: ids(3) })
    c.partition(['n1'], ['n2', 'n3'])
    c.run(500)
    c.propose('n1', 'one')
    c.run(50)
    const winner = c.node('n1').status().clusterId
    expect(c.node('n2').status().clusterId).not.toBe(winner)
    expect(best(c)).toBe(winner)
    c.heal()
    expect(c.runUntil(() => c.alive().every((n) => n.status().clusterId === winner), 5000)).toBe(true)
    const leader = converge(c)
    expect(leader.id).toBe('n1')
    for (const id of ids(3)) expect(commandsOf(c, id)).toEqual(['one'])
    expect(c.halts).toBe(0)
    expect(c.violations).toEqual([])
  })

  it('a cluster that committed commands is never wiped: when it loses, its members halt and keep their logs', () => {
    const c = cluster({ nodes: ids(3) })
    c.partition(['n1'], ['n2', 'n3'])
    c.run(500)
    c.propose('n1', 'lone')
    const other = c.leader() === c.node('n1') ? c.leaders()[1]! : c.leader()!
    for (let i = 0; i < 3; i++) c.propose(other.id, `many${i}`)
    c.run(100)
    const winner = other.status().clusterId
    expect(best(c)).toBe(winner)
    c.heal()
    expect(c.runUntil(() => c.node('n1').halted, 3000)).toBe(true)
    c.run(1000)
    // n1 stopped for good, its acknowledged write still on its disk; the others went on.
    expect(c.node('n1').alive).toBe(false)
    expect(commandsOf(c, 'n1')).toEqual(['lone'])
    c.restart('n1')
    expect(c.node('n1').alive).toBe(false)
    expect(c.resets).toBe(0)
    for (const id of ['n2', 'n3']) expect(c.node(id).status().clusterId).toBe(winner)
    c.propose(c.leader()!.id, 'more')
    converge(c)
    for (const id of ['n2', 'n3']) expect(commandsOf(c, id)).toEqual(['many0', 'many1', 'many2', 'more'])
    expect(c.violations).toEqual([])
  })

  it('rivals born in random partitions end as one cluster; no committed command is ever wiped', () => {
    for (let seed = 1; seed <= Number(process.env.RIVAL_SEEDS ?? 60); seed++) {
      const size = 3 + (seed % 3)
      const c = cluster({ seed, nodes: ids(size) })
      const prng = c.sim.prng.fork()
      const shuffled = prng.shuffle(ids(size))
      const cut = 1 + prng.int(size - 1)
      c.partition(shuffled.slice(0, cut), shuffled.slice(cut))
      c.run(300 + prng.int(300))
      for (const node of c.alive()) {
        if (node.status().role === 'leader' && prng.chance(0.6)) c.propose(node.id, `w${node.id}`)
      }
      c.run(50)
      c.heal()
      const merged = c.runUntil(() => {
        const clusters = new Set(c.alive().map((n) => n.status().clusterId))
        return clusters.size === 1 && !clusters.has(undefined) && c.leaders().length === 1
      }, 8000)
      expect(merged, `seed ${seed}`).toBe(true)
      converge(c, 8000)
      // Every command any cluster committed is in the survivor or on the disk of a halted member.
      const survivor = c.alive()[0]!.status().clusterId!
      for (const [clusterId, committed] of c.committedByCluster) {
        if (clusterId === survivor) continue
        for (const entry of committed.values()) {
          if (entry.kind !== 'command') continue
          const text = new TextDecoder().decode(entry.data)
          const kept = ids(size).some((id) => c.node(id).halted && commandsOf(c, id).includes(text))
          expect(kept, `seed ${seed}: ${text} of ${clusterId}`).toBe(true)
        }
      }
      expect(c.violations, `seed ${seed}`).toEqual([])
    }
  })
})
