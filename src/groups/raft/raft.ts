import { type AutopilotChange, nextMembershipChange } from './autopilot.ts'
import { Rivals } from './clusters.ts'
import { CatchUpMismatchError, LeaderNotReadyError, NotLeaderError, RaftContractError } from './errors.ts'
import { Formation } from './formation.ts'
import { RaftLog } from './log.ts'
import { isBounded, MAX_TERM_LEAP, MAX_TERM_OR_INDEX } from './messages.ts'
import { Progress } from './progress.ts'
import { quorumActive, quorumValue, tallyVotes } from './quorum.ts'
import { ReadQueue } from './reads.ts'
import type {
  AppendMessage,
  AppendResponseMessage,
  CatchUpRequest,
  ClusterStanding,
  Entry,
  FreshMessage,
  HardState,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  Member,
  Message,
  Preference,
  ProposeResult,
  RaftInit,
  RaftStatus,
  RaftTiming,
  ReadIndexResult,
  ReadRequestId,
  ReadState,
  Ready,
  Role,
  SnapshotMessage,
  SnapshotMeta,
  SnapshotNeeded,
  VoteAnswer,
  VoteMessage,
  VoteResponseMessage,
} from './types.ts'

/** mosaik's defaults (ConsensusConfig), plus how long a silent voter keeps its seat. */
export const DEFAULT_TIMING: Readonly<RaftTiming> = {
  heartbeatMs: 500,
  electionTimeoutMs: 2000,
  electionJitterMs: 500,
  bootstrapDelayMs: 3000,
  voterUnreachableMs: 15_000,
}

