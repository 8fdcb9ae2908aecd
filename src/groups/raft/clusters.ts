/**
 * Rival clusters. Every cluster has an id carried by every message, so two clusters never mix. An
 * established cluster never splits, but fresh members on both sides of a partition can each bootstrap
 * one; when they meet, members greet each other with `hello` (their cluster's standing) and the
 * cluster with the smaller standing loses.
 */

import type { ClusterStanding, ConcedeMessage, HelloMessage, Message, RivalReport } from './types.ts'

/**
 * Orders two cluster standings: the greater (commit, lastTerm, lastIndex) wins, ties by cluster id.
 * Positive when `a` wins. Both sides of a rivalry evaluate it on the same numbers, so they agree.
 */
export function compareStanding(a: ClusterStanding, b: ClusterStanding): number {
  if (a.commit !== b.commit) return a.commit - b.commit
  if (a.lastTerm !== b.lastTerm) return a.lastTerm - b.lastTerm
  if (a.lastIndex !== b.lastIndex) return a.lastIndex - b.lastIndex
  return a.clusterId < b.clusterId ? -1 : a.clusterId > b.clusterId ? 1 : 0
}

type Outgoing<M extends Message> = Omit<M, 'from' | 'term' | 'clusterId'> & { clusterId?: string }

/** What the rivalry logic needs to know of the node it serves. */
export interface RivalsHost {
  /** The node's cluster ('' while fresh). */
  clusterId(): string
  /** The leader the node follows (itself when it leads). */
  leader(): string | undefined
  /** The node may judge a rival for its whole cluster. */
  judgesRivals(): boolean
  standing(): ClusterStanding
  /** Everyone to tell when the node concedes: its voters and its bonded members. */
  fellows(): Iterable<string>
  send(m: Outgoing<HelloMessage> | Outgoing<ConcedeMessage>): void
}

/**
 * The rivalry state of one node: clusters it left (to tell stragglers), whether it conceded, the
 * report for the worker, and a limit on greetings so that rivals do not echo forever.
 */
export class Rivals {
  readonly #id: string
  readonly #host: RivalsHost
  readonly #heartbeatMs: number
  /** Clusters this node left because they lost a rivalry, with their winner, to tell stragglers. */
  readonly #abandoned = new Map<string, ClusterStanding | undefined>()
  /** This node conceded its cluster to a rival (it awaits `reset`). */
  #conceded = false
  readonly #helloSentAt = new Map<string, number>()
  #report: RivalReport | undefined

  constructor(id: string, host: RivalsHost, heartbeatMs: number) {
    this.#id = id
    this.#host = host
    this.#heartbeatMs = heartbeatMs
  }

  /** A report for the next Ready, if any. */
  get report(): RivalReport | undefined {
    return this.#report
  }

  takeReport(): RivalReport | undefined {
    const report = this.#report
    this.#report = undefined
    return report
  }

  /**
   * A message of a cluster this node left: tells the straggler that its cluster lost. True when the
   * message was of such a cluster (it is not to be used).
   */
  fromAbandoned(m: Message, now: number): boolean {
    if (!this.#abandoned.has(m.clusterId)) return false
    const winner = this.#abandoned.get(m.clusterId)
    if (winner !== undefined && this.#mayGreet(m.from, now)) {
      this.#host.send({ type: 'concede', to: m.from, clusterId: m.clusterId, winner })
    }
    return true
  }

  /** A message of another cluster reached this member of a cluster. */
  onForeign(m: Message, now: number): void {
    if (m.type === 'hello') this.#onForeignHello(m, now)
    else this.sayHello(m.from, now)
  }

  /** A fellow member says the cluster lost to `m.winner`. */
  onConcede(m: ConcedeMessage): void {
    this.#concede(m.from, m.winner)
  }

  /** Greets a peer with this node's standing (at most once per heartbeat period per peer). */
  sayHello(to: string, now: number): void {
    if (this.#host.clusterId() === '' || !this.#mayGreet(to, now)) return
    const { commit, lastTerm, lastIndex } = this.#host.standing()
    this.#host.send({
      type: 'hello',
      to,
      commit,
      lastIndex,
      lastTerm,
      leader: this.#host.leader() ?? null,
    })
  }

  /** The node was wiped and starts over as a fresh member; it left `clusterId` for `winner`. */
  reset(clusterId: string, winner: ClusterStanding | undefined): void {
    if (clusterId !== '') this.#abandoned.set(clusterId, winner)
    this.#conceded = false
    this.#report = undefined
  }

  /**
   * Judges a rival cluster. Only a rival leader's hello counts, and a node judges only when it speaks
   * for its cluster (see `RivalsHost.judgesRivals`).
   */
  #onForeignHello(m: HelloMessage, now: number): void {
    if (m.leader !== m.from || !this.#host.judgesRivals()) {
      this.sayHello(m.from, now)
      return
    }
    const ours = this.#host.standing()
    const theirs: ClusterStanding = {
      clusterId: m.clusterId,
      commit: m.commit,
      lastTerm: m.lastTerm,
      lastIndex: m.lastIndex,
    }
    if (compareStanding(theirs, ours) > 0) {
      this.#concede(m.from, theirs)
      return
    }
    this.#report ??= { peer: m.from, ours, theirs, theirsWins: false }
    this.sayHello(m.from, now)
  }

  /** This node's cluster lost to `winner`: tell the fellow members (once) and report it for a reset. */
  #concede(peer: string, winner: ClusterStanding): void {
    this.#report = { peer, ours: this.#host.standing(), theirs: winner, theirsWins: true }
    if (this.#conceded) return
    this.#conceded = true
    const told = new Set([this.#id, peer])
    for (const to of this.#host.fellows()) {
      if (told.has(to)) continue
      told.add(to)
      this.#host.send({ type: 'concede', to, winner })
    }
  }

  /** At most one hello (or concede) per peer per heartbeat period, so rivals do not echo forever. */
  #mayGreet(to: string, now: number): boolean {
    const last = this.#helloSentAt.get(to)
    if (last !== undefined && now - last < this.#heartbeatMs) return false
    if (this.#helloSentAt.size > 1024) this.#helloSentAt.clear()
    this.#helloSentAt.set(to, now)
    return true
  }
}
