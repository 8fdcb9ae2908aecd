/**
 * The follower's side of replication: AppendEntries, heartbeats and snapshot offers from the leader,
 * and the start of a catch-up when the gap to the leader is large.
 */
import { becomeFollower } from './elections.ts'
import type { NodeState } from './state.ts'
import type {
  AppendMessage,
  AppendResponseMessage,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  SnapshotMessage,
} from './types.ts'

/** A message from the leader of the current term. */
export function followLeader(s: NodeState, from: string): void {
  if (s.role !== 'follower') becomeFollower(s, s.term, from)
  s.leader = from
  // Back in touch after a silence (not after an inconsistency): a diverged log would be caught by
  // the next AppendEntries and take this node offline again.
  if (s.offlineForSilence) {
    s.offlineForSilence = false
    s.online = true
  }
  s.heardFromLeader()
  s.resetElectionTimer()
}

export function onAppend(s: NodeState, m: AppendMessage): void {
  if (s.role === 'leader') return // cannot happen: one leader per term
  followLeader(s, m.from)
  const log = s.log
  let { prevIndex, prevTerm, entries } = m
  if (prevIndex < log.committed) {
    // A duplicate or late message: the committed prefix matches the leader's log anyway.
    const skip = Math.min(log.committed - prevIndex, entries.length)
    if (skip === entries.length) {
      respondAppend(s, m.from, false, log.committed, m.seq)
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
    s.snapshotNeeded = undefined
    if (s.catchUp !== undefined && log.committed >= s.catchUp.to) s.catchUp = undefined
    s.online = s.catchUp === undefined
    // A quiet commit notice is answered only where the answer says something new: a rejection, new
    // entries, or a follower still catching up.
    if (!m.quiet || m.entries.length > 0 || s.catchUp !== undefined)
      respondAppend(s, m.from, false, lastNew, m.seq)
    return
  }
  s.online = false
  s.offlineForSilence = false
  const hintIndex = log.findConflictByTerm(Math.min(m.prevIndex, log.lastIndex()), m.prevTerm)
  const gapEnd = Math.min(m.prevIndex, m.commit)
  if (s.catchUp === undefined && s.snapshotNeeded === undefined && s.now >= s.catchUpBackoffUntil) {
    if (gapEnd - log.committed > s.catchUpThreshold) {
      s.catchUp = { from: log.committed + 1, to: gapEnd, leader: m.from, lastProgressAt: s.now }
      s.catchUpReported = false
    }
  }
  s.send<AppendResponseMessage>({
    type: 'appendResponse',
    to: m.from,
    reject: true,
    index: m.prevIndex,
    hintIndex,
    hintTerm: log.term(hintIndex) ?? 0,
    seq: m.seq,
    catchingUp: s.catchUp !== undefined,
  })
}

export function onHeartbeat(s: NodeState, m: HeartbeatMessage): void {
  if (s.role === 'leader') return
  followLeader(s, m.from)
  const log = s.log
  // The guard only matters for a node that lost acknowledged entries, which the Ready contract forbids.
  if (m.commit > log.committed && m.commit <= log.lastIndex()) log.commitTo(m.commit)
  s.send<HeartbeatResponseMessage>({ type: 'heartbeatResponse', to: m.from, seq: m.seq })
}

export function onSnapshot(s: NodeState, m: SnapshotMessage): void {
  if (s.role === 'leader') return
  followLeader(s, m.from)
  if (m.index <= s.log.committed) {
    respondAppend(s, m.from, false, s.log.committed, 0)
    return
  }
  s.online = false
  s.offlineForSilence = false
  const current = s.snapshotNeeded
  if (current === undefined || current.index !== m.index || current.leader !== m.from) {
    s.snapshotNeeded = { index: m.index, term: m.snapshotTerm, leader: m.from }
    s.snapshotNeededReported = false
  }
}

export function respondAppend(s: NodeState, to: string, reject: boolean, index: number, seq: number): void {
  s.send<AppendResponseMessage>({
    type: 'appendResponse',
    to,
    reject,
    index,
    hintIndex: 0,
    hintTerm: 0,
    seq,
    catchingUp: s.catchUp !== undefined,
  })
}
