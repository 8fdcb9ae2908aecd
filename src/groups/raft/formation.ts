/**
 * Group formation: when a fresh node (empty log, no cluster) may bootstrap a cluster of its own, with
 * which first voters, and which cluster it may join. A group forms once:
 * - never while the worker holds it (`hold`): until discovery's initial sync is done and while the
 *   catalog shows members it has not bonded with yet, which may belong to an established cluster;
 * - never once it heard of an established member (a hello from a cluster, or a leader);
 * - only when it sees `expect` fresh non-observer members, itself included; those, this node and the
 *   smallest others, are the first voters (etcd's initial cluster, Consul's `bootstrap_expect`), so
 *   with `expect` > 1 no node alone forms a cluster that acknowledges writes by itself;
 * - only when every bonded non-observer member said within `quietMs` that it is fresh (its roll-call):
 *   a member bonded but not heard from yet may be the leader of a cluster formed before, whose hello
 *   has not arrived, or never will if it crashed right after the bond formed;
 * - the smallest id first: `delayMs` after the member set last changed, times one plus the number of
 *   smaller member ids, so its leadership reaches the others before their turn;
 * - a later turn only while every smaller member said within `quietMs` that it is waiting (the
 *   roll-call, `FreshMessage`): held back by members it cannot reach, not merely waiting for its own
 *   turn. The later turns guard against a smaller member that cannot act, never against one that is
 *   silent. Silence may be a partition the bond has not noticed yet, behind which that member formed a
 *   cluster and acknowledges writes;
 * - only once every larger member has heard that it no longer waits: a larger member that still
 *   believes it waits may take its later turn at the very moment this node takes its own. A release
 *   starts a new round of roll-calls, and each roll-call echoes the round it last heard from its
 *   recipient; this node acts only on an echo of its current round, sent by a member still fresh.
 *   Rounds are ordered, so a stale "waiting" delivered late is ignored (the transport may reorder).
 * A node reset after losing a rivalry never bootstraps, and for a while joins only the winner.
 */

import type { ClusterStanding, RollCall } from './types.ts'

export class Formation {
  readonly #expect: number
  readonly #delayMs: number
  /** How long a reset node joins only the winner of the rivalry it lost. */
  readonly #preferMs: number
  /** How recent a smaller member's roll-call must be for a later turn. */
  readonly #quietMs: number
  /** The latest roll-call of each fresh member (its highest round), and when it arrived. */
  readonly #rollCall = new Map<string, RollCall & { at: number }>()
  readonly #random: () => number
  /** Drawn on first use, so that a node of a cluster never draws it (and its random stream stays). */
  #incarnation = 0
  #round = 1
  #held = false
  #heardOfEstablished = false
  #membersChangedAt: number
  #preferred: { clusterId: string; until: number } | undefined

  constructor(options: {
    expect: number
    delayMs: number
    preferMs: number
    quietMs: number
    now: number
    random: () => number
  }) {
    this.#random = options.random
    this.#expect = Math.max(1, options.expect)
    this.#delayMs = options.delayMs
    this.#preferMs = options.preferMs
    this.#quietMs = options.quietMs
    this.#membersChangedAt = options.now
  }

  /** The member set of a fresh node changed: the bootstrap delay starts over. */
  membersChanged(now: number): void {
    this.#membersChangedAt = now
  }

