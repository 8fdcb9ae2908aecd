import {
  becomeFollower,
  campaign,
  onPreVoteResponse,
  onStaleTerm,
  onVote,
  onVoteResponse,
  stepDownLeader,
} from './elections.ts'
import { CatchUpMismatchError, LeaderNotReadyError, NotLeaderError, RaftContractError } from './errors.ts'
import { onAppend, onHeartbeat, onSnapshot, respondAppend } from './follower.ts'
import {
  appendAsLeader,
  ensureProgress,
  onAppendResponse,
  onHeartbeatResponse,
  tickLeader,
} from './leader.ts'
import { RaftLog } from './log.ts'
import { admit, bootstrap, bootstrapAt, callRoll, onFresh } from './membership.ts'
import { advance, haltedMessages, hasReady, status, takeReady } from './ready.ts'
import { NodeState } from './state.ts'
import type {
  ClusterStanding,
  Entry,
  Member,
  Message,
  Preference,
  ProposeResult,
  RaftInit,
  RaftStatus,
  ReadIndexResult,
  ReadRequestId,
  Ready,
  SnapshotMeta,
} from './types.ts'

export { DEFAULT_TIMING } from './state.ts'

/**
 * An IO-less Raft node, shaped after etcd raft / raft-rs, with mosaik's self-organization made safe
 * (see "Consensus" in DESIGN.md). It never touches a clock, a timer, a socket or a disk: the group
 * worker feeds it time (`tick`), messages (`step`) and requests (`propose`, `readIndex`, `setMembers`),
 * and executes what `ready()` returns, then calls `advance()`:
 *
 *   while (node.hasReady()) {
 *     const rd = node.ready()
 *     // 1. if rd.snapshot: reset the store to it; drop entries ≥ rd.truncateFrom;
 *     //    persist rd.entries and rd.hardState (durably)
 *     // 2. send rd.messages (when rd.sendBeforePersist, already before or while doing 1)
 *     // 3. apply rd.committedEntries (commands only); serve rd.readStates once applied ≥ index
 *     // 4. act on rd.snapshotNeeded / rd.catchUp / rd.rival / rd.status
 *     node.advance(rd)
 *   }
 *
 * `step`, `tick`, `propose`, ... may be called while a Ready is being executed; their output goes to
 * the next Ready. Only one Ready may be outstanding.
 *
 * Safety rules kept from Raft, all of them: the voter set lives in the log and quorum is a majority of
 * it; the election restriction; a vote (or abstention) is persisted before it is sent and binds for the
 * whole term; a leader commits only entries of its own term by counting (earlier ones commit with
 * them); single-server membership changes, one at a time, after the leader committed in its term.
 * Liveness aids from etcd: Pre-Vote, CheckQuorum and the leader lease on votes.
 *
 * Clusters. A fresh node (empty log) bootstraps a cluster of its own only when the worker does not
 * hold it back (`setBootstrapHold`), it has heard of no leader and of no member with a non-empty log,
 * and it sees `bootstrapExpect` fresh members, which become the first voters; among fresh members
 * only the smallest id does. Every cluster has an id carried by every message, so two clusters never
 * mix. An established cluster never splits: its members never bootstrap again. Should two clusters
 * meet anyway, their leaders judge (clusters.ts): a loser without committed commands rejoins the
 * winner, one with committed commands halts and keeps its log; acknowledged writes are never
 * discarded silently.
 */
export class RaftNode {
  readonly id: string
  readonly preference: Preference

  /** Everything else; the parts of the core are functions of it (see state.ts). */
  readonly #s: NodeState

  constructor(init: RaftInit) {
    this.#s = new NodeState(init)
    this.id = this.#s.id
    this.preference = this.#s.preference
  }

  // =================================================================================================
  // Inputs

