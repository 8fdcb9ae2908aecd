/**
 * The leader's side of replication: heartbeats and CheckQuorum, progress tracking of each follower,
 * commit advancement, confirmation of strong reads, and what each follower is sent.
 */
import { becomeFollower } from './elections.ts'
import { runAutopilot } from './membership.ts'
import { Progress } from './progress.ts'
import { quorumActive, quorumValue } from './quorum.ts'
import type { NodeState } from './state.ts'
import type {
  AppendMessage,
  AppendResponseMessage,
  Entry,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  SnapshotMessage,
} from './types.ts'

export function tickLeader(s: NodeState): void {
  const now = s.now
  if (now >= s.checkQuorumDue) {
    s.checkQuorumDue = now + s.timing.electionTimeoutMs
    if (!hasActiveQuorum(s)) {
      // CheckQuorum: a leader cut off from a majority steps down rather than serve stale state.
      becomeFollower(s, s.term, undefined)
      return
    }
  }
  if (now >= s.heartbeatDue) {
    s.heartbeatDue = now + s.timing.heartbeatMs
    for (const [id, pr] of s.progress) sendHeartbeat(s, id, pr)
  }
  runAutopilot(s)
}

export function hasActiveQuorum(s: NodeState): boolean {
  return quorumActive(s.log.config().voters, (voter) => {
    if (voter === s.id) return true
    const pr = s.progress.get(voter)
    return pr !== undefined && s.now - pr.lastResponseAt < s.timing.electionTimeoutMs
  })
}

export function appendAsLeader(s: NodeState, entries: Entry[]): void {
  s.log.append(entries)
  for (const entry of entries) {
    if (entry.kind === 'config') for (const voter of entry.config.voters) ensureProgress(s, voter)
  }
  s.replicationDirty = true
  maybeCommit(s)
}

export function ensureProgress(s: NodeState, id: string): void {
  if (id !== s.id && !s.progress.has(id)) {
    s.progress.set(id, new Progress(s.log.lastIndex() + 1, s.now))
  }
}

/** Commits the highest index of this term that a majority of voters holds. */
export function maybeCommit(s: NodeState): void {
  const voters = s.log.config().voters
  const matches = s.scratch
  matches.length = 0
  for (const voter of voters) {
    matches.push(voter === s.id ? s.log.lastIndex() : (s.progress.get(voter)?.match ?? 0))
  }
  const index = quorumValue(matches)
  if (index > s.log.committed && s.log.term(index) === s.term) {
    s.log.commitTo(index)
    s.replicationDirty = true
  }
}

export function onAppendResponse(s: NodeState, m: AppendResponseMessage): void {
  const pr = s.progress.get(m.from)
  if (pr === undefined) return
  const now = s.now
  pr.lastResponseAt = now
  acknowledge(s, pr, m.seq)
  if (m.reject) {
    if (m.catchingUp) {
      if (pr.state !== 'catchup') pr.becomeCatchUp(now)
      return
    }
    if (pr.state === 'snapshot') return
    if (pr.state === 'catchup') {
      pr.becomeProbe()
      s.replicationDirty = true
    }
    const hint = m.hintTerm > 0 ? s.log.findConflictByTerm(m.hintIndex, m.hintTerm) : m.hintIndex
    if (pr.maybeDecrTo(m.index, hint)) {
      if (pr.state === 'replicate') pr.becomeProbe()
      s.replicationDirty = true
    }
    return
  }
  const advanced = pr.maybeUpdate(m.index, now)
  if (m.catchingUp) {
    if (pr.state !== 'catchup') pr.becomeCatchUp(now)
  } else if (pr.state === 'catchup' || (pr.state === 'snapshot' && pr.match + 1 >= s.log.firstIndex())) {
    pr.becomeProbe()
    pr.becomeReplicate(now)
  } else if (pr.state === 'probe' && advanced) {
    pr.becomeReplicate(now)
  }
  if (advanced) {
    pr.updateRound(s.log.lastIndex(), now, s.timing.electionTimeoutMs)
    maybeCommit(s)
  }
  s.replicationDirty = true
}

