/**
 * Commands the state machine refuses. Any member may propose any bytes, and a state machine may refuse
 * a command by throwing from `apply` (or its codec's `decode`): that command is refused on every
 * replica and its caller gets CommandRefusedError, while the commands committed around it apply as
 * usual, however the commits were split into batches. An `applyBatch` that throws leaves the state
 * unknown, so the member stops rather than go on from it.
 */
import { afterEach, describe, expect, it } from 'vitest'
import {
  CommandRefusedError,
  GroupFailedError,
  GroupKey,
  MemoryLogStore,
  type Network,
} from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { fastConsensus, NumberMachine } from './support.ts'

const T = secs(10)
const key = GroupKey.fromSecret('refusals')

/** A balance that refuses to go below zero: `apply` throws for such a command. */
class Balance extends NumberMachine<{ add: number }> {
  readonly signature = 'mosaik-tests/balance/v1'

  apply(command: { add: number }): number {
    if (typeof command?.add !== 'number') throw new TypeError('not a balance command')
    if (this.value + command.add < 0) throw new Error('the balance would go below zero')
    this.value += command.add
    return this.value
  }
}

describe('commands the state machine refuses', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  async function group(n: number) {
    const nets = (await nodes.star(n)) as Network[]
    const groups = await Promise.all(
      nets.map((net) => net.groups.join({ key, stateMachine: new Balance(), consensus: fastConsensus })),
    )
    await within(T, Promise.all(groups.map((g) => g.when.online())), 'every member is online')
    return groups
  }

  it('refuses a command whose apply throws on every replica, and applies the commands around it', async () => {
    const groups = await group(3)
    const follower = groups.find((g) => !g.isLeader)!
    // One proposal: the refused command sits between two that apply.
    const many = follower.executeMany([{ add: 1 }, { add: -5 }, { add: 2 }])
    const refused = await many.then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(refused).toBeInstanceOf(CommandRefusedError)
    const { refused: which, value } = refused as CommandRefusedError<unknown[]>
    expect(which).toHaveLength(1)
    expect(which[0]!.reason).toMatch(/below zero/)
    expect(value).toEqual([{ add: 1 }, { add: -5 }, { add: 2 }])

    // Calls of one turn share a run of commits too: only the refused one fails.
    const leader = groups.find((g) => g.isLeader)!
    const calls = await Promise.allSettled([
      leader.execute({ add: 10 }),
      leader.execute({ add: -100 }),
      leader.execute({ add: 20 }),
    ])
    expect(calls.map((c) => c.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect((calls[1] as PromiseRejectedResult).reason).toBeInstanceOf(CommandRefusedError)
    const last = (calls[2] as PromiseFulfilledResult<number>).value
    for (const g of groups) {
      await within(T, g.when.applied().reaches(last), 'every replica applies the last command')
      expect(g.stateMachine.value).toBe(33)
    }
    // A refused command can be followed by more: nothing was skipped.
    const after = await follower.executeForResult({ add: 7 })
    expect(after.result).toBe(40)
  })

  it('refuses a command that does not decode, from a member whose codec writes garbage', async () => {
    const groups = await group(2)
    const rogueNet = await nodes.create({ bootstrap: [nodes.all[0]!.addresses[0]!] })
    // The same machine (so the same group), with a codec that writes what no member decodes.
    const rogueMachine = Object.assign(new Balance(), {
      codecs: {
        command: {
          encode: () => new Uint8Array([0xff, 0x00]),
          decode: (): never => {
            throw new TypeError('garbage')
          },
        },
      },
    })
    const rogue = await rogueNet.groups.join({ key, stateMachine: rogueMachine, consensus: fastConsensus })
    await within(T, rogue.when.online(), 'the rogue member is online')
    const rejected = await rogue.execute({ add: 1000 }).then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(rejected).toBeInstanceOf(CommandRefusedError)
    expect((rejected as CommandRefusedError).refused[0]!.reason).toMatch(/does not decode/)
    // The honest members go on, and agree.
    const at = await groups[0]!.execute({ add: 3 })
    for (const g of groups) {
      await within(T, g.when.applied().reaches(at), 'the honest members apply the next command')
      expect(g.stateMachine.value).toBe(3)
    }
  })

  it('stops a member whose applyBatch throws, rather than go on from an unknown state', async () => {
    class Batched extends Balance {
      applyBatch(commands: readonly { add: number }[]): number[] {
        return commands.map((c) => this.apply(c))
      }
    }
    const net = await nodes.create()
    const g = await net.groups.join({ key, stateMachine: new Batched(), consensus: fastConsensus })
    await within(T, g.when.online(), 'the member is online')
    await g.execute({ add: 1 })
    const failing = g.execute({ add: -10 })
    const halted = await within(T, g.when.halted(), 'the member stops')
    expect(halted).toBeInstanceOf(GroupFailedError)
    expect(halted.message).toMatch(/applyBatch threw .*below zero/)
    await expect(failing).rejects.toThrow()
    await expect(g.execute({ add: 1 })).rejects.toBeInstanceOf(GroupFailedError)
  })

  it('a snapshot its state machine cannot restore stops the member before it replaces the log on disk', async () => {
    const consensus = { ...fastConsensus, snapshotEvery: 20 }
    const [n0] = (await nodes.star(1)) as Network[]
    const g0 = await n0!.groups.join({ key, stateMachine: new Balance(), consensus })
    await within(T, g0.when.isLeader(), 'the first member leads')
    for (let i = 0; i < 50; i++) await g0.execute({ add: 1 })
    // A member that joins behind the compacted log, with a machine that cannot read the snapshot.
    class Unreadable extends Balance {
      override restore(snapshot: Uint8Array): void {
        if (snapshot.length > 0) throw new Error('unreadable snapshot')
      }
    }
    const store = new MemoryLogStore()
    const late = await nodes.create({ bootstrap: [n0!.addresses[0]!] })
    const g = await late.groups.join({
      key,
      stateMachine: new Unreadable(),
      consensus,
      preference: 'observer',
      storage: store,
    })
    const halted = await within(T, g.when.halted(), 'the member stops')
    expect(halted).toBeInstanceOf(GroupFailedError)
    expect(halted.message).toMatch(/unreadable snapshot/)
    expect(await store.readSnapshot()).toBeUndefined()
  })
})
