import { Rivals } from './clusters.ts'
import { Formation } from './formation.ts'
import { RaftLog } from './log.ts'
import { standing, stop } from './membership.ts'
import { isBounded, MAX_TERM_LEAP, MAX_TERM_OR_INDEX } from './messages.ts'
import type { Progress } from './progress.ts'
import { ReadQueue } from './reads.ts'
import type {
  CatchUpRequest,
  HardState,
  Message,
  Preference,
  RaftInit,
  RaftTiming,
  ReadRequestId,
  ReadState,
  Role,
  SnapshotMeta,
  SnapshotNeeded,
  VoteAnswer,
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

/** The command bytes an AppendEntries carries beyond its first entry, unless told otherwise. */
export const DEFAULT_MAX_APPEND_BYTES = 1024 * 1024

/**
 * The state of a `RaftNode`, shared by the parts of the core (elections.ts, leader.ts, follower.ts,
 * membership.ts, ready.ts), which are plain functions of it. Internal: only `RaftNode` is public.
 */
export class NodeState {
  readonly id: string
  readonly preference: Preference

  readonly timing: RaftTiming
  readonly random: () => number
  readonly reluctantFactor: number
  readonly maxEntriesPerAppend: number
  readonly maxAppendBytes: number
  readonly maxInflight: number
  readonly maxVoters: number
  readonly catchUpThreshold: number

  now: number
  log: RaftLog
  term = 0
  vote: string | null = null
  abstained = false
  clusterId = ''
  /** Lost to a rival cluster while holding committed commands (see `RaftStatus.halted`). */
  halted = false
  /** Lost to a rival cluster: halted, or awaiting `reset` to rejoin the winner. Takes no part. */
  stopped = false

  role: Role = 'follower'
  leader: string | undefined
  online = false

  // Elections.
  electionDeadline = 0
  everSawLeader = false
  /** When a fresh member next calls the roll (see formation.ts). */
  rollCallDue = 0
  lastLeaderContact = Number.NEGATIVE_INFINITY
  /** Offline only because the leader went quiet (see tick): contact alone brings it back online. */
  offlineForSilence = false
  readonly votes = new Map<string, VoteAnswer>()

  // Leader state.
  readonly progress = new Map<string, Progress>()
  /** The index of this leader's first entry; it may serve reads and change membership once committed. */
  termStart = 0
  heartbeatDue = 0
  checkQuorumDue = 0
  replicationDirty = false
  /** Strong reads waiting for confirmation, and the leader's confirmation round (`reads.seq`). */
  readonly reads = new ReadQueue()
  readonly scratch: number[] = []

  // Membership and cluster identity.
  members = new Map<string, { observer: boolean }>()
  readonly formation: Formation
  readonly rivals: Rivals

  // Catching up.
  snapshotNeeded: SnapshotNeeded | undefined
  snapshotNeededReported = false
  catchUp: (CatchUpRequest & { lastProgressAt: number }) | undefined
  catchUpReported = false
  /** After a catch-up stalled, the leader's back-fill gets a chance before another one starts. */
  catchUpBackoffUntil = Number.NEGATIVE_INFINITY

  // What the next Ready carries.
  messages: Message[] = []
  readStates: ReadState[] = []
  droppedReads: ReadRequestId[] = []
  restoredSnapshot: SnapshotMeta | undefined
  reported: Reported
  membersVersion = 0
  readyOutstanding = false

  constructor(init: RaftInit) {
    this.id = init.id
    this.preference = init.preference ?? 'normal'
    this.timing = { ...DEFAULT_TIMING, ...init.timing }
    this.random = init.random
    this.reluctantFactor = init.reluctantFactor ?? 3
    this.maxEntriesPerAppend = init.maxEntriesPerAppend ?? 256
    this.maxAppendBytes = init.maxAppendBytes ?? DEFAULT_MAX_APPEND_BYTES
    this.maxInflight = init.maxInflightAppends ?? 64
    this.maxVoters = init.maxVoters ?? 5
    this.catchUpThreshold = init.catchUpThreshold ?? 1000
    this.now = init.now ?? 0
    this.formation = new Formation({
      expect: init.bootstrapExpect ?? 1,
      delayMs: this.timing.bootstrapDelayMs,
      preferMs: this.timing.bootstrapDelayMs + 2 * this.timing.electionTimeoutMs,
      quietMs: this.timing.electionTimeoutMs,
      now: this.now,
      random: this.random,
    })

    this.log = new RaftLog(init.persisted)
    const hardState = init.persisted?.hardState
    if (hardState !== undefined) {
      // A term older than the log's last entry can only come from a torn write: the vote is void then.
      if (hardState.term >= this.log.lastTerm()) {
        this.term = hardState.term
        this.vote = hardState.vote
        this.abstained = hardState.vote !== null && hardState.abstained === true
      } else {
        this.term = this.log.lastTerm()
      }
    }
    this.clusterId = this.log.config().clusterId
    this.rivals = new Rivals(
      this.id,
      {
        clusterId: () => this.clusterId,
        leader: () => this.leader,
        isLeader: () => this.role === 'leader',
        isVoter: () => this.log.config().voters.includes(this.id),
        standing: () => standing(this),
        fellows: () => [...this.log.config().voters, ...this.members.keys()],
        send: (m) => this.send(m),
        stop: (outcome) => stop(this, outcome),
      },
      this.timing.heartbeatMs,
    )
    this.resetElectionTimer()
    this.reported = {
      hardState: this.hardState(),
      role: this.role,
      term: this.term,
      leader: undefined,
      online: false,
      catchingUp: false,
      halted: false,
      config: this.log.config(),
      membersVersion: 0,
    }
  }

  // =================================================================================================
  // Helpers

  send<M extends Message>(
    fields: Omit<M, 'from' | 'term' | 'clusterId'> & { term?: number; clusterId?: string },
  ): void {
    this.messages.push({
      from: this.id,
      term: this.term,
      clusterId: this.clusterId,
      ...fields,
    } as unknown as M)
  }

  advanceClock(now: number): void {
    if (now > this.now) this.now = now
  }

  /**
   * A term the node may believe: bounded, and for a member of its own cluster not implausibly far
   * ahead of its own (a fresh node at term 0 accepts any bounded term).
   */
  plausibleTerm(m: Message): boolean {
    if (!isBounded(m.term)) return false
    if (this.term === 0 || m.clusterId !== this.clusterId) return true
    return m.term - this.term <= MAX_TERM_LEAP
  }

  inLease(): boolean {
    if (this.role === 'leader') return true
    return this.leader !== undefined && this.now - this.lastLeaderContact < this.timing.electionTimeoutMs
  }

  heardFromLeader(): void {
    this.everSawLeader = true
    this.lastLeaderContact = this.now
  }

  canCampaign(): boolean {
    return (
      this.preference !== 'observer' &&
      this.term + 1 < MAX_TERM_OR_INDEX &&
      this.clusterId !== '' &&
      !this.isCatchingUp() &&
      this.log.config().voters.includes(this.id)
    )
  }

  isCatchingUp(): boolean {
    return this.snapshotNeeded !== undefined || this.catchUp !== undefined
  }

  catchUpStallMs(): number {
    return 2 * this.timing.electionTimeoutMs
  }

  resetElectionTimer(): void {
    const { electionTimeoutMs, electionJitterMs, bootstrapDelayMs } = this.timing
    let timeout = electionTimeoutMs + this.random() * electionJitterMs
    if (this.preference === 'reluctant') timeout *= this.reluctantFactor
    if (!this.everSawLeader) timeout += bootstrapDelayMs
    this.electionDeadline = this.now + timeout
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, abstained: this.abstained, commit: this.log.committed }
  }

  isFresh(): boolean {
    return this.clusterId === '' && this.log.lastIndex() === 0
  }
}
