/**
 * The Ready contract's outputs: what the next Ready carries, taken only when something changed since
 * the last one was reported (see `RaftNode` for the contract).
 */
import { RaftContractError } from './errors.ts'
import { flush } from './leader.ts'
import type { NodeState } from './state.ts'
import type { HardState, Message, RaftStatus, Ready } from './types.ts'

export function status(s: NodeState): RaftStatus {
  const config = s.log.config()
  const learners: string[] = []
  for (const id of s.members.keys()) if (!config.voters.includes(id)) learners.push(id)
  return {
    id: s.id,
    role: s.role,
    term: s.term,
    leader: s.leader,
    clusterId: s.clusterId === '' ? undefined : s.clusterId,
    commitIndex: s.log.committed,
    appliedIndex: s.log.applied,
    lastIndex: s.log.lastIndex(),
    voters: config.voters,
    learners,
    isVoter: config.voters.includes(s.id),
    online: s.online,
    catchingUp: s.isCatchingUp(),
    halted: s.halted,
  }
}

export function haltedMessages(s: NodeState): Message[] {
  if (!s.halted) return []
  const out = s.messages
  s.messages = []
  return out
}

export function hasReady(s: NodeState): boolean {
  if (s.readyOutstanding) return false
  flush(s)
  return (
    s.messages.length > 0 ||
    s.log.hasUnpersisted() ||
    s.log.hasUnapplied() ||
    s.readStates.length > 0 ||
    s.droppedReads.length > 0 ||
    s.restoredSnapshot !== undefined ||
    s.rivals.report !== undefined ||
    (s.snapshotNeeded !== undefined && !s.snapshotNeededReported) ||
    (s.catchUp !== undefined && !s.catchUpReported) ||
    hardStateChanged(s) ||
    statusChanged(s)
  )
}

export function takeReady(s: NodeState): Ready {
  if (s.readyOutstanding) {
    throw new RaftContractError('advance() the previous Ready before taking another')
  }
  flush(s)
  const unpersisted = s.log.takeUnpersisted()
  const rd: Ready = {
    messages: s.messages,
    entries: unpersisted.entries,
    committedEntries: s.log.takeUnapplied(),
    readStates: s.readStates,
    droppedReads: s.droppedReads,
    sendBeforePersist: false,
  }
  s.messages = []
  s.readStates = []
  s.droppedReads = []
  if (unpersisted.truncateFrom !== undefined) rd.truncateFrom = unpersisted.truncateFrom
  if (s.restoredSnapshot !== undefined) {
    rd.snapshot = s.restoredSnapshot
    s.restoredSnapshot = undefined
  }
  const before = s.reported.hardState
  if (hardStateChanged(s)) {
    rd.hardState = s.hardState()
    s.reported.hardState = rd.hardState
  }
  if (s.snapshotNeeded !== undefined && !s.snapshotNeededReported) {
    rd.snapshotNeeded = { ...s.snapshotNeeded }
    s.snapshotNeededReported = true
  }
  if (s.catchUp !== undefined && !s.catchUpReported) {
    const { from, to, leader } = s.catchUp
    rd.catchUp = { from, to, leader }
    s.catchUpReported = true
  }
  const rival = s.rivals.takeReport()
  if (rival !== undefined) rd.rival = rival
  if (statusChanged(s)) {
    rd.status = status(s)
    noteStatusReported(s)
  }
  // Everything below the first entry this Ready persists was persisted by earlier ones.
  const persisted = (rd.entries[0]?.index ?? s.log.lastIndex() + 1) - 1
  rd.sendBeforePersist =
    s.role === 'leader' &&
    rd.snapshot === undefined &&
    rd.truncateFrom === undefined &&
    rd.rival === undefined &&
    s.log.committed <= persisted &&
    (rd.hardState === undefined || onlyCommitMoved(before, rd.hardState))
  s.readyOutstanding = true
  return rd
}

/**
 * Whether `next` differs from `prev` only by its commit index: the term and the vote, which keep one
 * leader per term, are the same. Such a hard state may leave in messages before it is durable (a
 * leader's Ready, `sendBeforePersist`; a node becomes leader only in a term it persisted as a
 * candidate), and a store need not fsync it before its write resolves (etcd's MustSync rule): after a
 * crash the commit index may be older, and the leader tells it again.
 */
export function onlyCommitMoved(prev: HardState, next: HardState): boolean {
  return (
    prev.term === next.term &&
    prev.vote === next.vote &&
    (prev.abstained ?? false) === (next.abstained ?? false)
  )
}

export function advance(s: NodeState, rd: Ready): void {
  s.readyOutstanding = false
  const applied = rd.committedEntries[rd.committedEntries.length - 1]
  if (applied !== undefined) s.log.appliedTo(applied.index)
}

export function hardStateChanged(s: NodeState): boolean {
  const hs = s.reported.hardState
  return (
    hs.term !== s.term || hs.vote !== s.vote || hs.abstained !== s.abstained || hs.commit !== s.log.committed
  )
}

export function statusChanged(s: NodeState): boolean {
  const r = s.reported
  return (
    r.role !== s.role ||
    r.term !== s.term ||
    r.leader !== s.leader ||
    r.online !== s.online ||
    r.catchingUp !== s.isCatchingUp() ||
    r.halted !== s.halted ||
    r.config !== s.log.config() ||
    r.membersVersion !== s.membersVersion
  )
}

/** Remembers what the status just reported shows: the fields `statusChanged` compares, one for one. */
function noteStatusReported(s: NodeState): void {
  const r = s.reported
  r.role = s.role
  r.term = s.term
  r.leader = s.leader
  r.online = s.online
  r.catchingUp = s.isCatchingUp()
  r.halted = s.halted
  r.config = s.log.config()
  r.membersVersion = s.membersVersion
}
