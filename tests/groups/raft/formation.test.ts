/**
 * Group formation: a fresh node bootstraps a cluster only when not held back by the worker and when it
 * sees `bootstrapExpect` fresh members; then all of those are the first voters, so no node alone forms
 * a cluster that acknowledges writes by itself, and staggered starts form one cluster.
 */
import { describe, expect, it } from 'vitest'
import { Formation } from '../../../src/groups/raft/formation.ts'
import { RaftCluster, type RaftClusterOptions } from '../../support/raft-cluster.ts'

const ids = (n: number) => Array.from({ length: n }, (_, i) => `n${i + 1}`)

function cluster(options: Partial<RaftClusterOptions> & { nodes: RaftClusterOptions['nodes'] }) {
  return new RaftCluster({ seed: 1, network: { minDelayMs: 1, maxDelayMs: 8 }, ...options })
}

const clusters = (c: RaftCluster) => new Set(c.alive().map((n) => n.status().clusterId))

describe('group formation', () => {
  it('with bootstrapExpect 3, one or two fresh nodes never bootstrap; the third forms a 3-voter cluster', () => {
    const c = cluster({ nodes: ids(3), raft: { bootstrapExpect: 3 } })
    c.crash('n2')
    c.crash('n3')
    c.run(3000)
    expect(c.node('n1').status()).toMatchObject({ clusterId: undefined, role: 'follower' })
    c.restart('n2')
    c.run(3000)
    expect(c.leaders()).toEqual([])
    for (const node of c.alive()) expect(node.status().clusterId).toBeUndefined()
    c.restart('n3')
    const leader = c.awaitLeader(3000)
    expect(leader.id).toBe('n1')
    expect([...leader.status().voters].sort()).toEqual(ids(3))
    // The very first entry already names all three: n1 never acknowledged a write alone.
    expect(leader.disk.entries[0]).toMatchObject({ index: 1, kind: 'config', config: { voters: ids(3) } })
    c.propose(leader.id, 'x')
    c.run(200)
    expect(clusters(c).size).toBe(1)
    for (const node of c.alive()) expect(node.status().commitIndex).toBe(leader.status().lastIndex)
    expect(c.violations).toEqual([])
  })

  it('the first voters are the bootstrapping node and the smallest other members; the rest join as learners', () => {
    const c = cluster({ nodes: ids(5), raft: { bootstrapExpect: 3 } })
    const leader = c.awaitLeader(3000)
    expect(leader.disk.entries[0]).toMatchObject({ config: { voters: ['n1', 'n2', 'n3'] } })
    expect(clusters(c).size).toBe(1)
    expect(c.violations).toEqual([])
  })

  it('a node alone cannot commit once it bootstrapped with expected peers that vanished', () => {
    const c = cluster({ nodes: ids(3), raft: { bootstrapExpect: 3 } })
    // n2 and n3 are bonded but never hear n1's first message.
    c.partition(['n1'], ['n2', 'n3'])
    for (const id of ids(3))
      c.setMembers(
        id,
        ids(3).map((id) => ({ id, observer: false })),
      )
    c.run(1000)
    const n1 = c.node('n1').status()
    expect(n1.voters.length === 0 || n1.voters.length === 3).toBe(true)
    if (n1.role === 'leader') expect(c.propose('n1', 'alone').ok).toBe(true)
    c.run(500)
    expect(c.node('n1').status().commitIndex).toBeLessThanOrEqual(1)
    expect(c.node('n1').applied).toBeLessThanOrEqual(1)
  })

  it('no second cluster forms when nodes start staggered, in any order', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const c = cluster({ seed, nodes: ids(3), raft: { bootstrapExpect: 3 } })
      const prng = c.sim.prng.fork()
      const order = prng.shuffle(ids(3))
      for (const id of order.slice(1)) c.crash(id)
      for (const [i, id] of order.slice(1).entries())
        c.sim.after((i + 1) * prng.int(400), () => c.restart(id))
      c.run(3000)
      expect(clusters(c).size, `seed ${seed}`).toBe(1)
      expect(c.leaders().length, `seed ${seed}`).toBe(1)
      expect(c.leader()!.status().voters.length, `seed ${seed}`).toBe(3)
      expect(c.committedByCluster.size, `seed ${seed}`).toBe(1)
      expect(c.violations, `seed ${seed}`).toEqual([])
    }
  })

  it('a held fresh node never bootstraps, and bootstraps after the hold is released', () => {
    const c = cluster({ nodes: ids(2) })
    for (const id of ids(2)) c.withCore(id, (core, now) => core.setBootstrapHold(true, now))
    c.run(3000)
    expect(c.leaders()).toEqual([])
    expect(clusters(c)).toEqual(new Set([undefined]))
    for (const id of ids(2)) c.withCore(id, (core, now) => core.setBootstrapHold(false, now))
    const leader = c.awaitLeader(3000)
    expect(leader.id).toBe('n1')
    c.run(500)
    expect(clusters(c).size).toBe(1)
    expect(c.violations).toEqual([])
  })

  it('behind a cut the bonds have not noticed, neither side bootstraps: each may be a cluster the other has not heard of', () => {
    const c = cluster({ nodes: ids(2), members: 'manual' })
    c.setMembers('n1', [{ id: 'n2', observer: false }])
    c.setMembers('n2', [{ id: 'n1', observer: false }])
    // Both still count the other as a bonded member, but nothing gets through: n1 never hears n2 say
    // it is fresh, and n2 never hears n1 say it waits.
    c.cut('n1', 'n2')
    c.run(6000)
    expect(c.node('n1').status().clusterId).toBeUndefined()
    expect(c.node('n2').status().clusterId).toBeUndefined()
    c.heal()
    c.run(3000)
    expect(clusters(c).size).toBe(1)
    expect(c.node('n2').status().leader).toBe(c.node('n1').status().leader)
    expect(c.leaders()).toHaveLength(1)
    expect(c.violations).toEqual([])
  })

  it('a member bonded but never heard from is not counted as fresh: it may lead a cluster formed before it bonded', () => {
    // n2 formed a cluster alone before n1 existed; n1 bonds with it, but n2 crashes before its hello
    // arrives. n1 must not found a second cluster with n2 as a voter: it waits, and joins n2's
    // cluster once n2 is back, so nothing n2 committed alone is lost.
    const c = cluster({ nodes: ids(2), members: 'manual' })
    c.crash('n1')
    c.run(1500)
    const first = c.node('n2').status().clusterId
    expect(first).toBeDefined()
    expect(c.propose('n2', 'alone').ok).toBe(true)
    c.run(100)
    c.restart('n1')
    c.cut('n2', 'n1')
    c.setMembers('n1', [{ id: 'n2', observer: false }])
    c.crash('n2')
    c.run(3000)
    expect(c.node('n1').status().clusterId).toBeUndefined()
    c.heal()
    c.restart('n2')
    c.setMembers('n1', [{ id: 'n2', observer: false }])
    c.setMembers('n2', [{ id: 'n1', observer: false }])
    c.run(3000)
    expect(clusters(c)).toEqual(new Set([first]))
    expect(c.committedByCluster.size).toBe(1)
    expect(c.violations).toEqual([])
  })

  it('a later turn is taken when every smaller member says it waits (held back by members it cannot reach)', () => {
    const c = cluster({ nodes: ids(3) })
    c.withCore('n1', (core, now) => core.setBootstrapHold(true, now))
    const leader = c.awaitLeader(6000)
    expect(leader.id).toBe('n2')
    c.run(1000)
    expect(clusters(c).size).toBe(1)
    expect(c.violations).toEqual([])
  })
  it('a member waiting only for its own turn does not say it waits: no larger member takes a turn past it', () => {
    // n1 is held; n2 does not hear n1 (a cut), so it waits for n1's roll-call to take its turn. Were
    // it to say it waits, n3 would take a later turn, and n2 would found a second cluster the moment
    // it heard n1.
    const c = cluster({ nodes: ids(3), members: 'manual' })
    for (const id of ids(3)) {
      c.setMembers(
        id,
        ids(3)
          .filter((other) => other !== id)
          .map((other) => ({ id: other, observer: false })),
      )
    }
    c.withCore('n1', (core, now) => core.setBootstrapHold(true, now))
    c.cut('n1', 'n2')
    c.run(4000)
    for (const id of ids(3)) expect(c.node(id).status().clusterId, id).toBeUndefined()
    c.heal()
    c.run(4000)
    expect(clusters(c).size).toBe(1)
    expect(c.committedByCluster.size).toBeLessThanOrEqual(1)
    expect(c.leaders().map((n) => n.id)).toEqual(['n2'])
    expect(c.violations).toEqual([])
  })

  it('a member released just before a larger one takes its later turn waits until that member heard of the release', () => {
    // n1 is held, so n2 takes a later turn; n1 is released 50 ms before it does. n2 never hears the
    // release (n1's messages are lost), and n1 hears n2's roll-calls but not yet its cluster. Were n1
    // to take its own turn, each would lead a cluster: it must wait for n2 to echo its new round.
    const start = () => {
      const c = cluster({ nodes: ids(2), members: 'manual' })
      c.setMembers('n1', [{ id: 'n2', observer: false }])
      c.setMembers('n2', [{ id: 'n1', observer: false }])
      c.withCore('n1', (core, now) => core.setBootstrapHold(true, now))
      return c
    }
    const probe = start()
    expect(probe.runUntil(() => probe.leaders().length > 0, 3000)).toBe(true)
    expect(probe.leaders().map((n) => n.id)).toEqual(['n2'])
    const turn = probe.now

    const c = start()
    c.run(turn - 50 - c.now)
    c.withCore('n1', (core, now) => core.setBootstrapHold(false, now))
    c.net.lose((wire, from) => from === 'n1' || wire.kind !== 'raft' || wire.message.type !== 'fresh')
    c.run(1000)
    expect(c.node('n2').status().clusterId).toBeDefined()
    expect(c.node('n1').status().clusterId).toBeUndefined()
    c.net.lose(undefined)
    c.run(1000)
    expect(clusters(c).size).toBe(1)
    expect(c.committedByCluster.size).toBeLessThanOrEqual(1)
    expect(c.violations).toEqual([])
  })
})

