import { afterEach, describe, expect, it } from 'vitest'
import { type Group, GroupKey, type Network, OfflineError } from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { Partition } from '../support/partition.ts'
import { secs, within } from '../support/time.ts'
import { Counter, fastConsensus, leadersConverged } from './support.ts'

const T = secs(15)
const key = GroupKey.fromSecret('safety')

/** Records every (term, leader) any member reports, to check there is never more than one per term. */
function watchLeaders(groups: readonly Group<Counter>[]): Map<number, Set<string>> {
  const byTerm = new Map<number, Set<string>>()
  const note = (g: Group<Counter>) => {
    const s = g.status
    if (s.role === 'leader') {
      const set = byTerm.get(s.term) ?? new Set()
      set.add(s.id)
      byTerm.set(s.term, set)
    }
  }
  for (const g of groups) {
    note(g)
    const loop = async () => {
      try {
        while (true) {
          await g.when.leaderChanged()
          note(g)
        }
      } catch {}
    }
    void loop()
  }
  return byTerm
}

async function cluster(nodes: Nodes, n: number, partition: Partition, opts: Record<string, unknown> = {}) {
  const first = await nodes.create({ partition })
  const nets: Network[] = [first]
  for (let i = 1; i < n; i++) nets.push(await nodes.create({ partition, bootstrap: first.addresses }))
  await within(T, Promise.all(nets.map((x) => x.discovery.when.peers(n - 1))))
  const groups = await Promise.all(
    nets.map((x) => x.groups.join({ key, stateMachine: new Counter(), consensus: fastConsensus, ...opts })),
  )
  await within(T, Promise.all(groups.map((g) => g.when.bonded(n - 1))), 'full mesh')
  return { nets, groups }
}