  /** A fresh member's roll-call; one of an earlier round than the latest heard is stale and ignored. */
  heardFresh(from: string, call: RollCall, now: number): void {
    const latest = this.#rollCall.get(from)
    if (latest !== undefined && latest.incarnation === call.incarnation && call.round < latest.round) return
    this.#rollCall.set(from, {
      waiting: call.waiting,
      incarnation: call.incarnation,
      round: call.round,
      heardIncarnation: call.heardIncarnation,
      heardRound: call.heardRound,
      at: now,
    })
  }

  /** This node's roll-call to member `to`. */
  callTo(to: string): RollCall {
    const heard = this.#rollCall.get(to)
    return {
      waiting: this.waiting,
      incarnation: this.#ownIncarnation(),
      round: this.#round,
      heardIncarnation: heard?.incarnation ?? 0,
      heardRound: heard?.round ?? 0,
    }
  }

  /** Forgets the roll-calls of members that left (so churn does not grow memory). */
  forgetAbsent(members: ReadonlyMap<string, unknown>): void {
    for (const id of this.#rollCall.keys()) if (!members.has(id)) this.#rollCall.delete(id)
  }

  /**
   * What this node's roll-call says: it is held back (by members it has not bonded with), so it cannot
   * act, and larger members may take their later turns. Not waiting for its own turn, or for a member
   * to speak: a node that waits only for that may act the moment it hears it, and a larger member
   * taking its turn meanwhile would found a second cluster.
   */
  get waiting(): boolean {
    return this.#held
  }

  #ownIncarnation(): number {
    if (this.#incarnation === 0) this.#incarnation = 1 + Math.floor(this.#random() * 0xffff_fffe)
    return this.#incarnation
  }

  /**
   * Holds bootstrapping back, or releases it; true when a fresh node's delay must start over. A
   * release starts a new round of roll-calls, which the larger members must echo before this node acts.
   */
  hold(hold: boolean): boolean {
    if (hold === this.#held) return false
    this.#held = hold
    if (!hold) this.#round++
    return !hold
  }

  /** An established member of some cluster exists: this node joins, never bootstraps. */
  heardOfEstablished(): void {
    this.#heardOfEstablished = true
  }

  /** Whether a fresh node may join cluster `clusterId` (reached by its leader) now. */
  mayJoin(clusterId: string, now: number): boolean {
    const preferred = this.#preferred
    if (preferred !== undefined) {
      if (now < preferred.until && clusterId !== preferred.clusterId) return false
      this.#preferred = undefined
    }
    this.#heardOfEstablished = true
    return true
  }

  /** The node was reset after losing to `winner`: it never bootstraps, and prefers the winner. */
  reset(winner: ClusterStanding | undefined, now: number): void {
    this.#heardOfEstablished = true
    this.#preferred =
      winner === undefined ? undefined : { clusterId: winner.clusterId, until: now + this.#preferMs }
  }

  /**
   * When a fresh, non-observer node `id` may bootstrap, given its bonded members (`everSawLeader`: it
   * has heard from a leader); undefined for never (until something changes).
   */
  bootstrapAt(
    id: string,
    members: ReadonlyMap<string, { observer: boolean }>,
    everSawLeader: boolean,
    now: number,
  ): number | undefined {
    if (this.#held || this.#heardOfEstablished || everSawLeader) return undefined
    if (this.#preferred !== undefined && now < this.#preferred.until) return undefined
    let rank = 0
    let eligible = 1
    for (const [other, member] of members) {
      if (member.observer) continue
      eligible++
      // Every bonded member must have said lately that it is fresh: one that has not may lead a cluster
      // of its own, its greeting not arrived yet (or lost when it crashed right after the bond formed),
      // and a cluster founded with it as a voter would be a rival history.
      const call = this.#rollCall.get(other)
      if (call === undefined || now - call.at > this.#quietMs) return undefined
      if (other < id) {
        rank++
        if (!call.waiting) return undefined
      } else if (call.heardIncarnation !== this.#ownIncarnation() || call.heardRound !== this.#round) {
        // It may still believe this node waits, and take its later turn at the same moment.
        return undefined
      }
    }
    if (eligible < this.#expect) return undefined
    return this.#membersChangedAt + this.#delayMs * (1 + rank)
  }

  /** The first voters: `id` and the `expect − 1` smallest other fresh non-observer members. */
  initialVoters(id: string, members: ReadonlyMap<string, { observer: boolean }>): string[] {
    const others: string[] = []
    for (const [other, member] of members) if (!member.observer) others.push(other)
    others.sort()
    return [id, ...others.slice(0, this.#expect - 1)]
  }
}
