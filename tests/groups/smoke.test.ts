import { afterEach, describe, expect, it } from 'vitest'
import { GroupKey, MemoryLogStore } from '../../platform/node/index.ts'
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

  it('an abandoned join rejects, and the group it started is left unless another join took it', async () => {
    const net = await nodes.create()
    const key = GroupKey.fromSecret('abandoned')
    /** A store that says when the group let it go. */
    const watched = () => {
      const store = new MemoryLogStore()
      const closed = Promise.withResolvers<void>()
      const close = store.close.bind(store)
      store.close = async () => {
        await close()
        closed.resolve()
      }
      return { store, closed: closed.promise }
    }
    // Aborted before the call: nothing starts.
    const refused = net.groups.join({ key, stateMachine: new Counter(), signal: AbortSignal.abort() })
    await expect(refused).rejects.toMatchObject({ name: 'AbortError' })
    // Aborted while the group starts, with no other join of it: the group is left again.
    const first = watched()
    const controller = new AbortController()
    const abandoned = net.groups.join({
      key,
      stateMachine: new Counter(),
      storage: first.store,
      consensus: fastConsensus,
      signal: controller.signal,
    })
    controller.abort(new Error('changed my mind'))
    await expect(abandoned).rejects.toThrow('changed my mind')
    await within(secs(5), first.closed, 'the abandoned group is left')
    // Aborted while another join of the same group waits: that one gets the group, and it works.
    const second = watched()
    const other = new AbortController()
    const machine = new Counter()
    const options = { key, stateMachine: machine, storage: second.store, consensus: fastConsensus }
    const dropped = net.groups.join({ ...options, signal: other.signal })
    const kept = net.groups.join(options)
    other.abort()
    await expect(dropped).rejects.toMatchObject({ name: 'AbortError' })
    const g = await within(secs(5), kept)
    await within(secs(5), g.when.leaderElected())
    await g.execute({ inc: 2 })
    expect(machine.value).toBe(2)
    await g.close()
    await within(secs(5), second.closed, 'the group is left with its last handle')
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
