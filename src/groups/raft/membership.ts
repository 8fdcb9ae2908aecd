/**
 * Membership and cluster identity: a fresh member's roll-call and bootstrap, admission of messages by
 * cluster id, the standing a node shows rivals, stopping after losing to one, and the leader's
 * autopilot (voter set changes).
 */
import { type AutopilotChange, nextMembershipChange } from './autopilot.ts'
import { becomeLeader, stepDownLeader } from './elections.ts'
import { appendAsLeader } from './leader.ts'
import type { NodeState } from './state.ts'
import type { ClusterStanding, FreshMessage, Message } from './types.ts'

// =================================================================================================
// Formation

/**
 * A fresh member's roll-call to the others (see formation.ts): alive, still fresh, whether it is
 * waiting (held back, see `Formation.waiting`), and the round of the recipient's it heard last.
 * Observers never bootstrap and never call.
 */
export function callRoll(s: NodeState): void {
  s.rollCallDue = s.now + s.timing.heartbeatMs
  if (s.preference === 'observer') return
  for (const [to, member] of s.members) {
    if (!member.observer) s.send<FreshMessage>({ type: 'fresh', to, ...s.formation.callTo(to) })
  }
}

/**
 * A fresh member's roll-call. A fresh node notes it for its own turn; a member of a cluster answers
 * with its standing, so the caller learns that an established member exists and waits to join.
 */
export function onFresh(s: NodeState, m: FreshMessage): void {
  if (m.clusterId !== '') return
  if (s.isFresh()) s.formation.heardFresh(m.from, m, s.now)
  else s.rivals.sayHello(m.from, s.now)
}

/**
 * Forms a new cluster and leads its term 1. No election is needed, even with several first voters:
 * the cluster id is new, so no other node can be a candidate of this cluster in term 1 (a candidate
 * of it would first have to join it, at term ≥ 1, and campaign at term ≥ 2). Commits still need a
 * majority of the first voters.
 */
export function bootstrap(s: NodeState): void {
  s.term++
  s.vote = s.id
  s.abstained = false
  const nonce = Math.floor(s.random() * 0x1_0000_0000)
    .toString(16)
    .padStart(8, '0')
  s.clusterId = `${s.id}/${s.term}/${nonce}`
  s.log.append([
    {
      index: 1,
      term: s.term,
      kind: 'config',
      config: { voters: s.formation.initialVoters(s.id, s.members) },
      clusterId: s.clusterId,
    },
  ])
  becomeLeader(s)
}

/** When this fresh node may bootstrap (see formation.ts); observers never do. */
export function bootstrapAt(s: NodeState): number | undefined {
  if (s.preference === 'observer') return undefined
  return s.formation.bootstrapAt(s.id, s.members, s.everSawLeader, s.now)
}

// =================================================================================================
// Clusters

/** False for messages that must not be mixed in: another cluster's, or cluster-less ones. */
export function admit(s: NodeState, m: Message): boolean {
  if (m.clusterId === s.clusterId) return m.type !== 'hello' || s.clusterId !== ''
  if (m.clusterId === '' || m.type === 'concede') return false
  if (s.rivals.fromAbandoned(m, s.now)) return false
  if (s.clusterId !== '') {
    s.rivals.onForeign(m, s.now)
    return false
  }
  // A fresh node: an established member exists; it joins the cluster of the first leader reaching it.
  if (m.type === 'hello') s.formation.heardOfEstablished()
  if (m.type !== 'append' && m.type !== 'heartbeat' && m.type !== 'snapshot') return false
  if (!s.formation.mayJoin(m.clusterId, s.now)) return false
  s.clusterId = m.clusterId
  return true
}

export function standing(s: NodeState): ClusterStanding {
  return {
    clusterId: s.clusterId,
    commit: s.log.committed,
    lastTerm: s.log.lastTerm(),
    lastIndex: s.log.lastIndex(),
    commands: s.log.hasCommittedCommand(),
  }
}

/**
 * Lost to a rival: stop taking part (nothing more commits here), until `reset` for 'rejoin', for
 * good for 'halt'.
 */
export function stop(s: NodeState, outcome: 'rejoin' | 'halt'): void {
  if (s.role === 'leader') stepDownLeader(s)
  s.stopped = true
  if (outcome === 'halt') s.halted = true
  s.role = 'follower'
  s.leader = undefined
  s.online = false
  s.offlineForSilence = false
  s.votes.clear()
  s.snapshotNeeded = undefined
  s.catchUp = undefined
}

// =================================================================================================
// Autopilot

export function runAutopilot(s: NodeState): void {
  const log = s.log
  if (log.committed < s.termStart || log.config().index > log.committed) return
  const last = log.lastIndex()
  for (const pr of s.progress.values()) pr.updateRound(last, s.now, s.timing.electionTimeoutMs)
  const change: AutopilotChange | undefined = nextMembershipChange({
    leader: s.id,
    voters: log.config().voters,
    members: s.members,
    peers: s.progress,
    now: s.now,
    maxVoters: s.maxVoters,
    voterUnreachableMs: s.timing.voterUnreachableMs,
    responsiveMs: s.timing.electionTimeoutMs,
  })
  if (change === undefined) return
  const index = log.lastIndex() + 1
  appendAsLeader(s, [
    {
      index,
      term: s.term,
      kind: 'config',
      config: { voters: change.voters },
      clusterId: s.clusterId,
    },
  ])
  if (change.kind === 'remove' && !s.members.has(change.peer)) s.progress.delete(change.peer)
}
