/**
 * The public vocabulary of the IO-less Raft core: log entries, persisted state, wire messages, and the
 * `Ready` batch the group worker executes. Everything that crosses the wire or goes to a LogStore is a
 * plain object made of numbers, strings, booleans, arrays, nulls and Uint8Arrays, so canonical CBOR
 * encodes it as is; no field is ever set to `undefined`.
 */

import type { LeaderNotReadyError, NotLeaderError } from './errors.ts'

/** How a node takes part in elections (mosaik's `LeadershipPreference`). */
export type Preference = 'normal' | 'reluctant' | 'observer'

/** A node's Raft role; 'precandidate' is the pre-vote phase, before it bumps the term. */
export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader'

// ---------------------------------------------------------------------------------------------------
// Log

/** The voter set, carried by configuration entries and snapshots; every member not in it is a learner. */
export interface MembershipConfig {
  voters: string[]
}

export interface CommandEntry {
  index: number
  term: number
  kind: 'command'
  data: Uint8Array
}

/** Appended by every new leader, so that it can commit (only entries of its own term count). */
export interface NoopEntry {
  index: number
  term: number
  kind: 'noop'
}

/**
 * A new voter set. It takes effect as soon as it is appended (Raft dissertation §4.1), committed or
 * not. It carries the cluster id, so a node can always tell which cluster its log belongs to.
 */
export interface ConfigEntry {
  index: number
  term: number
  kind: 'config'
  config: MembershipConfig
  clusterId: string
}

export type Entry = CommandEntry | NoopEntry | ConfigEntry

/**
 * What a Raft node must persist before it answers a vote or acknowledges entries: it is on stable
 * storage before the messages of the same Ready leave the node.
 */
export interface HardState {
  /** The latest term this node has seen. */
  term: number
  /** The candidate this node backed in `term` (granted or abstained), or null. */
  vote: string | null
  /** The backing of `vote` was an abstention; it still binds the node for the whole term. */
  abstained?: boolean
  /** The highest index known to be committed. */
  commit: number
}

/** Describes the state-machine snapshot that replaces the log up to `index`. */
export interface SnapshotMeta {
  /** The last index the snapshot covers. */
  index: number
  /** The term of the entry at `index`. */
  term: number
  /** The voter set in force at `index`. */
  config: MembershipConfig
  /** The id of the cluster whose history the snapshot belongs to. */
  clusterId?: string
}

/** What a node restarts from: exactly what the worker persisted from earlier Readies. */
export interface PersistedState {
  hardState: HardState
  snapshot?: SnapshotMeta
  /** The log after the snapshot (or from index 1), contiguous. */
  entries: readonly Entry[]
  /**
   * The index the worker's state machine has applied already (a durable state machine); committed
   * entries after it are handed out again. Defaults to the snapshot index.
   */
  applied?: number
}

// ---------------------------------------------------------------------------------------------------
// Configuration

export interface RaftTiming {
  /** The leader's heartbeat period. */
  heartbeatMs: number
  /** The minimum election timeout; also the CheckQuorum period and the leader-lease window. */
  electionTimeoutMs: number
  /** The election timeout is drawn from [electionTimeoutMs, electionTimeoutMs + electionJitterMs). */
  electionJitterMs: number
  /** Added to the election timeout until the node has seen a leader; also how long a fresh node waits. */
  bootstrapDelayMs: number
  /** The leader's autopilot replaces a voter that has not answered for this long. */
  voterUnreachableMs: number
}

export interface RaftInit {
  /** This node's peer id. */
  id: string
  preference?: Preference
  /** Election timeouts of a reluctant node are multiplied by this (default 3). */
  reluctantFactor?: number
  timing?: Partial<RaftTiming>
  /** Uniform in [0, 1); injected so that runs are reproducible. */
  random: () => number
  /** The most entries one AppendEntries carries (default 256). */
  maxEntriesPerAppend?: number
  /**
   * The most command bytes one AppendEntries carries, beyond its first entry (default 1 MiB): a run of
   * large commands goes out in several appends, each well within a transport frame.
   */
  maxAppendBytes?: number
  /** The most unacknowledged AppendEntries in flight to one follower (default 64). */
  maxInflightAppends?: number
  /** The largest voter set the autopilot builds (default 5). */
  maxVoters?: number
  /** A committed gap larger than this makes a follower ask the worker for a parallel pull (default 1000). */
  catchUpThreshold?: number
  /**
   * A fresh node bootstraps a cluster only when it sees at least this many fresh non-observer members
   * (itself included), and then makes this many of them the first voters (itself and the smallest
   * others), as etcd's initial cluster or Consul's `bootstrap_expect`: with more than 1, no node alone
   * can form a cluster that acknowledges writes by itself (default 1).
   */
  bootstrapExpect?: number
  /** The persisted state to restart from; a fresh node when omitted. */
  persisted?: PersistedState
  /** The monotonic time of creation, in ms (default 0). */
  now?: number
}

/** A bonded group member as the worker sees it. */
export interface Member {
  id: string
  observer: boolean
}

