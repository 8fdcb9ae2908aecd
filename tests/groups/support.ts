import {
  type Digest,
  decodeCanonical,
  encodeCanonical,
  type Group,
  GroupKey,
  type Network,
  type StateMachine,
} from '../../platform/node/index.ts'
import type { BondSecrets } from '../../src/groups/bond.ts'
import { FAST_CONSENSUS } from '../support/consensus.ts'
import { secs, within } from '../support/time.ts'

/** mosaik's test Counter: Increment(n) / Decrement(n), queried for its value. */
export type CounterCommand = { inc: number } | { dec: number }

/** A test machine whose state is one number: queried, snapshotted and restored as it is. */
export abstract class NumberMachine<C, Q = 'value'> implements StateMachine<C, Q, number> {
  abstract readonly signature: string
  value = 0

  abstract apply(command: C): unknown

  query(): number {
    return this.value
  }

  snapshot(): Uint8Array {
    return encodeCanonical(this.value)
  }

  restore(snapshot: Uint8Array): void {
    this.value = snapshot.length === 0 ? 0 : (decodeCanonical(snapshot) as number)
  }
}

export class Counter extends NumberMachine<CounterCommand> {
  readonly signature: string

  constructor(signature = 'mosaik-tests/counter/v1') {
    super()
    this.signature = signature
  }

  apply(command: CounterCommand): void {
    this.value += 'inc' in command ? command.inc : -command.dec
  }
}

/** A register: `{ set: v }` replaces the value; the query reads it (null before the first write). */
export type RegisterCommand = { set: string }

export class Register implements StateMachine<RegisterCommand, 'value', string | null> {
  readonly signature: string
  value: string | null = null

  constructor(signature = 'mosaik-tests/register/v1') {
    this.signature = signature
  }

  apply(command: RegisterCommand): void {
    this.value = command.set
  }

  query(): string | null {
    return this.value
  }

  snapshot(): Uint8Array {
    return encodeCanonical(this.value)
  }

  restore(snapshot: Uint8Array): void {
    this.value = snapshot.length === 0 ? null : (decodeCanonical(snapshot) as string | null)
  }
}

/** Fast timings for tests on one machine (see tests/support/consensus.ts). */
export const fastConsensus = FAST_CONSENSUS

/** What `peer` needs to bond with `net`'s group as an observer holding the secret 'right'. */
export const observerSecrets = (net: Network, peer: Network, groupId: Digest): BondSecrets => ({
  networkId: net.networkId,
  groupId,
  secret: GroupKey.fromSecret('right').secret,
  localId: peer.peerId,
  observer: true,
})

/** mosaik's NoOp machine: commands, queries and results are all null. */
export class NoOp implements StateMachine<null, null, null> {
  readonly signature = 'mosaik_noop_state_machine'
  apply(): void {}
  query(): null {
    return null
  }
  snapshot(): Uint8Array {
    return new Uint8Array(0)
  }
  restore(): void {}
}

/** mosaik's leaders_converged: resolves with the leader once every group reports the same one. */
export async function leadersConverged(
  groups: readonly Group<Counter>[],
  timeoutMs = secs(10),
): Promise<string> {
  const converged = async () => {
    while (true) {
      const leader = groups[0]!.leader
      if (leader !== undefined && groups.every((g) => g.leader === leader)) return leader
      await Promise.race(groups.map((g) => g.when.leaderChanged()))
    }
  }
  return within(timeoutMs, converged(), 'leaders converge')
}