  /** Advances time: elections, heartbeats, CheckQuorum, bootstrap and the autopilot. */
  tick(now: number): void {
    const s = this.#s
    s.advanceClock(now)
    if (s.stopped) return
    if (s.role === 'leader') {
      tickLeader(s)
      return
    }
    if (s.catchUp !== undefined && now - s.catchUp.lastProgressAt >= s.catchUpStallMs()) {
      // The worker's parallel pull went quiet: fall back to the leader's back-fill for a while.
      s.catchUp = undefined
      s.catchUpBackoffUntil = now + 5 * s.catchUpStallMs()
    }
    if (s.isFresh()) {
      const at = bootstrapAt(s)
      if (at !== undefined && now >= at) bootstrap(s)
      else if (now >= s.rollCallDue) callRoll(s)
      return
    }
    if (now >= s.electionDeadline) {
      if (s.canCampaign()) campaign(s, true)
      else {
        // A member that may not campaign (learner, observer, catching up) must still notice that its
        // leader went quiet: it is offline then, and its writes and strong reads must fail fast.
        if (s.leader !== undefined && now - s.lastLeaderContact >= s.timing.electionTimeoutMs) {
          s.leader = undefined
          if (s.online) s.offlineForSilence = true
          s.online = false
        }
        s.resetElectionTimer()
      }
    }
  }

  /** The latest time by which `tick` should be called again. */
  nextTickAt(): number {
    const s = this.#s
    if (s.stopped) return Number.POSITIVE_INFINITY
    if (s.role === 'leader') return Math.min(s.heartbeatDue, s.checkQuorumDue)
    let at = s.electionDeadline
    if (s.isFresh()) {
      at = bootstrapAt(s) ?? Number.POSITIVE_INFINITY
      if (s.preference !== 'observer') at = Math.min(at, s.rollCallDue)
    }
    if (s.catchUp !== undefined) at = Math.min(at, s.catchUp.lastProgressAt + s.catchUpStallMs())
    return at
  }

  /** Feeds one message from a peer. */
  step(m: Message, now: number): void {
    const s = this.#s
    s.advanceClock(now)
    if (m.to !== s.id || m.from === s.id || !s.plausibleTerm(m)) return
    if (s.stopped) {
      if (s.halted) s.rivals.answerStraggler(m, now)
      return
    }
    if (m.type === 'fresh') {
      onFresh(s, m)
      return
    }
    if (!admit(s, m)) return
    if (m.type === 'hello') return
    if (m.type === 'concede') {
      s.rivals.onConcede(m)
      return
    }
    if (m.type === 'voteResponse' && m.preVote) {
      onPreVoteResponse(s, m)
      return
    }

    if (m.term > s.term) {
      if (m.type === 'vote') {
        // A leader (or a follower that heard from one within the minimum election timeout) ignores
        // candidates: a node that was partitioned away cannot depose a healthy leader.
        if (s.inLease()) return
        if (!m.preVote) becomeFollower(s, m.term, undefined)
      } else {
        const fromLeader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot'
        becomeFollower(s, m.term, fromLeader ? m.from : undefined)
      }
    } else if (m.term < s.term) {
      onStaleTerm(s, m)
      return
    }

    switch (m.type) {
      case 'vote':
        onVote(s, m)
        break
      case 'voteResponse':
        onVoteResponse(s, m)
        break
      case 'append':
        onAppend(s, m)
        break
      case 'heartbeat':
        onHeartbeat(s, m)
        break
      case 'snapshot':
        onSnapshot(s, m)
        break
      case 'appendResponse':
        if (s.role === 'leader') onAppendResponse(s, m)
        break
      case 'heartbeatResponse':
        if (s.role === 'leader') onHeartbeatResponse(s, m)
        break
    }
  }

  /**
   * Appends commands to the leader's log. They are replicated when the next Ready is taken; the
   * returned range is where they will be if they commit (the worker learns it from committedEntries).
   */
  propose(commands: readonly Uint8Array[], now: number): ProposeResult {
    const s = this.#s
    s.advanceClock(now)
    if (s.role !== 'leader') return { ok: false, error: new NotLeaderError(s.leader) }
    const first = s.log.lastIndex() + 1
    const entries: Entry[] = new Array(commands.length)
    for (let i = 0; i < commands.length; i++) {
      entries[i] = { index: first + i, term: s.term, kind: 'command', data: commands[i]! }
    }
    appendAsLeader(s, entries)
    return { ok: true, first, last: first + commands.length - 1, term: s.term }
  }

