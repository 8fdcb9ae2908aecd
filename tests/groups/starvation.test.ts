import { afterEach, describe, expect, it } from 'vitest'
import { type Group, GroupKey } from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { Counter, fastConsensus } from './support.ts'

async function leaderOf(groups: Group<Counter>[]): Promise<Group<Counter>> {
  await Promise.race(groups.map((g) => g.when.isLeader()))
  return groups.find((g) => g.isLeader)!
}

describe('a tight write loop', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  it('does not starve timers: awaiting execute in a loop still lets the event loop breathe', async () => {
    const net = await nodes.create()
    const g = await net.groups.join({
      key: GroupKey.fromSecret('tight'),
      stateMachine: new Counter(),
      consensus: fastConsensus,
    })
    await within(secs(5), g.when.isLeader())
    let ticks = 0
    const timer = setInterval(() => ticks++, 5)
    const started = performance.now()
    // On an in-memory store a single-voter group commits through microtasks only.
    while (performance.now() - started < 300) await g.execute({ inc: 1 })
    clearInterval(timer)
    // 300 ms of writing with a 5 ms interval timer: it must have fired many times, not zero.
    expect(ticks).toBeGreaterThan(10)
    expect((await g.query('value')).result).toBeGreaterThan(100)
  })
  it('lets 100 callers in a tight loop commit together, on the leader and through a follower', async () => {
    const nets = await nodes.star(3)
    const key = GroupKey.fromSecret('tight-many')
    const groups = await Promise.all(
      nets.map((n) => n.groups.join({ key, stateMachine: new Counter(), consensus: fastConsensus })),
    )
    await within(secs(10), Promise.all(groups.map((g) => g.when.voters(3))))
    const leader = await within(secs(10), leaderOf(groups))
    const follower = groups.find((g) => g !== leader)!
    await within(secs(10), follower.when.online())
    let acknowledged = 0
    const write = async (g: Group<Counter>, callers: number) => {
      const started = performance.now()
      await Promise.all(
        Array.from({ length: callers }, async () => {
          while (performance.now() - started < 400) {
            await g.execute({ inc: 1 })
            acknowledged++
          }
        }),
      )
    }
    // Callers resumed one by one, or forwarded one by one, each cost a proposal and a round of
    // appends: 100 of them then committed barely more than one (1.2× and 3× the commits). Together,
    // the commands of one turn share a proposal, on the leader and through a follower. Commands per
    // proposal is that batching itself; a commit rate would also measure how loaded the machine is.
    for (const [name, g] of [
      ['leader', leader],
      ['follower', follower],
    ] as const) {
      const before = { ...leader.stats }
      await write(g, 100)
      const proposals = leader.stats.proposals - before.proposals
      const commands = leader.stats.proposedCommands - before.proposedCommands
      expect(commands / proposals, `${name}: ${commands} commands in ${proposals} proposals`).toBeGreaterThan(
        10,
      )
    }
    // Each caller got its own part of a batch: every acknowledged increment applied exactly once.
    expect((await follower.query('value', 'strong')).result).toBe(acknowledged)
  })
})
