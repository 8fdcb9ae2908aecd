import { afterEach, describe, expect, it } from 'vitest'
import { GroupKey, MemoryLogStore, type Network } from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { Counter, fastConsensus, leadersConverged, NoOp } from './support.ts'

const T = secs(10)

async function connectAll(nets: readonly Network[]): Promise<void> {
  await within(T, Promise.all(nets.map((n) => n.discovery.when.peers(nets.length - 1))), 'discovery')
}

async function joinAll(nets: readonly Network[], key = GroupKey.fromSecret('counter'), opts = {}) {
  return Promise.all(
    nets.map((n) => n.groups.join({ key, stateMachine: new Counter(), consensus: fastConsensus, ...opts })),
  )
}

describe('groups (ports of mosaik tests/groups)', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  // bonds::members_can_see_each_other
  it('members of overlapping groups bond with every other member', async () => {
    const [n0, n1, n2, n3] = await nodes.star(4)
    await connectAll([n0!, n1!, n2!, n3!])
    const join = (n: Network, s: string) =>
      n.groups.join({ key: GroupKey.fromSecret(s), stateMachine: new NoOp(), consensus: fastConsensus })
    const g1 = [await join(n0!, 'g1'), await join(n1!, 'g1')]
    const g2 = [await join(n0!, 'g2'), await join(n2!, 'g2'), await join(n3!, 'g2')]
    const g3 = [await join(n1!, 'g3'), await join(n2!, 'g3')]
    for (const group of [g1, g2, g3]) {
      await within(secs(5), Promise.all(group.map((g) => g.when.bonded(group.length - 1))), 'full mesh')
      for (const g of group) expect(g.bonds).toHaveLength(group.length - 1)
    }
  })

  // builder::group_id_derived_from_config
  it('the group id derives from the key, the consensus config and the state machine', async () => {
    const net = await nodes.create()
    const key = GroupKey.fromSecret('id-test')
    const a = await net.groups.join({ key, stateMachine: new Counter() })
    const b = await net.groups.join({ key, stateMachine: new Counter(), storage: new MemoryLogStore() })
    expect(a.id.equals(b.id)).toBe(true)
    const c = await net.groups.join({ key: GroupKey.fromSecret('other'), stateMachine: new Counter() })
    expect(c.id.equals(a.id)).toBe(false)
    const d = await net.groups.join({ key, stateMachine: new NoOp() })
    expect(d.id.equals(a.id)).toBe(false)
    const e = await net.groups.join({ key, stateMachine: new Counter(), consensus: { heartbeatMs: 90 } })
    expect(e.id.equals(a.id)).toBe(false)
    expect(String(key)).not.toContain(key.secret.toString())
  })

  // feed::smoke
  it('feed through a follower assigns consecutive indices; both replicas apply them', async () => {
    const n0 = await nodes.create()
    const [g0] = await joinAll([n0])
    await within(T, g0!.when.isLeader())
    const n1 = await nodes.create({ bootstrap: n0.addresses })
    const [g1] = await joinAll([n1])
    await within(T, g1!.when.online(), 'follower online')
    const i1 = await g1!.feed({ inc: 1 })
    const i2 = await g1!.feed({ inc: 2 })
    const range = await g1!.feedMany([{ inc: 3 }, { inc: 4 }, { inc: 5 }])
    expect(i2).toBe(i1 + 1)
    expect(range).toEqual({ first: i2 + 1, last: i2 + 3 })
    await within(
      T,
      Promise.all([g0!.when.applied().reaches(range.last), g1!.when.applied().reaches(range.last)]),
    )
    expect((await g0!.query('value')).result).toBe(15)
    expect((await g1!.query('value')).result).toBe(15)
  })

  // leader::is_elected
  it('a lone node elects itself; joiners follow it; after the leader dies the rest elect one', async () => {
    const n0 = await nodes.create()
    const [g0] = await joinAll([n0])
    expect(g0!.leader).toBeUndefined()
    await within(T, g0!.when.isLeader())
    const term = g0!.status.term
    const n1 = await nodes.create({ bootstrap: n0.addresses })
    const n2 = await nodes.create({ bootstrap: n0.addresses })
    const [g1, g2] = await joinAll([n1, n2])
    await within(T, Promise.all([g1!.when.leaderIs(n0.peerId), g2!.when.leaderIs(n0.peerId)]))
    expect(g0!.status.term).toBe(term) // recognized without an election
    await within(T, g0!.when.voters(3), 'both promoted')
    await nodes.crash(n0)
    const next = await within(T, g1!.when.leaderChanged(), 'new leader')
    expect([n1.peerId, n2.peerId]).toContain(next)
    await within(T, g2!.when.leaderIs(next))
    const n3 = await nodes.create({ bootstrap: n1.addresses })
    const [g3] = await joinAll([n3])
    await within(T, g3!.when.leaderIs(next))
  })

  // leader::rivals_with_same_log_pos
  it('leaders elected apart converge on one leader once they meet', async () => {
    const nets = [await nodes.create(), await nodes.create(), await nodes.create()]
    const groups = await joinAll(nets)
    await within(T, Promise.all(groups.map((g) => g.when.isLeader())), 'each leads alone')
    for (const n of nets) for (const m of nets) if (n !== m) n.discovery.dial(m.addresses[0]!)
    const leader = await leadersConverged(groups)
    expect(nets.map((n) => n.peerId)).toContain(leader)
    const i = await groups[0]!.execute({ inc: 1 })
    await within(T, Promise.all(groups.map((g) => g.when.applied().reaches(i))))
  })

  // leader::rivals_with_different_log_pos
  it('when rival groups meet, the one with the longer committed history wins; a loser holding acknowledged writes halts and keeps them (mosaik drops them silently)', async () => {
    const [n0, n1, n2] = [await nodes.create(), await nodes.create(), await nodes.create()]
    const [g0, g1, g2] = await joinAll([n0, n1, n2])
    await within(T, Promise.all([g0, g1, g2].map((g) => g!.when.isLeader())))
    for (const x of [1, 2, 3]) await g0!.execute({ inc: x })
    await g1!.execute({ inc: 100 })
    for (const n of [n0, n1, n2]) for (const m of [n0, n1, n2]) if (n !== m) n.discovery.dial(m.addresses[0]!)
    // n2 committed no command: it rejoins the winner and loses nothing. n1 acknowledged a write that
    // joining would discard: it stops, keeps its data, and says why.
    const halted = await within(T, g1!.when.halted(), 'n1 halts')
    expect(halted.code).toBe('GROUP_DIVERGED')
    expect(g1!.status.halted).toBe(true)
    await expect(g1!.execute({ inc: 1 })).rejects.toMatchObject({ code: 'GROUP_DIVERGED' })
    expect((await g1!.query('value')).result).toBe(100)
    const leader = await leadersConverged([g0!, g2!])
    expect(leader).toBe(n0.peerId)
    const i = await g0!.execute({ inc: 4 })
    await within(T, Promise.all([g0, g2].map((g) => g!.when.applied().reaches(i))))
    for (const g of [g0, g2]) expect((await g!.query('value')).result).toBe(10)
  })

  // catchup::one_leader_one_follower_small
  it('a late follower catches up from the leader and keeps replicating', async () => {
    const n0 = await nodes.create()
    const [g0] = await joinAll([n0])
    await within(T, g0!.when.isLeader())
    for (const x of [1, 2, 0, 3]) await g0!.execute({ inc: x })
    const n1 = await nodes.create({ bootstrap: n0.addresses })
    const [g1] = await joinAll([n1])
    await within(T, g1!.when.leaderIs(n0.peerId))
    await within(T, g1!.when.applied().reaches(g0!.applied))
    expect((await g1!.query('value')).result).toBe(6)
    const last = await g0!.executeMany([{ inc: 1 }, { inc: 1 }])
    await within(T, g1!.when.applied().reaches(last.last))
    expect((await g1!.query('value')).result).toBe(8)
  })

  // catchup::one_leader_one_follower_large, parameterized over compaction (mosaik: over batch size)
  it.each([7, 20, 100, 1000])(
    'late followers catch up on 200 commands (compaction every %i entries)',
    async (snapshotEvery) => {
      const opts = { consensus: { ...fastConsensus, snapshotEvery } }
      const n0 = await nodes.create()
      const [g0] = await joinAll([n0], undefined, opts)
      await within(T, g0!.when.isLeader())
      await Promise.all(Array.from({ length: 200 }, (_, i) => g0!.execute({ inc: i })))
      const n1 = await nodes.create({ bootstrap: n0.addresses })
      const [g1] = await joinAll([n1], undefined, opts)
      await within(secs(20), g1!.when.applied().reaches(g0!.applied), 'n1 catches up')
      expect((await g1!.query('value')).result).toBe(19900)
      await within(T, g1!.when.online())
      await Promise.all(Array.from({ length: 200 }, (_, i) => g1!.execute({ inc: 200 + i })))
      const n2 = await nodes.create({ bootstrap: n0.addresses })
      const [g2] = await joinAll([n2], undefined, opts)
      await within(secs(20), g2!.when.applied().reaches(g1!.applied), 'n2 catches up')
      if (snapshotEvery < 200) {
        // the leader's log was compacted past what the joiners needed: they installed snapshots
        expect(g1!.stats.snapshotsInstalled + g2!.stats.snapshotsInstalled).toBeGreaterThan(0)
        expect(g0!.stats.compactions).toBeGreaterThan(0)
      }
      for (const g of [g0, g1, g2]) {
        await within(T, g!.when.applied().reaches(g1!.applied))
        expect((await g!.query('value')).result).toBe(79800)
      }
    },
  )

  // Beyond mosaik: a member more than 1 000 committed entries behind, with the log still whole, pulls
  // them in windows from several members at once instead of waiting for the leader's appends alone.
  it('a member far behind an uncompacted log pulls the entries it misses from several members', async () => {
    const opts = { consensus: { ...fastConsensus, snapshotEvery: 1_000_000 } }
    const n0 = await nodes.create()
    const [g0] = await joinAll([n0], undefined, opts)
    await within(T, g0!.when.isLeader())
    const n1 = await nodes.create({ bootstrap: n0.addresses })
    const [g1] = await joinAll([n1], undefined, opts)
    await within(T, g1!.when.online())
    let last = 0
    for (let i = 0; i < 3000; i++) last = await g0!.execute({ inc: 1 })
    const n2 = await nodes.create({ bootstrap: n0.addresses })
    const [g2] = await joinAll([n2], undefined, opts)
    await within(secs(20), g2!.when.applied().reaches(last), 'n2 catches up')
    expect((await g2!.query('value')).result).toBe(3000)
    expect(g2!.stats.snapshotsInstalled).toBe(0)
    // More than one window (2 000 entries each) was pulled, so more than one member served them.
    expect(g2!.stats.entriesPulled).toBeGreaterThan(2000)
    await within(T, g2!.when.online())
    const after = await g2!.execute({ inc: 1 })
    for (const g of [g0, g1, g2]) await within(T, g!.when.applied().reaches(after))
  })

  // Beyond mosaik: observers opening at once on a quiet group (dashboards on a collection) each ask
  // for a snapshot; a member serves them all from one snapshot of its state, and a command applied
  // since makes it take a new one. What it holds for them goes `snapshotTtlMs` after the last fetch.
  it('a member serves observers joining a quiet group from one snapshot until a command changes the state', async () => {
    class CountingCounter extends Counter {
      taken = 0
      override snapshot(): Uint8Array {
        this.taken++
        return super.snapshot()
      }
    }
    const opts = { consensus: { ...fastConsensus, snapshotEvery: 20, snapshotTtlMs: secs(1) } }
    const key = GroupKey.fromSecret('quiet')
    const n0 = await nodes.create()
    const sm0 = new CountingCounter()
    const g0 = await n0.groups.join({ key, stateMachine: sm0, ...opts })
    await within(T, g0.when.isLeader())
    let last = 0
    for (let i = 1; i <= 100; i++) last = await g0.execute({ inc: i })
    const observe = async () => {
      const n = await nodes.create({ bootstrap: n0.addresses })
      return n.groups.join({ key, stateMachine: new Counter(), preference: 'observer', ...opts })
    }
    const takenBefore = sm0.taken
    const servedBefore = g0.stats.snapshotsServed
    const observers = await Promise.all([observe(), observe(), observe()])
    for (const g of observers) {
      await within(secs(20), g.when.applied().reaches(last), 'an observer catches up')
      expect(g.stats.snapshotsInstalled).toBeGreaterThan(0)
      expect((await g.query('value')).result).toBe(5050)
    }
    expect(g0.stats.snapshotsServed - servedBefore).toBeGreaterThanOrEqual(3)
    expect(sm0.taken - takenBefore).toBeLessThanOrEqual(1)
    // A command changes the state: the next observer gets a snapshot that holds it.
    last = await g0.execute({ inc: 1000 })
    const late = await observe()
    await within(secs(20), late.when.applied().reaches(last), 'the late observer catches up')
    expect(late.stats.snapshotsInstalled).toBeGreaterThan(0)
    expect((await late.query('value')).result).toBe(6050)
    expect(g0.stats.snapshotsHeld).toBeGreaterThan(0)
    // Well before the default TTL of 30 s, the leader holds none of them any more.
    const dropped = (async () => {
      while (g0.stats.snapshotsHeld > 0) await new Promise((r) => setTimeout(r, 10))
    })()
    await within(T, dropped, 'the leader drops the snapshots it served')
  })

  // execute::no_catchup_weak_query
  it('executes and weak queries through leader and followers survive a leader kill', async () => {
    const nets = await nodes.star(3)
    await connectAll(nets)
    const groups = await joinAll(nets)
    const leaderId = await leadersConverged(groups)
    await within(T, Promise.all(groups.map((g) => g.when.online())))
    const leader = groups.find((g) => g.isLeader)!
    const followers = groups.filter((g) => !g.isLeader)
    await leader.execute({ inc: 3 })
    const i = await leader.execute({ inc: 4 })
    expect((await leader.query('value', 'strong')).result).toBe(7)
    for (const f of followers) {
      await within(T, f.when.applied().reaches(i))
      expect((await f.query('value')).result).toBe(7)
    }
    const j = await followers[0]!.execute({ dec: 2 })
    for (const g of groups) await within(T, g.when.applied().reaches(j))
    for (const g of groups) expect((await g.query('value')).result).toBe(5)
    await within(T, leader.when.voters(3))
    await nodes.crash(nets.find((n) => n.peerId === leaderId)!)
    const next = await within(T, followers[0]!.when.leaderChanged())
    await within(T, followers[1]!.when.leaderIs(next))
    const [a, b] = await Promise.all(
      followers.map((f, k) => f.executeMany([{ inc: 3 + k }, { inc: 3 + k }, { inc: 3 + k }])),
    )
    const last = Math.max(a!.last, b!.last)
    for (const f of followers) await within(T, f.when.applied().reaches(last))
    for (const f of followers) expect((await f.query('value')).result).toBe(5 + 9 + 12)
  })

  // execute::no_catchup_strong_query
  it('strong and weak queries report the index they read at', async () => {
    const nets = await nodes.star(3)
    await connectAll(nets)
    const groups = await joinAll(nets)
    await leadersConverged(groups)
    await within(T, Promise.all(groups.map((g) => g.when.online())))
    const leader = groups.find((g) => g.isLeader)!
    const follower = groups.find((g) => !g.isLeader)!
    await leader.execute({ inc: 1 })
    const i = await leader.execute({ inc: 1 })
    const strongLeader = await leader.query('value', 'strong')
    expect(strongLeader).toEqual({ result: 2, at: i })
    await within(T, follower.when.applied().reaches(i))
    expect(await follower.query('value', 'weak')).toEqual({ result: 2, at: i })
    const strongFollower = await follower.query('value', 'strong')
    expect(strongFollower.result).toBe(2)
    expect(strongFollower.at).toBeGreaterThanOrEqual(i)
  })

  // execute::execute_is_send_sync_via_joinset, execute_many_..., query_is_send_sync_...
  it('concurrent executes, batches and queries from leader and follower all land', async () => {
    const nets = await nodes.star(2)
    await connectAll(nets)
    const groups = await joinAll(nets)
    await leadersConverged(groups)
    await within(T, Promise.all(groups.map((g) => g.when.online())))
    const [leader, follower] = [groups.find((g) => g.isLeader)!, groups.find((g) => !g.isLeader)!]
    const singles = await Promise.all([
      ...Array.from({ length: 5 }, () => leader.execute({ inc: 5 })),
      ...Array.from({ length: 5 }, () => follower.execute({ inc: 10 })),
    ])
    expect(new Set(singles).size).toBe(10)
    const batches = await Promise.all([
      leader.executeMany([{ inc: 1 }, { inc: 1 }]),
      leader.executeMany([{ inc: 2 }, { inc: 2 }]),
      follower.executeMany([{ inc: 3 }, { inc: 3 }]),
      follower.executeMany([{ inc: 4 }, { inc: 4 }]),
    ])
    const last = Math.max(...singles, ...batches.map((b) => b.last))
    for (const g of groups) await within(T, g.when.applied().reaches(last))
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, k) => groups[k % 2]!.query('value', k % 3 === 0 ? 'strong' : 'weak')),
    )
    for (const r of results) expect(r.result).toBe(75 + 20)
  })
})