/** What the last Ready told the worker, to report only changes. */
interface Reported {
  hardState: HardState
  role: Role
  term: number
  leader: string | undefined
  online: boolean
  catchingUp: boolean
  halted: boolean
  /** The voter set in force (by identity: a new config entry is a new object). */
  config: object
  membersVersion: number
}

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
 *     // 2. send rd.messages
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

  readonly #timing: RaftTiming
  readonly #random: () => number
  readonly #reluctantFactor: number
  readonly #maxEntriesPerAppend: number
  readonly #maxInflight: number
  readonly #maxVoters: number
  readonly #catchUpThreshold: number

  #now: number
  #log: RaftLog
  #term = 0
  #vote: string | null = null
  #abstained = false
  #clusterId = ''
  /** Lost to a rival cluster while holding committed commands (see `RaftStatus.halted`). */
  #halted = false
  /** Lost to a rival cluster: halted, or awaiting `reset` to rejoin the winner. Takes no part. */
  #stopped = false

  #role: Role = 'follower'
  #leader: string | undefined
  #online = false

  // Elections.
  #electionDeadline = 0
  #everSawLeader = false
  /** When a fresh member next calls the roll (see formation.ts). */
  #rollCallDue = 0
  #lastLeaderContact = Number.NEGATIVE_INFINITY
  /** Offline only because the leader went quiet (see tick): contact alone brings it back online. */
  #offlineForSilence = false
  readonly #votes = new Map<string, VoteAnswer>()

  // Leader state.
  readonly #progress = new Map<string, Progress>()
  /** The index of this leader's first entry; it may serve reads and change membership once committed. */
  #termStart = 0
  #heartbeatDue = 0
  #checkQuorumDue = 0
  #replicationDirty = false
  /** Strong reads waiting for confirmation, and the leader's confirmation round (`reads.seq`). */
  readonly #reads = new ReadQueue()
  readonly #scratch: number[] = []

  // Membership and cluster identity.
  #members = new Map<string, { observer: boolean }>()
  readonly #formation: Formation
  readonly #rivals: Rivals

  // Catching up.
  #snapshotNeeded: SnapshotNeeded | undefined
  #snapshotNeededReported = false
  #catchUp: (CatchUpRequest & { lastProgressAt: number }) | undefined
  #catchUpReported = false
  /** After a catch-up stalled, the leader's back-fill gets a chance before another one starts. */
  #catchUpBackoffUntil = Number.NEGATIVE_INFINITY

  // What the next Ready carries.
  #messages: Message[] = []
  #readStates: ReadState[] = []
  #droppedReads: ReadRequestId[] = []
  #restoredSnapshot: SnapshotMeta | undefined
  #reported: Reported
  #membersVersion = 0
  #readyOutstanding = false

  constructor(init: RaftInit) {
    this.id = init.id
    this.preference = init.preference ?? 'normal'
    this.#timing = { ...DEFAULT_TIMING, ...init.timing }
    this.#random = init.random
    this.#reluctantFactor = init.reluctantFactor ?? 3
    this.#maxEntriesPerAppend = init.maxEntriesPerAppend ?? 256
    this.#maxInflight = init.maxInflightAppends ?? 64
    this.#maxVoters = init.maxVoters ?? 5
    this.#catchUpThreshold = init.catchUpThreshold ?? 1000
    this.#now = init.now ?? 0
    this.#formation = new Formation({
      expect: init.bootstrapExpect ?? 1,
      delayMs: this.#timing.bootstrapDelayMs,
      preferMs: this.#timing.bootstrapDelayMs + 2 * this.#timing.electionTimeoutMs,
      quietMs: this.#timing.electionTimeoutMs,
      now: this.#now,
    })

    this.#log = new RaftLog(init.persisted)
    const hardState = init.persisted?.hardState
    if (hardState !== undefined) {
      // A term older than the log's last entry can only come from a torn write: the vote is void then.
      if (hardState.term >= this.#log.lastTerm()) {
        this.#term = hardState.term
        this.#vote = hardState.vote
        this.#abstained = hardState.vote !== null && hardState.abstained === true
      } else {
        this.#term = this.#log.lastTerm()
      }
    }
    this.#clusterId = this.#log.config().clusterId
    this.#rivals = new Rivals(
      this.id,
      {
        clusterId: () => this.#clusterId,
        leader: () => this.#leader,
        isLeader: () => this.#role === 'leader',
        isVoter: () => this.#log.config().voters.includes(this.id),
        standing: () => this.#standing(),
        fellows: () => [...this.#log.config().voters, ...this.#members.keys()],
        send: (m) => this.#send(m),
        stop: (outcome) => this.#stop(outcome),
      },
      this.#timing.heartbeatMs,
    )
    this.#resetElectionTimer()
    this.#reported = {
      hardState: this.#hardState(),
      role: this.#role,
      term: this.#term,
      leader: undefined,
      online: false,
      catchingUp: false,
      halted: false,
      config: this.#log.config(),
      membersVersion: 0,
    }
  }

  // =================================================================================================
  // Inputs

  /** Advances time: elections, heartbeats, CheckQuorum, bootstrap and the autopilot. */
  tick(now: number): void {
    this.#advanceClock(now)
    if (this.#stopped) return
    if (this.#role === 'leader') {
      this.#tickLeader()
      return
    }
    if (this.#catchUp !== undefined && now - this.#catchUp.lastProgressAt >= this.#catchUpStallMs()) {
      // The worker's parallel pull went quiet: fall back to the leader's back-fill for a while.
      this.#catchUp = undefined
      this.#catchUpBackoffUntil = now + 5 * this.#catchUpStallMs()
    }
    if (this.#isFresh()) {
      const at = this.#bootstrapAt()
      if (at !== undefined && now >= at) this.#bootstrap()
      else if (now >= this.#rollCallDue) this.#callRoll(at === undefined)
      return
    }
    if (now >= this.#electionDeadline) {
      if (this.#canCampaign()) this.#campaign(true)
      else {
        // A member that may not campaign (learner, observer, catching up) must still notice that its
        // leader went quiet: it is offline then, and its writes and strong reads must fail fast.
        if (this.#leader !== undefined && now - this.#lastLeaderContact >= this.#timing.electionTimeoutMs) {
          this.#leader = undefined
          if (this.#online) this.#offlineForSilence = true
          this.#online = false
        }
        this.#resetElectionTimer()
      }
    }
  }

  /** The latest time by which `tick` should be called again. */
  nextTickAt(): number {
    if (this.#stopped) return Number.POSITIVE_INFINITY
    if (this.#role === 'leader') return Math.min(this.#heartbeatDue, this.#checkQuorumDue)
    let at = this.#electionDeadline
    if (this.#isFresh()) {
      at = this.#bootstrapAt() ?? Number.POSITIVE_INFINITY
      if (this.preference !== 'observer') at = Math.min(at, this.#rollCallDue)
    }
    if (this.#catchUp !== undefined) at = Math.min(at, this.#catchUp.lastProgressAt + this.#catchUpStallMs())
    return at
  }

  /** Feeds one message from a peer. */
  step(m: Message, now: number): void {
    this.#advanceClock(now)
    if (m.to !== this.id || m.from === this.id || !this.#plausibleTerm(m)) return
    if (this.#stopped) {
      if (this.#halted) this.#rivals.answerStraggler(m, now)
      return
    }
    if (m.type === 'fresh') {
      this.#onFresh(m)
      return
    }
    if (!this.#admit(m)) return
    if (m.type === 'hello') return
    if (m.type === 'concede') {
      this.#rivals.onConcede(m)
      return
    }
    if (m.type === 'voteResponse' && m.preVote) {
      this.#onPreVoteResponse(m)
      return
    }

    if (m.term > this.#term) {
      if (m.type === 'vote') {
        // A leader (or a follower that heard from one within the minimum election timeout) ignores
        // candidates: a node that was partitioned away cannot depose a healthy leader.
        if (this.#inLease()) return
        if (!m.preVote) this.#becomeFollower(m.term, undefined)
      } else {
        const fromLeader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot'
        this.#becomeFollower(m.term, fromLeader ? m.from : undefined)
      }
    } else if (m.term < this.#term) {
      this.#onStaleTerm(m)
      return
    }

    switch (m.type) {
      case 'vote':
        this.#onVote(m)
        break
      case 'voteResponse':
        this.#onVoteResponse(m)
        break
      case 'append':
        this.#onAppend(m)
        break
      case 'heartbeat':
        this.#onHeartbeat(m)
        break
      case 'snapshot':
        this.#onSnapshot(m)
        break
      case 'appendResponse':
        if (this.#role === 'leader') this.#onAppendResponse(m)
        break
      case 'heartbeatResponse':
        if (this.#role === 'leader') this.#onHeartbeatResponse(m)
        break
    }
  }

  /**
   * Appends commands to the leader's log. They are replicated when the next Ready is taken; the
   * returned range is where they will be if they commit (the worker learns it from committedEntries).
   */
  propose(commands: readonly Uint8Array[], now: number): ProposeResult {
    this.#advanceClock(now)
    if (this.#role !== 'leader') return { ok: false, error: new NotLeaderError(this.#leader) }
    const first = this.#log.lastIndex() + 1
    const entries: Entry[] = new Array(commands.length)
    for (let i = 0; i < commands.length; i++) {
      entries[i] = { index: first + i, term: this.#term, kind: 'command', data: commands[i]! }
    }
    this.#appendAsLeader(entries)
    return { ok: true, first, last: first + commands.length - 1, term: this.#term }
  }

  /**
   * ReadIndex: registers a strong read. Once a majority of voters has confirmed this node is still
   * the leader, a Ready carries `{ requestId, index }`; the read may be served when applied ≥ index.
   * A leader that loses its leadership first reports the read in `droppedReads` instead.
   */
  readIndex(requestId: ReadRequestId, now: number): ReadIndexResult {
    this.#advanceClock(now)
    if (this.#role !== 'leader') return { ok: false, error: new NotLeaderError(this.#leader) }
    if (this.#log.committed < this.#termStart) return { ok: false, error: new LeaderNotReadyError() }
    const index = this.#log.committed
    if (this.#log.config().voters.length === 1) {
      this.#readStates.push({ requestId, index })
      return { ok: true }
    }
    this.#reads.add(requestId, index)
    return { ok: true }
  }

  /**
   * The bonded group members as the worker sees them (this node may be included or not). Used by the
   * leader's autopilot and replication, by a fresh node's bootstrap rule, and to greet newcomers.
   */
  setMembers(members: readonly Member[], now: number): void {
    this.#advanceClock(now)
    const next = new Map<string, { observer: boolean }>()
    for (const member of members) {
      if (member.id !== this.id) next.set(member.id, { observer: member.observer })
    }
    const added: string[] = []
    let changed = next.size !== this.#members.size
    for (const [id, member] of next) {
      const old = this.#members.get(id)
      if (old === undefined) added.push(id)
      if (old?.observer !== member.observer) changed = true
    }
    if (!changed) return
    const previous = this.#members
    this.#members = next
    this.#membersVersion++
    if (this.#isFresh()) this.#formation.membersChanged(now)
    this.#formation.forgetAbsent(next)
    if (this.#stopped) return
    for (const id of added) this.#rivals.sayHello(id, now)
    if (this.#role !== 'leader') return
    for (const id of added) this.#ensureProgress(id)
    const voters = this.#log.config().voters
    for (const id of previous.keys()) {
      if (!next.has(id) && !voters.includes(id)) this.#progress.delete(id)
    }
    this.#replicationDirty = true
  }

  /**
   * While held, a fresh node never bootstraps a cluster. The worker holds it until discovery's initial
   * sync is done and while the catalog shows group members it has not bonded with yet: a member it
   * cannot see yet may belong to an established cluster. On release the bootstrap delay starts over,
   * so greetings of just-bonded members can arrive first.
   */
  setBootstrapHold(hold: boolean, now: number): void {
    this.#advanceClock(now)
    if (this.#formation.hold(hold) && this.#isFresh()) this.#formation.membersChanged(now)
  }

  /**
   * Feeds committed entries pulled from peers during a catch-up (see `Ready.catchUp`), in order. The
   * first entry must continue the local committed log. They are committed on arrival, so only committed
   * entries of this cluster are safe here: a peer must serve them from its store at or below the commit
   * index it has *persisted* (its in-memory commit may be ahead of a write replacing stale entries).
   */
  appendCommitted(entries: readonly Entry[], now: number): void {
    this.#advanceClock(now)
    if (entries.length === 0 || this.#role === 'leader' || this.#stopped) return
    const log = this.#log
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
    if (this.#catchUp !== undefined) {
      this.#catchUp.lastProgressAt = this.#now
      if (log.committed >= this.#catchUp.to) this.#catchUp = undefined
    }
    if (this.#leader !== undefined && this.#role === 'follower') {
      this.#respondAppend(this.#leader, false, lastNew, 0)
    }
  }

  /**
   * The worker installed a state-machine snapshot taken at `meta.index` (committed, from a peer of
   * this cluster). The log is rebased on it; the next Ready carries `snapshot` so the store is reset.
   * Returns false (and does nothing) when the snapshot is not ahead of the local commit index.
   */
  restoreSnapshot(meta: SnapshotMeta, now: number): boolean {
    this.#advanceClock(now)
    if (meta.index <= this.#log.committed || this.#role === 'leader' || this.#stopped) return false
    if (this.#clusterId === '' && meta.clusterId !== undefined) this.#clusterId = meta.clusterId
    this.#log.restore(meta, this.#clusterId)
    this.#restoredSnapshot = { ...meta, config: { voters: [...meta.config.voters] } }
    this.#snapshotNeeded = undefined
    if (this.#catchUp !== undefined && this.#log.committed >= this.#catchUp.to) this.#catchUp = undefined
    if (this.#leader !== undefined) this.#respondAppend(this.#leader, false, meta.index, 0)
    return true
  }

  /**
   * The worker took a state-machine snapshot at applied index `upToIndex`: log entries up to it are
   * dropped. Returns the metadata to store beside the snapshot (term and voter set at that index).
   */
  compact(upToIndex: number): SnapshotMeta {
    return this.#log.compact(upToIndex)
  }

  /** The metadata of a snapshot at `index` (applied, not compacted), e.g. to serve one to a peer. */
  snapshotMeta(index: number): SnapshotMeta {
    return this.#log.snapshotMetaAt(index)
  }

  /**
   * The worker wiped this node's store because a rival cluster won and this node held no committed
   * command (`RivalReport.outcome` 'rejoin'; pass its `theirs`). The node starts over as a fresh member
   * that never bootstraps; for a while it joins only the winner, and it tells members still speaking
   * for its old cluster that it lost. A Ready still outstanding is void (do not persist it). Never call
   * it on a halted node (outcome 'halt'): it stays halted.
   */
  reset(now: number, winner?: ClusterStanding): void {
    this.#advanceClock(now)
    if (this.#role === 'leader') this.#stepDownLeader()
    this.#rivals.reset(this.#clusterId, winner)
    this.#stopped = this.#halted
    this.#log = new RaftLog()
    this.#term = 0
    this.#vote = null
    this.#abstained = false
    this.#clusterId = ''
    this.#role = 'follower'
    this.#leader = undefined
    this.#online = false
    this.#offlineForSilence = false
    this.#everSawLeader = false
    this.#votes.clear()
    this.#formation.reset(winner, now)
    this.#snapshotNeeded = undefined
    this.#catchUp = undefined
    this.#restoredSnapshot = undefined
    this.#messages = []
    this.#readStates = []
    this.#readyOutstanding = false
    this.#reported.hardState = this.#hardState()
    this.#resetElectionTimer()
  }

  // =================================================================================================
  // Outputs

  status(): RaftStatus {
    const config = this.#log.config()
    const learners: string[] = []
    for (const id of this.#members.keys()) if (!config.voters.includes(id)) learners.push(id)
    return {
      id: this.id,
      role: this.#role,
      term: this.#term,
      leader: this.#leader,
      clusterId: this.#clusterId === '' ? undefined : this.#clusterId,
      commitIndex: this.#log.committed,
      appliedIndex: this.#log.applied,
      lastIndex: this.#log.lastIndex(),
      voters: config.voters,
      learners,
      isVoter: config.voters.includes(this.id),
      online: this.#online,
      catchingUp: this.#isCatchingUp(),
      halted: this.#halted,
    }
  }

  /** True when `ready()` has something to do (cheap when idle); false while a Ready is outstanding. */
  /**
   * The messages of a halted node: all it still does is tell fellow members that its cluster lost (see
   * clusters.ts). It persists and applies nothing more, so its driver sends these without a Ready.
   */
  haltedMessages(): Message[] {
    if (!this.#halted) return []
    const out = this.#messages
    this.#messages = []
    return out
  }

  hasReady(): boolean {
    if (this.#readyOutstanding) return false
    this.#flush()
    return (
      this.#messages.length > 0 ||
      this.#log.hasUnpersisted() ||
      this.#log.hasUnapplied() ||
      this.#readStates.length > 0 ||
      this.#droppedReads.length > 0 ||
      this.#restoredSnapshot !== undefined ||
      this.#rivals.report !== undefined ||
      (this.#snapshotNeeded !== undefined && !this.#snapshotNeededReported) ||
      (this.#catchUp !== undefined && !this.#catchUpReported) ||
      this.#hardStateChanged() ||
      this.#statusChanged()
    )
  }

  /** Takes the next batch of work; call `advance(ready)` once it is done. */
  ready(): Ready {
    if (this.#readyOutstanding) {
      throw new RaftContractError('advance() the previous Ready before taking another')
    }
    this.#flush()
    const unpersisted = this.#log.takeUnpersisted()
    const rd: Ready = {
      messages: this.#messages,
      entries: unpersisted.entries,
      committedEntries: this.#log.takeUnapplied(),
      readStates: this.#readStates,
      droppedReads: this.#droppedReads,
    }
    this.#messages = []
    this.#readStates = []
    this.#droppedReads = []
    if (unpersisted.truncateFrom !== undefined) rd.truncateFrom = unpersisted.truncateFrom
    if (this.#restoredSnapshot !== undefined) {
      rd.snapshot = this.#restoredSnapshot
      this.#restoredSnapshot = undefined
    }
    if (this.#hardStateChanged()) {
      rd.hardState = this.#hardState()
      this.#reported.hardState = rd.hardState
    }
    if (this.#snapshotNeeded !== undefined && !this.#snapshotNeededReported) {
      rd.snapshotNeeded = { ...this.#snapshotNeeded }
      this.#snapshotNeededReported = true
    }
    if (this.#catchUp !== undefined && !this.#catchUpReported) {
      const { from, to, leader } = this.#catchUp
      rd.catchUp = { from, to, leader }
      this.#catchUpReported = true
    }
    const rival = this.#rivals.takeReport()
    if (rival !== undefined) rd.rival = rival
    if (this.#statusChanged()) {
      rd.status = this.status()
      const r = this.#reported
      r.role = this.#role
      r.term = this.#term
      r.leader = this.#leader
      r.online = this.#online
      r.catchingUp = this.#isCatchingUp()
      r.halted = this.#halted
      r.config = this.#log.config()
      r.membersVersion = this.#membersVersion
    }
    this.#readyOutstanding = true
    return rd
  }

  /** The worker has done everything `rd` asked (persisted, sent, applied). */
  advance(rd: Ready): void {
    this.#readyOutstanding = false
    const applied = rd.committedEntries[rd.committedEntries.length - 1]
    if (applied !== undefined) this.#log.appliedTo(applied.index)
  }

  // =================================================================================================
  // Roles

  #becomeFollower(term: number, leader: string | undefined): void {
    if (this.#role === 'leader') this.#stepDownLeader()
    if (term !== this.#term) {
      this.#term = term
      this.#vote = null
      this.#abstained = false
    }
    this.#role = 'follower'
    this.#leader = leader
    this.#online = false
    this.#offlineForSilence = false
    this.#votes.clear()
    if (leader !== undefined) this.#heardFromLeader()
    this.#resetElectionTimer()
  }

  /** Pre-Vote first (`preVote`), then the real election at term + 1 once the pre-vote is won. */
  #campaign(preVote: boolean): void {
    this.#votes.clear()
    this.#leader = undefined
    this.#online = false
    this.#offlineForSilence = false
    if (preVote) {
      this.#role = 'precandidate'
    } else {
      this.#role = 'candidate'
      this.#term++
      this.#vote = this.id
      this.#abstained = false
    }
    this.#resetElectionTimer()
    this.#votes.set(this.id, 'grant')
    const term = preVote ? this.#term + 1 : this.#term
    const lastIndex = this.#log.lastIndex()
    const lastTerm = this.#log.lastTerm()
    for (const voter of this.#log.config().voters) {
      if (voter === this.id) continue
      this.#send<VoteMessage>({ type: 'vote', to: voter, term, preVote, lastIndex, lastTerm })
    }
    this.#tallyVotes(preVote)
  }

  /** Counts the answers so far (see `tallyVotes` for the rule and why it is safe). */
  #tallyVotes(preVote: boolean): void {
    const result = tallyVotes(this.#log.config().voters, this.#votes)
    if (result === 'won') {
      if (preVote) this.#campaign(false)
      else this.#becomeLeader()
    } else if (result === 'lost') {
      this.#becomeFollower(this.#term, undefined)
    }
  }

  #becomeLeader(): void {
    this.#role = 'leader'
    this.#leader = this.id
    this.#online = true
    this.#heardFromLeader()
    this.#votes.clear()
    this.#progress.clear()
    const next = this.#log.lastIndex() + 1
    for (const voter of this.#log.config().voters) if (voter !== this.id) this.#ensureProgress(voter)
    for (const id of this.#members.keys()) this.#ensureProgress(id)
    this.#termStart = next
    this.#heartbeatDue = this.#now + this.#timing.heartbeatMs
    this.#checkQuorumDue = this.#now + this.#timing.electionTimeoutMs
    // The no-op lets the leader commit (and so serve reads and change membership) in its own term.
    // A bootstrapping leader's first entry is already of its term.
    if (this.#log.lastTerm() === this.#term) this.#termStart = this.#log.lastIndex()
    else this.#appendAsLeader([{ index: next, term: this.#term, kind: 'noop' }])
    this.#replicationDirty = true
    this.#maybeCommit()
  }

  #stepDownLeader(): void {
    this.#reads.dropAll(this.#droppedReads)
    this.#replicationDirty = false
    this.#progress.clear()
  }

  /**
   * Forms a new cluster and leads its term 1. No election is needed, even with several first voters:
   * the cluster id is new, so no other node can be a candidate of this cluster in term 1 (a candidate
   * of it would first have to join it, at term ≥ 1, and campaign at term ≥ 2). Commits still need a
   * majority of the first voters.
   */
  /**
   * A fresh member's roll-call to the others (see formation.ts): alive, still fresh, and whether it is
   * waiting (it cannot bootstrap now). Observers never bootstrap and never call.
   */
  #callRoll(waiting: boolean): void {
    this.#rollCallDue = this.#now + this.#timing.heartbeatMs
    if (this.preference === 'observer') return
    for (const [to, member] of this.#members) {
      if (!member.observer) this.#send<FreshMessage>({ type: 'fresh', to, waiting })
    }
  }

  /**
   * A fresh member's roll-call. A fresh node notes it for its own turn; a member of a cluster answers
   * with its standing, so the caller learns that an established member exists and waits to join.
   */
  #onFresh(m: FreshMessage): void {
    if (m.clusterId !== '') return
    if (this.#isFresh()) this.#formation.heardFresh(m.from, m.waiting, this.#now)
    else this.#rivals.sayHello(m.from, this.#now)
  }

  #bootstrap(): void {
    this.#term++
    this.#vote = this.id
    this.#abstained = false
    const nonce = Math.floor(this.#random() * 0x1_0000_0000)
      .toString(16)
      .padStart(8, '0')
    this.#clusterId = `${this.id}/${this.#term}/${nonce}`
    this.#log.append([
      {
        index: 1,
        term: this.#term,
        kind: 'config',
        config: { voters: this.#formation.initialVoters(this.id, this.#members) },
        clusterId: this.#clusterId,
      },
    ])
    this.#becomeLeader()
  }

  // =================================================================================================
  // Leader

  #tickLeader(): void {
    const now = this.#now
    if (now >= this.#checkQuorumDue) {
      this.#checkQuorumDue = now + this.#timing.electionTimeoutMs
      if (!this.#quorumActive()) {
        // CheckQuorum: a leader cut off from a majority steps down rather than serve stale state.
        this.#becomeFollower(this.#term, undefined)
        return
      }
    }
    if (now >= this.#heartbeatDue) {
      this.#heartbeatDue = now + this.#timing.heartbeatMs
      for (const [id, pr] of this.#progress) this.#sendHeartbeat(id, pr)
    }
    this.#runAutopilot()
  }

  #quorumActive(): boolean {
    return quorumActive(this.#log.config().voters, (voter) => {
      if (voter === this.id) return true
      const pr = this.#progress.get(voter)
      return pr !== undefined && this.#now - pr.lastResponseAt < this.#timing.electionTimeoutMs
    })
  }

  #runAutopilot(): void {
    const log = this.#log
    if (log.committed < this.#termStart || log.config().index > log.committed) return
    const last = log.lastIndex()
    for (const pr of this.#progress.values()) pr.updateRound(last, this.#now, this.#timing.electionTimeoutMs)
    const change: AutopilotChange | undefined = nextMembershipChange({
      leader: this.id,
      voters: log.config().voters,
      members: this.#members,
      peers: this.#progress,
      now: this.#now,
      maxVoters: this.#maxVoters,
      voterUnreachableMs: this.#timing.voterUnreachableMs,
      responsiveMs: this.#timing.electionTimeoutMs,
    })
    if (change === undefined) return
    const index = log.lastIndex() + 1
    this.#appendAsLeader([
      {
        index,
        term: this.#term,
        kind: 'config',
        config: { voters: change.voters },
        clusterId: this.#clusterId,
      },
    ])
    if (change.kind === 'remove' && !this.#members.has(change.peer)) this.#progress.delete(change.peer)
  }

  #appendAsLeader(entries: Entry[]): void {
    this.#log.append(entries)
    for (const entry of entries) {
      if (entry.kind === 'config') for (const voter of entry.config.voters) this.#ensureProgress(voter)
    }
    this.#replicationDirty = true
    this.#maybeCommit()
  }

  #ensureProgress(id: string): void {
    if (id !== this.id && !this.#progress.has(id)) {
      this.#progress.set(id, new Progress(this.#log.lastIndex() + 1, this.#now))
    }
  }

  /** Commits the highest index of this term that a majority of voters holds. */
  #maybeCommit(): void {
    const voters = this.#log.config().voters
    const matches = this.#scratch
    matches.length = 0
    for (const voter of voters) {
      matches.push(voter === this.id ? this.#log.lastIndex() : (this.#progress.get(voter)?.match ?? 0))
    }
    const index = quorumValue(matches)
    if (index > this.#log.committed && this.#log.term(index) === this.#term) {
      this.#log.commitTo(index)
      this.#replicationDirty = true
    }
  }

  #onAppendResponse(m: AppendResponseMessage): void {
    const pr = this.#progress.get(m.from)
    if (pr === undefined) return
    const now = this.#now
    pr.lastResponseAt = now
    this.#acknowledge(pr, m.seq)
    if (m.reject) {
      if (m.catchingUp) {
        if (pr.state !== 'catchup') pr.becomeCatchUp(now)
        return
      }
      if (pr.state === 'snapshot') return
      if (pr.state === 'catchup') {
        pr.becomeProbe()
        this.#replicationDirty = true
      }
      const hint = m.hintTerm > 0 ? this.#log.findConflictByTerm(m.hintIndex, m.hintTerm) : m.hintIndex
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === 'replicate') pr.becomeProbe()
        this.#replicationDirty = true
      }
      return
    }
    const advanced = pr.maybeUpdate(m.index, now)
    if (m.catchingUp) {
      if (pr.state !== 'catchup') pr.becomeCatchUp(now)
    } else if (
      pr.state === 'catchup' ||
      (pr.state === 'snapshot' && pr.match + 1 >= this.#log.firstIndex())
    ) {
      pr.becomeProbe()
      pr.becomeReplicate(now)
    } else if (pr.state === 'probe' && advanced) {
      pr.becomeReplicate(now)
    }
    if (advanced) {
      pr.updateRound(this.#log.lastIndex(), now, this.#timing.electionTimeoutMs)
      this.#maybeCommit()
    }
    this.#replicationDirty = true
  }

  #onHeartbeatResponse(m: HeartbeatResponseMessage): void {
    const pr = this.#progress.get(m.from)
    if (pr === undefined) return
    const now = this.#now
    pr.lastResponseAt = now
    this.#acknowledge(pr, m.seq)
    switch (pr.state) {
      case 'probe':
        pr.probeSent = false
        break
      case 'replicate':
        // AppendEntries are lost (the follower answers heartbeats but not them): probe again.
        if (pr.inflight > 0 && now - pr.lastProgressAt >= 2 * this.#timing.heartbeatMs) pr.becomeProbe()
        break
      case 'snapshot':
        if (now - pr.snapshotSentAt >= this.#timing.electionTimeoutMs) this.#sendSnapshot(m.from, pr)
        break
      case 'catchup':
        if (now - pr.lastProgressAt >= this.#catchUpStallMs()) pr.becomeProbe()
        break
    }
    this.#replicationDirty = true
  }

  /** Records that `pr` answered round `seq`, and releases the reads a majority has now confirmed. */
  #acknowledge(pr: Progress, seq: number): void {
    if (seq <= pr.ackedSeq) return
    pr.ackedSeq = seq
    if (!this.#reads.waiting) return
    const acked = this.#scratch
    acked.length = 0
    for (const voter of this.#log.config().voters) {
      acked.push(voter === this.id ? this.#reads.seq : (this.#progress.get(voter)?.ackedSeq ?? 0))
    }
    this.#reads.release(quorumValue(acked), this.#readStates)
  }

  /** Sends what each follower is owed: entries, commit advances, read rounds. Called lazily. */
  #flush(): void {
    if (this.#role !== 'leader') return
    if (this.#reads.takeRound()) {
      for (const voter of this.#log.config().voters) {
        const pr = this.#progress.get(voter)
        if (pr !== undefined) this.#sendHeartbeat(voter, pr)
      }
    }
    if (!this.#replicationDirty) return
    this.#replicationDirty = false
    const last = this.#log.lastIndex()
    const commit = this.#log.committed
    for (const [id, pr] of this.#progress) {
      while (!pr.isPaused(this.#maxInflight)) {
        if (pr.next <= last) {
          if (!this.#sendAppend(id, pr)) break
        } else {
          // Nothing new: an empty AppendEntries still tells the follower the commit index (and probes).
          if (pr.sentCommit < commit || (pr.state === 'probe' && pr.match < last)) this.#sendAppend(id, pr)
          break
        }
      }
    }
  }

  /** One AppendEntries from `pr.next`; false if a snapshot message went out instead. */
  #sendAppend(to: string, pr: Progress): boolean {
    const prevIndex = pr.next - 1
    const prevTerm = this.#log.term(prevIndex)
    if (prevTerm === undefined) {
      this.#sendSnapshot(to, pr)
      return false
    }
    const entries = this.#log.slice(pr.next, this.#log.lastIndex(), this.#maxEntriesPerAppend)
    const commit = this.#log.committed
    this.#send<AppendMessage>({
      type: 'append',
      to,
      prevIndex,
      prevTerm,
      entries,
      commit,
      seq: this.#reads.seq,
    })
    pr.sentCommit = commit
    if (entries.length > 0) pr.sent(entries[entries.length - 1]!.index, this.#now)
    else if (pr.state === 'probe') pr.probeSent = true
    return true
  }

  #sendSnapshot(to: string, pr: Progress): void {
    const index = this.#log.snapshotIndex
    this.#send<SnapshotMessage>({ type: 'snapshot', to, index, snapshotTerm: this.#log.snapshotTerm })
    pr.becomeSnapshot(index, this.#now)
  }

  #sendHeartbeat(to: string, pr: Progress): void {
    // Only what the follower is known to hold may be committed by a heartbeat.
    const commit = Math.min(pr.match, this.#log.committed)
    this.#send<HeartbeatMessage>({ type: 'heartbeat', to, commit, seq: this.#reads.seq })
  }

  // =================================================================================================
  // Follower

  /** A message from the leader of the current term. */
  #followLeader(from: string): void {
    if (this.#role !== 'follower') this.#becomeFollower(this.#term, from)
    this.#leader = from
    // Back in touch after a silence (not after an inconsistency): a diverged log would be caught by
    // the next AppendEntries and take this node offline again.
    if (this.#offlineForSilence) {
      this.#offlineForSilence = false
      this.#online = true
    }
    this.#heardFromLeader()
    this.#resetElectionTimer()
  }

  #onAppend(m: AppendMessage): void {
    if (this.#role === 'leader') return // cannot happen: one leader per term
    this.#followLeader(m.from)
    const log = this.#log
    let { prevIndex, prevTerm, entries } = m
    if (prevIndex < log.committed) {
      // A duplicate or late message: the committed prefix matches the leader's log anyway.
      const skip = Math.min(log.committed - prevIndex, entries.length)
      if (skip === entries.length) {
        this.#respondAppend(m.from, false, log.committed, m.seq)
        return
      }
      prevIndex = log.committed
      prevTerm = entries[skip - 1]!.term
      entries = entries.slice(skip)
    }
    const lastNew = log.maybeAppend(prevIndex, prevTerm, entries)
    if (lastNew >= 0) {
      const commit = Math.min(m.commit, lastNew)
      if (commit > log.committed) log.commitTo(commit)
      this.#snapshotNeeded = undefined
      if (this.#catchUp !== undefined && log.committed >= this.#catchUp.to) this.#catchUp = undefined
      this.#online = this.#catchUp === undefined
      this.#respondAppend(m.from, false, lastNew, m.seq)
      return
    }
    this.#online = false
    this.#offlineForSilence = false
    const hintIndex = log.findConflictByTerm(Math.min(m.prevIndex, log.lastIndex()), m.prevTerm)
    const gapEnd = Math.min(m.prevIndex, m.commit)
    if (
      this.#catchUp === undefined &&
      this.#snapshotNeeded === undefined &&
      this.#now >= this.#catchUpBackoffUntil
    ) {
      if (gapEnd - log.committed > this.#catchUpThreshold) {
        this.#catchUp = { from: log.committed + 1, to: gapEnd, leader: m.from, lastProgressAt: this.#now }
        this.#catchUpReported = false
      }
    }
    this.#send<AppendResponseMessage>({
      type: 'appendResponse',
      to: m.from,
      reject: true,
      index: m.prevIndex,
      hintIndex,
      hintTerm: log.term(hintIndex) ?? 0,
      seq: m.seq,
      catchingUp: this.#catchUp !== undefined,
    })
  }

  #onHeartbeat(m: HeartbeatMessage): void {
    if (this.#role === 'leader') return
    this.#followLeader(m.from)
    const log = this.#log
    // The guard only matters for a node that lost acknowledged entries, which the Ready contract forbids.
    if (m.commit > log.committed && m.commit <= log.lastIndex()) log.commitTo(m.commit)
    this.#send<HeartbeatResponseMessage>({ type: 'heartbeatResponse', to: m.from, seq: m.seq })
  }

  #onSnapshot(m: SnapshotMessage): void {
    if (this.#role === 'leader') return
    this.#followLeader(m.from)
    if (m.index <= this.#log.committed) {
      this.#respondAppend(m.from, false, this.#log.committed, 0)
      return
    }
    this.#online = false
    this.#offlineForSilence = false
    const current = this.#snapshotNeeded
    if (current === undefined || current.index !== m.index || current.leader !== m.from) {
      this.#snapshotNeeded = { index: m.index, term: m.snapshotTerm, leader: m.from }
      this.#snapshotNeededReported = false
    }
  }

  #respondAppend(to: string, reject: boolean, index: number, seq: number): void {
    this.#send<AppendResponseMessage>({
      type: 'appendResponse',
      to,
      reject,
      index,
      hintIndex: 0,
      hintTerm: 0,
      seq,
      catchingUp: this.#catchUp !== undefined,
    })
  }

  // =================================================================================================
  // Votes

  #onVote(m: VoteMessage): void {
    // Observers never vote; a node of no cluster has nothing to vote with.
    if (this.preference === 'observer' || this.#clusterId === '') return
    if (m.preVote) {
      // A pre-vote changes nothing here. Support is sent at the term asked about; a denial carries our
      // own term, so a pre-candidate left behind at an older term catches up with it (as in etcd).
      const answer: VoteAnswer = m.term > this.#term ? this.#compareLogs(m) : 'deny'
      const term = answer === 'deny' ? this.#term : m.term
      this.#send<VoteResponseMessage>({ type: 'voteResponse', to: m.from, term, preVote: true, answer })
      return
    }
    let answer: VoteAnswer
    if (this.#vote === m.from) answer = this.#abstained ? 'abstain' : 'grant'
    else if (this.#vote !== null || this.#leader !== undefined) answer = 'deny'
    else {
      answer = this.#compareLogs(m)
      if (answer !== 'deny') {
        // Recorded (and persisted before the answer leaves) whether granted or abstained.
        this.#vote = m.from
        this.#abstained = answer === 'abstain'
        this.#resetElectionTimer()
      }
    }
    this.#send<VoteResponseMessage>({
      type: 'voteResponse',
      to: m.from,
      term: this.#term,
      preVote: false,
      answer,
    })
  }

  /** Grant for equal logs, abstain when ours is behind the candidate's, deny when ours is ahead. */
  #compareLogs(m: VoteMessage): VoteAnswer {
    const order = this.#log.compare(m.lastTerm, m.lastIndex)
    return order === 0 ? 'grant' : order > 0 ? 'abstain' : 'deny'
  }

  #onPreVoteResponse(m: VoteResponseMessage): void {
    if (m.answer === 'deny' ? m.term > this.#term : m.term > this.#term + 1) {
      this.#becomeFollower(m.term, undefined)
      return
    }
    const expectedTerm = m.answer === 'deny' ? this.#term : this.#term + 1
    if (this.#role !== 'precandidate' || m.term !== expectedTerm) return
    if (!this.#log.config().voters.includes(m.from)) return
    this.#votes.set(m.from, m.answer)
    this.#tallyVotes(true)
  }

  #onVoteResponse(m: VoteResponseMessage): void {
    if (this.#role !== 'candidate' || !this.#log.config().voters.includes(m.from)) return
    this.#votes.set(m.from, m.answer)
    this.#tallyVotes(false)
  }

  /** A message from an older term: tell a stale leader or pre-candidate about the newer one. */
  #onStaleTerm(m: Message): void {
    if (m.type === 'append' || m.type === 'heartbeat') {
      this.#respondAppend(m.from, true, 0, 0)
    } else if (m.type === 'vote' && m.preVote && this.preference !== 'observer') {
      this.#send<VoteResponseMessage>({
        type: 'voteResponse',
        to: m.from,
        term: this.#term,
        preVote: true,
        answer: 'deny',
      })
    }
  }

  // =================================================================================================
  // Clusters

  /** False for messages that must not be mixed in: another cluster's, or cluster-less ones. */
  #admit(m: Message): boolean {
    if (m.clusterId === this.#clusterId) return m.type !== 'hello' || this.#clusterId !== ''
    if (m.clusterId === '' || m.type === 'concede') return false
    if (this.#rivals.fromAbandoned(m, this.#now)) return false
    if (this.#clusterId !== '') {
      this.#rivals.onForeign(m, this.#now)
      return false
    }
    // A fresh node: an established member exists; it joins the cluster of the first leader reaching it.
    if (m.type === 'hello') this.#formation.heardOfEstablished()
    if (m.type !== 'append' && m.type !== 'heartbeat' && m.type !== 'snapshot') return false
    if (!this.#formation.mayJoin(m.clusterId, this.#now)) return false
    this.#clusterId = m.clusterId
    return true
  }

  #standing(): ClusterStanding {
    return {
      clusterId: this.#clusterId,
      commit: this.#log.committed,
      lastTerm: this.#log.lastTerm(),
      lastIndex: this.#log.lastIndex(),
      commands: this.#log.hasCommittedCommand(),
    }
  }

  /**
   * Lost to a rival: stop taking part (nothing more commits here), until `reset` for 'rejoin', for
   * good for 'halt'.
   */
  #stop(outcome: 'rejoin' | 'halt'): void {
    if (this.#role === 'leader') this.#stepDownLeader()
    this.#stopped = true
    if (outcome === 'halt') this.#halted = true
    this.#role = 'follower'
    this.#leader = undefined
    this.#online = false
    this.#offlineForSilence = false
    this.#votes.clear()
    this.#snapshotNeeded = undefined
    this.#catchUp = undefined
  }

  #isFresh(): boolean {
    return this.#clusterId === '' && this.#log.lastIndex() === 0
  }

  /** When this fresh node may bootstrap (see formation.ts); observers never do. */
  #bootstrapAt(): number | undefined {
    if (this.preference === 'observer') return undefined
    return this.#formation.bootstrapAt(this.id, this.#members, this.#everSawLeader, this.#now)
  }

  // =================================================================================================
  // Helpers

  #send<M extends Message>(
    fields: Omit<M, 'from' | 'term' | 'clusterId'> & { term?: number; clusterId?: string },
  ): void {
    this.#messages.push({
      from: this.id,
      term: this.#term,
      clusterId: this.#clusterId,
      ...fields,
    } as unknown as M)
  }

  #advanceClock(now: number): void {
    if (now > this.#now) this.#now = now
  }

  /**
   * A term the node may believe: bounded, and for a member of its own cluster not implausibly far
   * ahead of its own (a fresh node at term 0 accepts any bounded term).
   */
  #plausibleTerm(m: Message): boolean {
    if (!isBounded(m.term)) return false
    if (this.#term === 0 || m.clusterId !== this.#clusterId) return true
    return m.term - this.#term <= MAX_TERM_LEAP
  }

  #inLease(): boolean {
    if (this.#role === 'leader') return true
    return this.#leader !== undefined && this.#now - this.#lastLeaderContact < this.#timing.electionTimeoutMs
  }

  #heardFromLeader(): void {
    this.#everSawLeader = true
    this.#lastLeaderContact = this.#now
  }

  #canCampaign(): boolean {
    return (
      this.preference !== 'observer' &&
      this.#term + 1 < MAX_TERM_OR_INDEX &&
      this.#clusterId !== '' &&
      !this.#isCatchingUp() &&
      this.#log.config().voters.includes(this.id)
    )
  }

  #isCatchingUp(): boolean {
    return this.#snapshotNeeded !== undefined || this.#catchUp !== undefined
  }

  #catchUpStallMs(): number {
    return 2 * this.#timing.electionTimeoutMs
  }

  #resetElectionTimer(): void {
    const { electionTimeoutMs, electionJitterMs, bootstrapDelayMs } = this.#timing
    let timeout = electionTimeoutMs + this.#random() * electionJitterMs
    if (this.preference === 'reluctant') timeout *= this.#reluctantFactor
    if (!this.#everSawLeader) timeout += bootstrapDelayMs
    this.#electionDeadline = this.#now + timeout
  }

  #hardState(): HardState {
    return { term: this.#term, vote: this.#vote, abstained: this.#abstained, commit: this.#log.committed }
  }

  #hardStateChanged(): boolean {
    const hs = this.#reported.hardState
    return (
      hs.term !== this.#term ||
      hs.vote !== this.#vote ||
      hs.abstained !== this.#abstained ||
      hs.commit !== this.#log.committed
    )
  }

  #statusChanged(): boolean {
    const r = this.#reported
    return (
      r.role !== this.#role ||
      r.term !== this.#term ||
      r.leader !== this.#leader ||
      r.online !== this.#online ||
      r.catchingUp !== this.#isCatchingUp() ||
      r.halted !== this.#halted ||
      r.config !== this.#log.config() ||
      r.membersVersion !== this.#membersVersion
    )
  }
}
