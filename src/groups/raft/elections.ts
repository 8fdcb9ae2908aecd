/**
 * Elections of the Raft core: the role changes (follower, pre-candidate, candidate, leader), the
 * campaign with Pre-Vote, and the answers to votes (grant, abstain, deny).
 */

import { respondAppend } from './follower.ts'
import { appendAsLeader, ensureProgress, maybeCommit } from './leader.ts'
import { tallyVotes } from './quorum.ts'
import type { NodeState } from './state.ts'
import type { Message, VoteAnswer, VoteMessage, VoteResponseMessage } from './types.ts'

// =================================================================================================
// Roles

export function becomeFollower(s: NodeState, term: number, leader: string | undefined): void {
  if (s.role === 'leader') stepDownLeader(s)
  if (term !== s.term) {
    s.term = term
    s.vote = null
    s.abstained = false
  }
  s.role = 'follower'
  s.leader = leader
  s.online = false
  s.offlineForSilence = false
  s.votes.clear()
  if (leader !== undefined) s.heardFromLeader()
  s.resetElectionTimer()
}

/** Pre-Vote first (`preVote`), then the real election at term + 1 once the pre-vote is won. */
export function campaign(s: NodeState, preVote: boolean): void {
  s.votes.clear()
  s.leader = undefined
  s.online = false
  s.offlineForSilence = false
  if (preVote) {
    s.role = 'precandidate'
  } else {
    s.role = 'candidate'
    s.term++
    s.vote = s.id
    s.abstained = false
  }
  s.resetElectionTimer()
  s.votes.set(s.id, 'grant')
  const term = preVote ? s.term + 1 : s.term
  const lastIndex = s.log.lastIndex()
  const lastTerm = s.log.lastTerm()
  for (const voter of s.log.config().voters) {
    if (voter === s.id) continue
    s.send<VoteMessage>({ type: 'vote', to: voter, term, preVote, lastIndex, lastTerm })
  }
  countVotes(s, preVote)
}

/** Counts the answers so far (see `tallyVotes` for the rule and why it is safe). */
export function countVotes(s: NodeState, preVote: boolean): void {
  const result = tallyVotes(s.log.config().voters, s.votes)
  if (result === 'won') {
    if (preVote) campaign(s, false)
    else becomeLeader(s)
  } else if (result === 'lost') {
    becomeFollower(s, s.term, undefined)
  }
}

export function becomeLeader(s: NodeState): void {
  s.role = 'leader'
  s.leader = s.id
  s.online = true
  s.heardFromLeader()
  s.votes.clear()
  s.progress.clear()
  const next = s.log.lastIndex() + 1
  for (const voter of s.log.config().voters) if (voter !== s.id) ensureProgress(s, voter)
  for (const id of s.members.keys()) ensureProgress(s, id)
  s.termStart = next
  s.heartbeatDue = s.now + s.timing.heartbeatMs
  s.checkQuorumDue = s.now + s.timing.electionTimeoutMs
  // The no-op lets the leader commit (and so serve reads and change membership) in its own term.
  // A bootstrapping leader's first entry is already of its term.
  if (s.log.lastTerm() === s.term) s.termStart = s.log.lastIndex()
  else appendAsLeader(s, [{ index: next, term: s.term, kind: 'noop' }])
  s.replicationDirty = true
  maybeCommit(s)
}

export function stepDownLeader(s: NodeState): void {
  s.reads.dropAll(s.droppedReads)
  s.replicationDirty = false
  s.progress.clear()
}

// =================================================================================================
// Votes

export function onVote(s: NodeState, m: VoteMessage): void {
  // Observers never vote; a node of no cluster has nothing to vote with.
  if (s.preference === 'observer' || s.clusterId === '') return
  if (m.preVote) {
    // A pre-vote changes nothing here. Support is sent at the term asked about; a denial carries our
    // own term, so a pre-candidate left behind at an older term catches up with it (as in etcd).
    const answer: VoteAnswer = m.term > s.term ? compareLogs(s, m) : 'deny'
    const term = answer === 'deny' ? s.term : m.term
    s.send<VoteResponseMessage>({ type: 'voteResponse', to: m.from, term, preVote: true, answer })
    return
  }
  let answer: VoteAnswer
  if (s.vote === m.from) answer = s.abstained ? 'abstain' : 'grant'
  else if (s.vote !== null || s.leader !== undefined) answer = 'deny'
  else {
    answer = compareLogs(s, m)
    if (answer !== 'deny') {
      // Recorded (and persisted before the answer leaves) whether granted or abstained.
      s.vote = m.from
      s.abstained = answer === 'abstain'
      s.resetElectionTimer()
    }
  }
  s.send<VoteResponseMessage>({
    type: 'voteResponse',
    to: m.from,
    term: s.term,
    preVote: false,
    answer,
  })
}

/** Grant for equal logs, abstain when ours is behind the candidate's, deny when ours is ahead. */
export function compareLogs(s: NodeState, m: VoteMessage): VoteAnswer {
  const order = s.log.compare(m.lastTerm, m.lastIndex)
  return order === 0 ? 'grant' : order > 0 ? 'abstain' : 'deny'
}

export function onPreVoteResponse(s: NodeState, m: VoteResponseMessage): void {
  if (m.answer === 'deny' ? m.term > s.term : m.term > s.term + 1) {
    becomeFollower(s, m.term, undefined)
    return
  }
  const expectedTerm = m.answer === 'deny' ? s.term : s.term + 1
  if (s.role !== 'precandidate' || m.term !== expectedTerm) return
  if (!s.log.config().voters.includes(m.from)) return
  s.votes.set(m.from, m.answer)
  countVotes(s, true)
}

export function onVoteResponse(s: NodeState, m: VoteResponseMessage): void {
  if (s.role !== 'candidate' || !s.log.config().voters.includes(m.from)) return
  s.votes.set(m.from, m.answer)
  countVotes(s, false)
}

/** A message from an older term: tell a stale leader or pre-candidate about the newer one. */
export function onStaleTerm(s: NodeState, m: Message): void {
  if (m.type === 'append' || m.type === 'heartbeat') {
    respondAppend(s, m.from, true, 0, 0)
  } else if (m.type === 'vote' && m.preVote && s.preference !== 'observer') {
    s.send<VoteResponseMessage>({
      type: 'voteResponse',
      to: m.from,
      term: s.term,
      preVote: true,
      answer: 'deny',
    })
  }
}
