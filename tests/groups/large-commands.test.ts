/**
 * Large commands. Every message between members must fit a transport frame (4 MiB by default): runs
 * of large commands go out in several appends, catch-up answers stay within a frame, and a command
 * too large to ever reach the other members is refused before it is proposed, instead of stalling
 * their replication for good.
 */
import { afterEach, describe, expect, it } from 'vitest'
import {
  type ConsensusOptions,
  FrameTooLargeError,
  type Group,
  GroupKey,
  InvalidArgumentError,
  type Network,
} from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { fastConsensus, NumberMachine } from './support.ts'

const T = secs(20)
const key = GroupKey.fromSecret('large-commands')
const KiB = 1024

/** Keeps the total size of the blobs it applied. */
class Blobs extends NumberMachine<{ blob: Uint8Array }, 'bytes'> {
  readonly signature = 'mosaik-tests/blobs/v1'

  get bytes(): number {
    return this.value
  }

  apply(command: { blob: Uint8Array }): void {
    this.value += command.blob.length
  }
}

describe('groups: large commands', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  async function three(
    consensus: ConsensusOptions = fastConsensus,
  ): Promise<{ nets: Network[]; groups: Group<Blobs>[] }> {
    const nets = await nodes.star(3)
    const groups = await Promise.all(
      nets.map((n) =>
        n.groups.join({ key, stateMachine: new Blobs(), consensus: { ...consensus, bootstrapExpect: 3 } }),
      ),
    )
    await within(T, Promise.all(groups.map((g) => g.when.online())), 'every member is online')
    return { nets, groups }
  }

  it('replicates a burst of commands larger than a frame in all, to every member', async () => {
    const { groups } = await three()
    const leader = groups.find((g) => g.isLeader)!
    // 100 commands of 96 KiB in one turn: one proposal of 9.6 MB, more than two frames.
    const blob = new Uint8Array(96 * KiB)
    const indices = await within(
      T,
      Promise.all(Array.from({ length: 100 }, () => leader.execute({ blob }))),
      'the burst commits',
    )
    const last = Math.max(...indices)
    for (const g of groups) {
      await within(T, g.when.applied().reaches(last), 'every member applies the burst')
      expect(g.stateMachine.bytes).toBe(100 * 96 * KiB)
    }
  })

  it('a member far behind catches up on large commands', async () => {
    const { nets, groups } = await three()
    const leader = groups.find((g) => g.isLeader)!
    const blob = new Uint8Array(200 * KiB)
    let last = 0
    for (let i = 0; i < 40; i++) last = await leader.execute({ blob })
    // A fourth member joins with 8 MB to pull, in answers of at most about 1 MiB.
    const late = await nodes.create({ bootstrap: [nets[0]!.addresses[0]!] })
    const g = await late.groups.join({
      key,
      stateMachine: new Blobs(),
      consensus: { ...fastConsensus, bootstrapExpect: 3 },
    })
    await within(T, g.when.applied().reaches(last), 'the late member catches up')
    expect(g.stateMachine.bytes).toBe(40 * 200 * KiB)
  })

  it('refuses a command over maxCommandBytes before proposing it; the group goes on', async () => {
    const { groups } = await three()
    const follower = groups.find((g) => !g.isLeader)!
    const leader = groups.find((g) => g.isLeader)!
    for (const g of [leader, follower]) {
      const refused = g.execute({ blob: new Uint8Array(1024 * KiB + 1) })
      await expect(refused).rejects.toBeInstanceOf(FrameTooLargeError)
      await expect(refused).rejects.toThrow(/command of \d+ bytes exceeds the limit of 1048576 bytes/)
    }
    const at = await follower.execute({ blob: new Uint8Array(1000 * KiB) })
    for (const g of groups)
      await within(T, g.when.applied().reaches(at), 'the next command applies everywhere')
    expect(leader.stateMachine.bytes).toBe(1000 * KiB)
  })

  it("a forwarded command over the leader's lower limit fails its caller alone, with the leader's limit", async () => {
    // The voters accept commands of at most 64 KiB; an observer (which never leads) allows 1 MiB.
    const { nets, groups } = await three({ ...fastConsensus, maxCommandBytes: 64 * KiB })
    const late = await nodes.create({ bootstrap: [nets[0]!.addresses[0]!] })
    const observer = await late.groups.join({
      key,
      stateMachine: new Blobs(),
      preference: 'observer',
      consensus: { ...fastConsensus, bootstrapExpect: 3 },
    })
    await within(T, observer.when.online(), 'the observer is online')
    // Two callers in one turn: their commands travel to the leader in one forward.
    const large = observer.execute({ blob: new Uint8Array(100 * KiB) })
    const small = observer.execute({ blob: new Uint8Array(KiB) })
    await expect(large).rejects.toBeInstanceOf(FrameTooLargeError)
    await expect(large).rejects.toMatchObject({ limit: 64 * KiB })
    const at = await within(T, small, 'the small command commits')
    for (const g of [...groups, observer]) {
      await within(T, g.when.applied().reaches(at), 'every member applies it')
      expect(g.stateMachine.bytes).toBe(KiB)
    }
  })

  it('refuses to join on a node whose frames cannot carry an append of 1 MiB', async () => {
    const net = await nodes.create({ maxFrameSize: 512 * KiB })
    const joining = net.groups.join({ key, stateMachine: new Blobs(), consensus: fastConsensus })
    await expect(joining).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(joining).rejects.toThrow(/groups need maxFrameSize of at least/)
  })

  it('refuses a maxCommandBytes that leaves no room in a frame', async () => {
    const net = await nodes.create()
    const joining = net.groups.join({
      key,
      stateMachine: new Blobs(),
      consensus: { ...fastConsensus, maxCommandBytes: 4 * 1024 * KiB },
    })
    await expect(joining).rejects.toBeInstanceOf(InvalidArgumentError)
  })
})