// ---------------------------------------------------------------------------------------------------
// Messages

export type VoteAnswer = 'grant' | 'abstain' | 'deny'

interface MessageBase {
  from: string
  to: string
  term: number
  /** The sender's cluster ('' for a fresh node). Messages of another cluster are never mixed in. */
  clusterId: string
}

/** AppendEntries; also carries the leader's commit index and its read-confirmation round. */
export interface AppendMessage extends MessageBase {
  type: 'append'
  prevIndex: number
  prevTerm: number
  entries: Entry[]
  commit: number
  seq: number
  /**
   * No answer wanted unless the follower rejects: an empty append that only moves the commit index
   * to a follower the leader knows holds its whole log and has acknowledged the current read round.
   */
  quiet: boolean
}

export interface AppendResponseMessage extends MessageBase {
  type: 'appendResponse'
  reject: boolean
  /** Success: the last index now known to match the leader's log. Reject: the rejected prevIndex. */
  index: number
  /** Reject only: a probe position for the leader's fast back-off (etcd's conflict hint). */
  hintIndex: number
  hintTerm: number
  /** The leader round this answers (see `seq` in AppendMessage), for ReadIndex. */
  seq: number
  /** The follower is pulling committed entries from its peers: the leader pauses its back-fill. */
  catchingUp: boolean
}

/** Keeps followers' election timers quiet and confirms leadership for reads. */
export interface HeartbeatMessage extends MessageBase {
  type: 'heartbeat'
  /** min(leader commit, what this follower is known to hold), so it is safe to commit. */
  commit: number
  seq: number
}

export interface HeartbeatResponseMessage extends MessageBase {
  type: 'heartbeatResponse'
  seq: number
}

/** RequestVote, or its Pre-Vote probe (which changes no state on the receiver). */
export interface VoteMessage extends MessageBase {
  type: 'vote'
  preVote: boolean
  lastIndex: number
  lastTerm: number
}

export interface VoteResponseMessage extends MessageBase {
  type: 'voteResponse'
  preVote: boolean
  answer: VoteAnswer
}

/** The leader no longer has the entries this follower needs: it must install a snapshot first. */
export interface SnapshotMessage extends MessageBase {
  type: 'snapshot'
  index: number
  /** The term at `index`. */
  snapshotTerm: number
}

/**
 * Sent to newly bonded members and in answer to a message from another cluster: tells a fresh node an
 * established member exists (so it must not bootstrap), and tells rival clusters how they compare
 * (the fields of a `ClusterStanding`).
 */
export interface HelloMessage extends MessageBase {
  type: 'hello'
  commit: number
  lastIndex: number
  lastTerm: number
  commands: boolean
  /** The leader the sender follows; equal to `from` when the sender leads (its verdicts count). */
  leader: string | null
}

/**
 * The cluster `clusterId` lost a rivalry to `winner`. Sent by a leader that lost to its fellow members,
 * and by any former member to a straggler that still speaks for the lost cluster. A receiver believes
 * it only from a fellow member of its cluster and only if `winner` beats its own standing; then it
 * rejoins the winner (its committed log holds no command) or halts (it does).
 */
export interface ConcedeMessage extends MessageBase {
  type: 'concede'
  winner: ClusterStanding
}

/**
 * A roll-call (the fields of `FreshMessage`): whether the caller waits, which of its rounds this is,
 * and the round it last heard from the recipient (0 and 0 for none).
 */
export interface RollCall {
  waiting: boolean
  /** Random per start of the node, so that rounds of an earlier run never pass for current ones. */
  incarnation: number
  /** Starts at 1 and grows by one at each release from a hold. */
  round: number
  heardIncarnation: number
  heardRound: number
}

/**
 * A fresh member's roll-call, sent every heartbeat period to the other members while it has no
 * cluster: it is alive, still fresh, and `waiting`: held back by members it has not bonded with, so
 * it cannot act (not merely waiting for its turn, which it may take the moment it hears the member it
 * waits for). A fresh member only takes a later bootstrap turn when every smaller member said recently
 * that it is waiting; silence (a partition the bond has not noticed yet) or a member about to
 * bootstrap stops it. A member released from waiting acts only once every larger member has echoed
 * the round of roll-calls its release began (`heardIncarnation`, `heardRound`; formation.ts).
 */
export interface FreshMessage extends MessageBase, RollCall {
  type: 'fresh'
}

export type Message =
  | FreshMessage
  | AppendMessage
  | AppendResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | SnapshotMessage
  | HelloMessage
  | ConcedeMessage

export type MessageType = Message['type']

// ---------------------------------------------------------------------------------------------------
// Ready

export type ReadRequestId = string | number

/** A strong read may be answered once the local state machine has applied `index`. */
export interface ReadState {
  requestId: ReadRequestId
  index: number
}

/** The follower must install a snapshot at or after `index` (fetched from `leader` or any peer). */
export interface SnapshotNeeded {
  index: number
  term: number
  leader: string
}

/**
 * The follower is far behind: the worker may pull the committed entries `from ..= to` from several
 * peers of the same cluster in parallel and feed them, in order, to `appendCommitted`. A peer serves
 * only entries at or below the commit index in its persisted hard state.
 */