describe('group safety', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  it('a partitioned minority never elects a leader nor commits; the majority keeps going', async () => {
    const partition = new Partition()
    const { nets, groups } = await cluster(nodes, 5, partition)
    const leaders = watchLeaders(groups)
    const first = await within(T, groups[0]!.when.leaderElected())
    await within(T, Promise.all(groups.map((g) => g.when.voters(5))), 'five voters')
    const before = await groups.find((g) => g.isLeader)!.execute({ inc: 1 })
    for (const g of groups) await within(T, g.when.applied().reaches(before))

    // The old leader ends up in the minority with one other node.
    const leaderIdx = nets.findIndex((n) => n.peerId === first)
    const minority = [leaderIdx, (leaderIdx + 1) % 5]
    const minNets = minority.map((i) => nets[i]!)
    const majNets = nets.filter((_, i) => !minority.includes(i))
    const minGroups = minority.map((i) => groups[i]!)
    const majGroups = groups.filter((_, i) => !minority.includes(i))
    await partition.split(minNets, majNets)

    // The majority elects a new leader and commits.
    const next = await within(T, majGroups[0]!.when.leaderChanged(), 'majority elects')
    expect(majNets.map((n) => n.peerId)).toContain(next)
    const committed = await majGroups[0]!.execute({ inc: 10 })
    for (const g of majGroups) await within(T, g.when.applied().reaches(committed))

    // The minority: writes and strong reads fail with OfflineError, weak reads serve stale state.
    await within(T, Promise.all(minGroups.map((g) => g.when.offline())), 'minority goes offline')
    for (const g of minGroups) {
      await expect(g.execute({ inc: 100 })).rejects.toBeInstanceOf(OfflineError)
      await expect(g.query('value', 'strong')).rejects.toBeInstanceOf(OfflineError)
      expect((await g.query('value', 'weak')).result).toBe(1)
      expect(g.isLeader).toBe(false)
      expect(g.applied).toBeLessThan(committed)
    }

    // Heal: the minority catches up to the majority's history; nothing it tried to write exists.
    partition.heal()
    for (const a of minNets) for (const b of majNets) a.discovery.dial(b.addresses[0]!)
    for (const g of minGroups) await within(T, g.when.applied().reaches(committed), 'minority catches up')
    for (const g of groups) expect((await g.query('value')).result).toBe(11)
    for (const [term, ids] of leaders) expect(ids.size, `leaders in term ${term}`).toBe(1)
  })

  it('seven members with five voters lose no committed entry when the leader and a voter die', async () => {
    const partition = new Partition()
    const { nets, groups } = await cluster(nodes, 7, partition)
    await within(T, groups[0]!.when.leaderElected())
    await within(T, Promise.all(groups.map((g) => g.when.voters(5))), 'five voters, two learners')
    const leader = groups.find((g) => g.isLeader)!
    const writes = await Promise.all(Array.from({ length: 50 }, (_, i) => leader.execute({ inc: i + 1 })))
    const committedAt = Math.max(...writes)
    const voters = leader.voters
    const victimVoter = voters.find((v) => v !== leader.status.id)!
    const dead = new Set([leader.status.id, victimVoter])
    for (const n of nets.filter((x) => dead.has(x.peerId))) await nodes.crash(n)
    const alive = groups.filter((g) => !dead.has(g.status.id))
    const next = await within(T, alive[0]!.when.leaderChanged(), 'a surviving voter is elected')
    expect(dead.has(next)).toBe(false)
    const after = await alive[0]!.execute({ inc: 1000 })
    for (const g of alive) await within(T, g.when.applied().reaches(after))
    for (const g of alive) {
      expect(g.applied).toBeGreaterThanOrEqual(committedAt)
      expect((await g.query('value')).result).toBe((50 * 51) / 2 + 1000)
    }
  })

  it('no two leaders in one term while the leader is cut off again and again', async () => {
    const partition = new Partition()
    const { nets, groups } = await cluster(nodes, 5, partition)
    const leaders = watchLeaders(groups)
    let expected = 0
    for (let round = 0; round < 3; round++) {
      const leaderId = await leadersConverged(groups)
      // After a heal the autopilot re-admits the members it dropped; the cut below leaves a quorum only
      // once all five vote again.
      await within(T, Promise.all(groups.map((g) => g.when.voters(5))), 'five voters again')
      const li = nets.findIndex((n) => n.peerId === leaderId)
      const cut = [li, (li + 1) % 5]
      await partition.split(
        cut.map((i) => nets[i]!),
        nets.filter((_, i) => !cut.includes(i)),
      )
      const majority = groups.filter((_, i) => !cut.includes(i))
      await within(T, Promise.any(majority.map((g) => g.when.isLeader())), 'majority elects a leader')
      const at = await majority.find((g) => g.isLeader)!.execute({ inc: 1 })
      expected++
      partition.heal()
      for (const a of nets) for (const b of nets) if (a !== b) a.discovery.dial(b.addresses[0]!)
      for (const g of groups)
        await within(T, g.when.applied().reaches(at), 'everyone catches up after the heal')
    }
    for (const [term, ids] of leaders) expect(ids.size, `leaders in term ${term}`).toBe(1)
    for (const g of groups) expect((await g.query('value')).result).toBe(expected)
  })

  it('membership changes under load lose nothing', async () => {
    const partition = new Partition()
    const { nets, groups } = await cluster(nodes, 3, partition)
    await within(T, groups[0]!.when.leaderElected())
    await within(T, Promise.all(groups.map((g) => g.when.voters(3))))
    let stop = false
    // Acknowledged increments happened; ones refused with OfflineError did not; the others (the commit
    // was not seen, or the leaving member's handle closed under them) may have.
    let sum = 0
    let unknown = 0
    const acknowledged: Promise<void>[] = []
    const load = (async () => {
      let k = 0
      while (!stop) {
        const g = groups[k++ % groups.length]!
        acknowledged.push(
          g.execute({ inc: 1 }).then(
            () => {
              sum += 1
            },
            (err: Error) => {
              if (!(err instanceof OfflineError)) unknown += 1
            },
          ),
        )
        await new Promise((r) => setTimeout(r, 2))
      }
    })()
    // Two members join (promoted to voters), then one of the originals leaves.
    const joiners = [
      await nodes.create({ bootstrap: nets[0]!.addresses }),
      await nodes.create({ bootstrap: nets[0]!.addresses }),
    ]
    const joined = await Promise.all(
      joiners.map((n) => n.groups.join({ key, stateMachine: new Counter(), consensus: fastConsensus })),
    )
    await within(T, Promise.all(joined.map((g) => g.when.voters(5))), 'grown to five voters')
    const leaving = groups.find((g) => !g.isLeader)!
    await leaving.close()
    stop = true
    await load
    await Promise.all(acknowledged)
    const remaining = [...groups.filter((g) => g !== leaving), ...joined]
    const last = await remaining[0]!.execute({ inc: 0 })
    for (const g of remaining) await within(T, g.when.applied().reaches(last))
    const value = (await remaining[0]!.query('value')).result
    expect(value).toBeGreaterThanOrEqual(sum)
    expect(value).toBeLessThanOrEqual(sum + unknown)
    for (const g of remaining) expect((await g.query('value')).result).toBe(value)
  })
})
