import { afterEach, describe, expect, it } from 'vitest'
import { GroupKey } from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { Counter, fastConsensus } from './support.ts'

describe('groups smoke', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  it('a single node elects itself and commits', async () => {
    const net = await nodes.create()
    const g = await net.groups.join({
      key: GroupKey.fromSecret('s'),
      stateMachine: new Counter(),
      consensus: fastConsensus,
    })
    await within(secs(5), g.when.leaderElected())
    expect(g.isLeader).toBe(true)
    const i = await g.execute({ inc: 5 })
    expect(i).toBeGreaterThan(0)
    expect((await g.query('value')).result).toBe(5)
    expect((await g.query('value', 'strong')).result).toBe(5)
  })

  it('three nodes replicate through one leader', async () => {
    const nets = await nodes.star(3)
    await within(secs(5), Promise.all(nets.map((n) => n.discovery.when.peers(2))))
    const key = GroupKey.fromSecret('three')
    const groups = await Promise.all(
      nets.map((n) => n.groups.join({ key, stateMachine: new Counter(), consensus: fastConsensus })),
    )
    await within(secs(10), Promise.all(groups.map((g) => g.when.bonded(2))), 'bonds')
    const leader = await within(secs(10), groups[0]!.when.leaderElected(), 'leader')
    await within(secs(10), Promise.all(groups.map((g) => g.when.leaderIs(leader))))
    const follower = groups.find((g) => !g.isLeader)!
    await within(secs(5), follower.when.online())
    const last = await follower.execute({ inc: 7 })
    await within(secs(5), Promise.all(groups.map((g) => g.when.applied().reaches(last))))
    for (const g of groups) expect((await g.query('value')).result).toBe(7)
    expect((await follower.query('value', 'strong')).result).toBe(7)
    await within(
      secs(5),
      Promise.all(groups.map((g) => g.when.voters(3))),
      'autopilot promotes both learners',
    )
  })
})