  /**
   * ReadIndex: registers a strong read. Once a majority of voters has confirmed this node is still
   * the leader, a Ready carries `{ requestId, index }`; the read may be served when applied ≥ index.
   * A leader that loses its leadership first reports the read in `droppedReads` instead.
   */
  readIndex(requestId: ReadRequestId, now: number): ReadIndexResult {
    const s = this.#s
    s.advanceClock(now)
    if (s.role !== 'leader') return { ok: false, error: new NotLeaderError(s.leader) }
    if (s.log.committed < s.termStart) return { ok: false, error: new LeaderNotReadyError() }
    const index = s.log.committed
    if (s.log.config().voters.length === 1) {
      s.readStates.push({ requestId, index })
      return { ok: true }
    }
    s.reads.add(requestId, index)
    return { ok: true }
  }

  /**
   * The bonded group members as the worker sees them (this node may be included or not). Used by the
   * leader's autopilot and replication, by a fresh node's bootstrap rule, and to greet newcomers.
   */
  setMembers(members: readonly Member[], now: number): void {
    const s = this.#s
    s.advanceClock(now)
    const next = new Map<string, { observer: boolean }>()
    for (const member of members) {
      if (member.id !== s.id) next.set(member.id, { observer: member.observer })
    }
    const added: string[] = []
    let changed = next.size !== s.members.size
    for (const [id, member] of next) {
      const old = s.members.get(id)
      if (old === undefined) added.push(id)
      if (old?.observer !== member.observer) changed = true
    }
    if (!changed) return
    const previous = s.members
    s.members = next
    s.membersVersion++
    if (s.isFresh()) s.formation.membersChanged(now)
    s.formation.forgetAbsent(next)
    if (s.stopped) return
    for (const id of added) s.rivals.sayHello(id, now)
    if (s.role !== 'leader') return
    for (const id of added) ensureProgress(s, id)
    const voters = s.log.config().voters
    for (const id of previous.keys()) {
      if (!next.has(id) && !voters.includes(id)) s.progress.delete(id)
    }
    s.replicationDirty = true
  }

  /**
   * While held, a fresh node never bootstraps a cluster. The worker holds it until discovery's initial
   * sync is done and while the catalog shows group members it has not bonded with yet: a member it
   * cannot see yet may belong to an established cluster. On release the bootstrap delay starts over,
   * so greetings of just-bonded members can arrive first.
   */
  setBootstrapHold(hold: boolean, now: number): void {
    const s = this.#s
    s.advanceClock(now)
    if (s.formation.hold(hold) && s.isFresh()) s.formation.membersChanged(now)
  }

  /**
   * Feeds committed entries pulled from peers during a catch-up (see `Ready.catchUp`), in order. The
   * first entry must continue the local committed log. They are committed on arrival, so only committed
   * entries of this cluster are safe here: a peer must serve them from its store at or below the commit
   * index it has *persisted* (its in-memory commit may be ahead of a write replacing stale entries).
   */
  appendCommitted(entries: readonly Entry[], now: number): void {
    const s = this.#s
    s.advanceClock(now)
    if (entries.length === 0 || s.role === 'leader' || s.stopped) return
    const log = s.log
    if (entries[0]!.index > log.committed + 1) {
      throw new RaftContractError(
        `committed entries from ${entries[0]!.index} leave a gap after ${log.committed}`,
      )
    }
    let k = 0
    for (; k < entries.length && entries[k]!.index <= log.committed; k++) {
      const entry = entries[k]!
      const ours = log.term(entry.index)
      if (ours !== undefined && ours !== entry.term) {
        throw new CatchUpMismatchError(entry.index, `entry ${entry.index} contradicts the committed log`)
      }
    }
    if (k === entries.length) return
    const prevIndex = log.committed
    const lastNew = log.maybeAppend(prevIndex, log.term(prevIndex)!, entries.slice(k))
    log.commitTo(lastNew)
    if (s.catchUp !== undefined) {
      s.catchUp.lastProgressAt = s.now
      if (log.committed >= s.catchUp.to) s.catchUp = undefined
    }
    if (s.leader !== undefined && s.role === 'follower') {
      respondAppend(s, s.leader, false, lastNew, 0)
    }
  }

