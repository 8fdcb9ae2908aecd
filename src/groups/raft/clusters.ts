/**
 * Rival clusters. Every cluster has an id carried by every message, so two clusters never mix. An
 * established cluster never splits, but fresh members on both sides of a partition could each
 * bootstrap one (the worker's bootstrap hold and `bootstrapExpect` make that rare); when they meet,
 * members greet each other with `hello` (their cluster's standing) and the cluster with the smaller
 * standing loses. Acknowledged writes are never discarded silently:
 * - only a leader judges (a follower's log may lag its cluster's; a leader holds its cluster's best
 *   standing, and two leaders greeting each other reach the same verdict);
 * - a cluster whose committed log holds commands beats one without;
 * - a losing leader whose committed log holds no command concedes: it and its fellow members reset and
 *   rejoin the winner, losing nothing ('rejoin');
 * - a losing leader whose committed log holds commands halts, keeping its store for the operator, and
 *   tells its fellows, who halt too (or rejoin, if their committed log holds no command) ('halt');
 *   it keeps answering fellows that write to it later with the same word, so none waits forever;
 * - a node believes a `concede` only from a fellow member of its cluster, and only if the winner beats
 *   its own standing; a learner or observer then always rejoins (it holds only copies).
 */

import type { ClusterStanding, ConcedeMessage, HelloMessage, Message, RivalReport } from './types.ts'

/**
 * Orders two cluster standings: a cluster with committed commands beats one without, then the greater
 * (commit, lastTerm, lastIndex) wins, ties by cluster id. Positive when `a` wins. Both sides of a
 * rivalry evaluate it on the same numbers, so they agree.
 */
export function compareStanding(a: ClusterStanding, b: ClusterStanding): number {
  if (a.commands !== b.commands) return a.commands ? 1 : -1
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
  isLeader(): boolean
  /** Whether the node is a voter of its cluster (acknowledged writes always live on voters). */
  isVoter(): boolean
  standing(): ClusterStanding
  /** Its voters and its bonded members: whom to tell when it loses, whose concessions count. */
  fellows(): Iterable<string>
  send(m: Outgoing<HelloMessage> | Outgoing<ConcedeMessage>): void
  /**
   * The node lost to a rival: it must stop taking part at once (nothing more may commit), until reset
   * for 'rejoin', for good for 'halt'.
   */
  stop(outcome: 'rejoin' | 'halt'): void
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
  /** This node lost its cluster to a rival (it awaits `reset`, or halted): it tells its fellows once. */
  #lost = false
  /** The cluster it lost to, to tell fellows that missed the first word. */
  #winner: ClusterStanding | undefined
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

  /**
   * A fellow member wrote to this node after it lost (it halted, keeping its store): the fellow missed
   * the concede, or was away when it was sent, and would otherwise wait for a leader forever. Tell it
   * again (at most once per heartbeat period).
   */
  answerStraggler(m: Message, now: number): void {
    if (!this.#lost || this.#winner === undefined || m.clusterId !== this.#host.clusterId()) return
    if (this.#mayGreet(m.from, now)) this.#host.send({ type: 'concede', to: m.from, winner: this.#winner })
  }

  /** A message of another cluster reached this member of a cluster. */
  onForeign(m: Message, now: number): void {
    if (m.type === 'hello') this.#onForeignHello(m, now)
    else this.sayHello(m.from, now)
  }

  /**
   * A member of this cluster says it lost to `m.winner`. Believed only from a fellow member (a voter or
   * a bonded member) and only if the winner beats this node's own standing; a node whose committed
   * log holds commands then halts rather than reset.
   */
  onConcede(m: ConcedeMessage): void {
    if (this.#lost) return
    const ours = this.#host.standing()
    if (m.winner.clusterId === ours.clusterId || compareStanding(m.winner, ours) <= 0) return
    let fellow = false
    for (const id of this.#host.fellows()) if (id === m.from) fellow = true
    if (!fellow) return
    this.#lose(m.from, ours, m.winner, !this.#host.isVoter())
  }

  /** Greets a peer with this node's standing (at most once per heartbeat period per peer). */
  sayHello(to: string, now: number): void {
    if (this.#host.clusterId() === '' || !this.#mayGreet(to, now)) return
    const { commit, lastTerm, lastIndex, commands } = this.#host.standing()
    this.#host.send({
      type: 'hello',
      to,
      commit,
      lastIndex,
      lastTerm,
      commands,
      leader: this.#host.leader() ?? null,
    })
  }

  /** The node was wiped and starts over as a fresh member; it left `clusterId` for `winner`. */
  reset(clusterId: string, winner: ClusterStanding | undefined): void {
    if (clusterId !== '') this.#abandoned.set(clusterId, winner)
    this.#lost = false
    this.#winner = undefined
    this.#report = undefined
  }

  /** Judges a rival cluster: only a leader does, and only on a rival leader's hello. */
  #onForeignHello(m: HelloMessage, now: number): void {
    if (m.leader !== m.from || !this.#host.isLeader() || this.#lost) {
      this.sayHello(m.from, now)
      return
    }
    const ours = this.#host.standing()
    const theirs: ClusterStanding = {
      clusterId: m.clusterId,
      commit: m.commit,
      lastTerm: m.lastTerm,
      lastIndex: m.lastIndex,
      commands: m.commands,
    }
    if (compareStanding(theirs, ours) > 0) {
      this.#lose(m.from, ours, theirs)
      return
    }
    this.#report ??= { peer: m.from, ours, theirs, outcome: 'keep' }
    this.sayHello(m.from, now)
  }

  /**
   * This node's cluster lost to `winner`: report it (rejoin, or halt when the committed log holds
   * commands) and tell the fellow members once. A learner or observer always rejoins: what it holds
   * is a copy of what the voters hold, and the voters that hold commands halt and keep them.
   */
  #lose(peer: string, ours: ClusterStanding, winner: ClusterStanding, copyOnly = false): void {
    const outcome = ours.commands && !copyOnly ? 'halt' : 'rejoin'
    this.#report = { peer, ours, theirs: winner, outcome }
    this.#lost = true
    this.#winner = winner
    const told = new Set([this.#id, peer])
    for (const to of this.#host.fellows()) {
      if (told.has(to)) continue
      told.add(to)
      this.#host.send({ type: 'concede', to, winner })
    }
    this.#host.stop(outcome)
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