export function onHeartbeatResponse(s: NodeState, m: HeartbeatResponseMessage): void {
  const pr = s.progress.get(m.from)
  if (pr === undefined) return
  const now = s.now
  pr.lastResponseAt = now
  acknowledge(s, pr, m.seq)
  switch (pr.state) {
    case 'probe':
      pr.probeSent = false
      break
    case 'replicate':
      // AppendEntries are lost (the follower answers heartbeats but not them): probe again.
      if (pr.inflight > 0 && now - pr.lastProgressAt >= 2 * s.timing.heartbeatMs) pr.becomeProbe()
      break
    case 'snapshot':
      if (now - pr.snapshotSentAt >= s.timing.electionTimeoutMs) sendSnapshot(s, m.from, pr)
      break
    case 'catchup':
      if (now - pr.lastProgressAt >= s.catchUpStallMs()) pr.becomeProbe()
      break
  }
  s.replicationDirty = true
}

/** Records that `pr` answered round `seq`, and releases the reads a majority has now confirmed. */
export function acknowledge(s: NodeState, pr: Progress, seq: number): void {
  if (seq <= pr.ackedSeq) return
  pr.ackedSeq = seq
  if (!s.reads.waiting) return
  const acked = s.scratch
  acked.length = 0
  for (const voter of s.log.config().voters) {
    acked.push(voter === s.id ? s.reads.seq : (s.progress.get(voter)?.ackedSeq ?? 0))
  }
  s.reads.release(quorumValue(acked), s.readStates)
}

/** Sends what each follower is owed: entries, commit advances, read rounds. Called lazily. */
export function flush(s: NodeState): void {
  if (s.role !== 'leader') return
  if (s.reads.takeRound()) {
    for (const voter of s.log.config().voters) {
      const pr = s.progress.get(voter)
      if (pr !== undefined) sendHeartbeat(s, voter, pr)
    }
  }
  if (!s.replicationDirty) return
  s.replicationDirty = false
  const last = s.log.lastIndex()
  const commit = s.log.committed
  for (const [id, pr] of s.progress) {
    while (!pr.isPaused(s.maxInflight)) {
      if (pr.next <= last) {
        if (!sendAppend(s, id, pr)) break
      } else {
        // Nothing new: an empty AppendEntries still tells the follower the commit index (and probes).
        if (pr.sentCommit < commit || (pr.state === 'probe' && pr.match < last)) sendAppend(s, id, pr)
        break
      }
    }
  }
}

/** One AppendEntries from `pr.next`; false if a snapshot message went out instead. */
export function sendAppend(s: NodeState, to: string, pr: Progress): boolean {
  const prevIndex = pr.next - 1
  const prevTerm = s.log.term(prevIndex)
  if (prevTerm === undefined) {
    sendSnapshot(s, to, pr)
    return false
  }
  const last = s.log.lastIndex()
  const entries = s.log.slice(pr.next, last, s.maxEntriesPerAppend, s.maxAppendBytes)
  const commit = s.log.committed
  // A commit notice to a replicating follower, with no read round for it to confirm, needs no answer:
  // it holds everything, or its answer to the entries still in flight says what this one would (a
  // follower lacking them rejects the notice, and rejections are always answered). Asking one anyway
  // costs the follower whose answer came second a round trip per commit, ahead of the next entries.
  const quiet = entries.length === 0 && pr.state === 'replicate' && pr.ackedSeq >= s.reads.seq
  s.send<AppendMessage>({
    type: 'append',
    to,
    prevIndex,
    prevTerm,
    entries,
    commit,
    seq: s.reads.seq,
    quiet,
  })
  pr.sentCommit = commit
  if (entries.length > 0) pr.sent(entries[entries.length - 1]!.index, s.now)
  else if (pr.state === 'probe') pr.probeSent = true
  return true
}

export function sendSnapshot(s: NodeState, to: string, pr: Progress): void {
  const index = s.log.snapshotIndex
  s.send<SnapshotMessage>({ type: 'snapshot', to, index, snapshotTerm: s.log.snapshotTerm })
  pr.becomeSnapshot(index, s.now)
}

export function sendHeartbeat(s: NodeState, to: string, pr: Progress): void {
  // Only what the follower is known to hold may be committed by a heartbeat.
  const commit = Math.min(pr.match, s.log.committed)
  s.send<HeartbeatMessage>({ type: 'heartbeat', to, commit, seq: s.reads.seq })
}