export interface CatchUpRequest {
  from: number
  to: number
  leader: string
}

/** How far a cluster has come, as one of its members sees it. */
export interface ClusterStanding {
  clusterId: string
  commit: number
  lastTerm: number
  lastIndex: number
  /**
   * The member's committed log holds a user command (conservatively true once it was compacted): a
   * cluster with acknowledged writes beats one without, and is never wiped.
   */
  commands: boolean
}

/**
 * What a rivalry means for this node:
 * - 'keep': ours wins (informational);
 * - 'rejoin': theirs wins and this node's committed log holds no command, so resetting loses nothing:
 *   the worker wipes the store and calls `reset(now, theirs)`; the node rejoins the winner as a fresh
 *   learner;
 * - 'halt': theirs wins but this node holds committed commands: joining would discard acknowledged
 *   writes. The node has stopped for good (`RaftStatus.halted`); the worker stops the group with an
 *   error, keeps the store for the operator, and never resets.
 */
export type RivalOutcome = 'keep' | 'rejoin' | 'halt'

/**
 * A member of another cluster is bonded with us: two clusters were born on the two sides of a
 * partition. The one with the greater standing (`compareStanding`) wins. Only leaders judge (they hold
 * their cluster's best standing and greet each other, so both sides agree); a losing leader tells its
 * whole cluster (`concede`).
 */
export interface RivalReport {
  peer: string
  ours: ClusterStanding
  theirs: ClusterStanding
  outcome: RivalOutcome
}

/** A snapshot of a group member's Raft state (what `group.status` returns). */
export interface RaftStatus {
  /** This node's peer id. */
  id: string
  /** Its role now. */
  role: Role
  /** The current term. */
  term: number
  /** The leader it knows of in this term, if any. */
  leader: string | undefined
  /** The id of the cluster (one bootstrap of the group) it belongs to; undefined before it has one. */
  clusterId: string | undefined
  /** The highest log index known to be committed. */
  commitIndex: number
  /** The last index handed out for applying and acknowledged with `advance`. */
  appliedIndex: number
  /** The last index in this node's log. */
  lastIndex: number
  /** The current voter set (peer ids). */
  voters: readonly string[]
  /** Bonded members that are not voters. */
  learners: readonly string[]
  /** True when this node is in the voter set. */
  isVoter: boolean
  /**
   * mosaik's definition: a leader is online; a follower is online after accepting a consistent
   * AppendEntries from the current leader, and offline while catching up; candidates are offline.
   */
  online: boolean
  /** Waiting for a snapshot or a parallel catch-up; such a node never campaigns. */
  catchingUp: boolean
  /**
   * The node takes no further part (no vote, no campaign, no leading, no bootstrap) until the process
   * restarts: it met a rival cluster that wins while its own committed log holds commands
   * (`RivalReport` outcome 'halt'), or its worker stopped it because its log store failed
   * (`Group.when.halted()` says which).
   */
  halted: boolean
}

/**
 * One batch of work for the worker. Do it in this order: if `snapshot` is set, reset the LogStore to
 * it; drop persisted entries ≥ `truncateFrom`; persist `entries` and `hardState` (one durable write);
 * only then send `messages`; then apply `committedEntries` in order (skipping noop and config entries
 * for the state machine); then serve `readStates` once applied ≥ their index; finally `advance(ready)`.
 */
export interface Ready {
  messages: Message[]
  /**
   * The messages may leave while `entries` and `hardState` are being written, rather than after, so
   * the leader writes its disk while its followers write theirs (Raft thesis §10.2.1). Set only on a
   * leader's Ready whose hard state moves at most the commit index, and whose commit index (hence
   * that of every message in it) the entries persisted by earlier Readies already cover.
   *
   * Why that is safe: a crash may lose this Ready's entries on the leader, but no member has been told
   * they are committed; that news leaves only in a later Ready, taken once this one is persisted. (A
   * lone voter commits what it appends at once, so its Readies persist first.) The worker still applies
   * `committedEntries` only after persisting.
   */
  sendBeforePersist: boolean
  hardState?: HardState
  /** The worker installed a snapshot (`restoreSnapshot`): the store restarts from it. */
  snapshot?: SnapshotMeta
  truncateFrom?: number
  entries: Entry[]
  committedEntries: Entry[]
  readStates: ReadState[]
  /** Reads this node accepted as leader and can no longer confirm (it lost leadership): fail or retry them. */
  droppedReads: ReadRequestId[]
  snapshotNeeded?: SnapshotNeeded
  catchUp?: CatchUpRequest
  rival?: RivalReport
  /** Set when role, term, leader, voters, online or catching-up changed since the last Ready. */
  status?: RaftStatus
}

/** The index range a leader assigned to proposed commands, or why it could not. */
export type ProposeResult =
  | { ok: true; first: number; last: number; term: number }
  | { ok: false; error: NotLeaderError }

export type ReadIndexResult = { ok: true } | { ok: false; error: NotLeaderError | LeaderNotReadyError }