  /**
   * The worker installed a state-machine snapshot taken at `meta.index` (committed, from a peer of
   * this cluster). The log is rebased on it; the next Ready carries `snapshot` so the store is reset.
   * Returns false (and does nothing) when the snapshot is not ahead of the local commit index.
   */
  restoreSnapshot(meta: SnapshotMeta, now: number): boolean {
    const s = this.#s
    s.advanceClock(now)
    if (meta.index <= s.log.committed || s.role === 'leader' || s.stopped) return false
    if (s.clusterId === '' && meta.clusterId !== undefined) s.clusterId = meta.clusterId
    s.log.restore(meta, s.clusterId)
    s.restoredSnapshot = { ...meta, config: { voters: [...meta.config.voters] } }
    s.snapshotNeeded = undefined
    if (s.catchUp !== undefined && s.log.committed >= s.catchUp.to) s.catchUp = undefined
    if (s.leader !== undefined) respondAppend(s, s.leader, false, meta.index, 0)
    return true
  }

  /**
   * The worker took a state-machine snapshot at applied index `upToIndex`: log entries up to it are
   * dropped. Returns the metadata to store beside the snapshot (term and voter set at that index).
   */
  compact(upToIndex: number): SnapshotMeta {
    const s = this.#s
    return s.log.compact(upToIndex)
  }

  /** The metadata of a snapshot at `index` (applied, not compacted), e.g. to serve one to a peer. */
  snapshotMeta(index: number): SnapshotMeta {
    const s = this.#s
    return s.log.snapshotMetaAt(index)
  }

  /**
   * The worker wiped this node's store because a rival cluster won and this node held no committed
   * command (`RivalReport.outcome` 'rejoin'; pass its `theirs`). The node starts over as a fresh member
   * that never bootstraps; for a while it joins only the winner, and it tells members still speaking
   * for its old cluster that it lost. A Ready still outstanding is void (do not persist it). Never call
   * it on a halted node (outcome 'halt'): it stays halted.
   */
  reset(now: number, winner?: ClusterStanding): void {
    const s = this.#s
    s.advanceClock(now)
    if (s.role === 'leader') stepDownLeader(s)
    s.rivals.reset(s.clusterId, winner)
    s.stopped = s.halted
    s.log = new RaftLog()
    s.term = 0
    s.vote = null
    s.abstained = false
    s.clusterId = ''
    s.role = 'follower'
    s.leader = undefined
    s.online = false
    s.offlineForSilence = false
    s.everSawLeader = false
    s.votes.clear()
    s.formation.reset(winner, now)
    s.snapshotNeeded = undefined
    s.catchUp = undefined
    s.restoredSnapshot = undefined
    s.messages = []
    s.readStates = []
    s.readyOutstanding = false
    s.reported.hardState = s.hardState()
    s.resetElectionTimer()
  }

  // =================================================================================================
  // Outputs

  status(): RaftStatus {
    return status(this.#s)
  }

  /**
   * The messages of a halted node: all it still does is tell fellow members that its cluster lost (see
   * clusters.ts). It persists and applies nothing more, so its driver sends these without a Ready.
   */
  haltedMessages(): Message[] {
    return haltedMessages(this.#s)
  }

  /** True when `ready()` has something to do (cheap when idle); false while a Ready is outstanding. */
  hasReady(): boolean {
    return hasReady(this.#s)
  }

  /** Takes the next batch of work; call `advance(ready)` once it is done. */
  ready(): Ready {
    return takeReady(this.#s)
  }

  /** The worker has done everything `rd` asked (persisted, sent, applied). */
  advance(rd: Ready): void {
    advance(this.#s, rd)
  }
}