describe('formation roll-calls', () => {
  const members = new Map([['n1', { observer: false }]])
  const fresh = (now = 0) =>
    new Formation({ expect: 1, delayMs: 100, preferMs: 0, quietMs: 100, now, random: () => 0.5 })
  const call = (round: number, waiting: boolean) => ({
    waiting,
    incarnation: 7,
    round,
    heardIncarnation: 0,
    heardRound: 0,
  })

  it('a smaller member that waits lets a larger one take a later turn', () => {
    const n2 = fresh()
    n2.heardFresh('n1', call(1, true), 10)
    expect(n2.bootstrapAt('n2', members, false, 20)).toBe(200)
  })

  it('a stale "waiting" from an earlier round, delivered late, is ignored', () => {
    const n2 = fresh()
    n2.heardFresh('n1', call(2, false), 10)
    n2.heardFresh('n1', call(1, true), 12)
    expect(n2.bootstrapAt('n2', members, false, 20)).toBeUndefined()
    // Its echo to n1 names the newest round it heard.
    expect(n2.callTo('n1')).toMatchObject({ heardIncarnation: 7, heardRound: 2 })
  })

  it('a restarted member (a new incarnation) is heard from its first round', () => {
    const n2 = fresh()
    n2.heardFresh('n1', call(5, false), 10)
    n2.heardFresh('n1', { ...call(1, true), incarnation: 8 }, 12)
    expect(n2.bootstrapAt('n2', members, false, 20)).toBe(200)
  })

  it('a released member acts only on an echo of its current round from every larger member', () => {
    const n1 = fresh()
    const larger = new Map([['n2', { observer: false }]])
    n1.hold(true)
    const held = n1.callTo('n2')
    expect(held).toMatchObject({ waiting: true, round: 1 })
    n1.hold(false)
    const released = n1.callTo('n2')
    expect(released).toMatchObject({ waiting: false, round: 2, incarnation: held.incarnation })
    const echo = (round: number) => ({
      ...call(1, false),
      heardIncarnation: held.incarnation,
      heardRound: round,
    })
    n1.heardFresh('n2', echo(1), 10)
    expect(n1.bootstrapAt('n1', larger, false, 20)).toBeUndefined()
    n1.heardFresh('n2', echo(2), 30)
    expect(n1.bootstrapAt('n1', larger, false, 40)).toBe(100)
  })
})
