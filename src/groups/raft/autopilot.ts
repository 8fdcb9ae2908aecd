/**
 * The leader's autopilot: membership without an operator. It looks at the voter set, the bonded
 * members and how each follower is replicating, and proposes at most one single-server change
 * (Raft dissertation §4.1). The leader runs it only when no configuration change is uncommitted and an
 * entry of its own term is committed, so changes never overlap.
 *
 * Policy:
 * - target = the largest odd number ≤ min(maxVoters, eligible), where eligible = the bonded non-observer
 *   members plus the leader; an odd voter set tolerates as many failures as the next even one and needs
 *   fewer acknowledgements;
 * - first remove a voter that left the member set, became an observer, or has not answered for
 *   `voterUnreachableMs` (before promoting its replacement: a dead voter in a larger set only raises
 *   the quorum);
 * - then promote the most caught-up responsive learner while voters < target: one that acknowledged
 *   this leader's entries and keeps up by catch-up rounds (Raft dissertation §4.2.1: its last round of
 *   catching up to the leader's log as of the round's start took less than an election timeout; see
 *   `Progress.updateRound`), so that promotion works under full write load;
 * - then shrink an oversized voter set (members left) by the voter it can best do without (one no longer
 *   bonded, then the longest silent, then the least caught up), but never below two:
 *   one voter tolerates no more failures than two, and two keep every commit on two machines.
 * The leader never removes itself.
 */

export interface AutopilotPeer {
  match: number
  lastResponseAt: number
  /** The follower's last catch-up round took less than an election timeout (and so does this one). */
  caughtUp: boolean
}

export interface AutopilotInput {
  leader: string
  voters: readonly string[]
  /** The bonded members, by id, with whether each is an observer. */
  members: ReadonlyMap<string, { observer: boolean }>
  /** The leader's replication progress, by follower id. */
  peers: ReadonlyMap<string, AutopilotPeer>
  now: number
  maxVoters: number
  voterUnreachableMs: number
  /** A learner is promoted only if it answered within this window. */
  responsiveMs: number
}

export type AutopilotChange =
  | {
      kind: 'remove'
      peer: string
      reason: 'departed' | 'observer' | 'unreachable' | 'excess'
      voters: string[]
    }
  | { kind: 'promote'; peer: string; voters: string[] }

type RemovalReason = Extract<AutopilotChange, { kind: 'remove' }>['reason']

/** The largest odd number ≤ min(maxVoters, eligible), at least 1. */
export function targetVoterCount(eligible: number, maxVoters: number): number {
  const cap = Math.max(1, Math.min(maxVoters, eligible))
  return cap % 2 === 1 ? cap : cap - 1
}

/** The one change the autopilot proposes now, if any: the policy above, step by step in its order. */
export function nextMembershipChange(input: AutopilotInput): AutopilotChange | undefined {
  // Lapsed voters go before their replacements come: a dead voter in a larger set only raises the quorum.
  const lapsed = lapsedVoterRemoval(input)
  if (lapsed !== undefined) return lapsed
  const target = targetVoterCount(eligibleVoterCount(input), input.maxVoters)
  const count = input.voters.length
  if (count < target) return learnerPromotion(input)
  // Never below two: one voter tolerates no more failures than two, and two keep commits on two machines.
  if (count > target && count > 2) return excessVoterRemoval(input)
  return undefined
}

/** The first voter, in voter order, that left, became an observer or went silent (never the leader). */
function lapsedVoterRemoval(input: AutopilotInput): AutopilotChange | undefined {
  for (const voter of input.voters) {
    if (voter === input.leader) continue
    const reason = lapseOf(input, voter)
    if (reason !== undefined) return removal(input.voters, voter, reason)
  }
  return undefined
}

/** Why `voter` no longer belongs in the voter set, checked in this order; undefined if it does. */
function lapseOf(input: AutopilotInput, voter: string): Exclude<RemovalReason, 'excess'> | undefined {
  const member = input.members.get(voter)
  const silentFor = input.now - (input.peers.get(voter)?.lastResponseAt ?? Number.NEGATIVE_INFINITY)
  // A voter that still answers is not departed yet: the member view may lag.
  if (member === undefined && silentFor >= input.responsiveMs) return 'departed'
  if (member?.observer === true) return 'observer'
  if (silentFor >= input.voterUnreachableMs) return 'unreachable'
  return undefined
}

/** The bonded non-observer members plus the leader: how many voters the group could have. */
function eligibleVoterCount(input: AutopilotInput): number {
  let eligible = 1 // the leader
  for (const [id, member] of input.members) if (id !== input.leader && !member.observer) eligible++
  return eligible
}

/** Promotes the most caught-up promotable learner, if there is one. */
function learnerPromotion(input: AutopilotInput): AutopilotChange | undefined {
  let best: string | undefined
  let bestMatch = -1
  for (const [id, member] of input.members) {
    if (member.observer || id === input.leader || input.voters.includes(id)) continue
    const peer = input.peers.get(id)
    if (peer === undefined || !isPromotable(input, peer)) continue
    // Ties go to the smaller id so that every run decides the same way.
    if (peer.match > bestMatch || (peer.match === bestMatch && best !== undefined && id < best)) {
      best = id
      bestMatch = peer.match
    }
  }
  if (best === undefined) return undefined
  return { kind: 'promote', peer: best, voters: [...input.voters, best] }
}

/** A learner fit to vote: it answered within `responsiveMs` and is caught up. */
function isPromotable(input: AutopilotInput, peer: AutopilotPeer): boolean {
  if (input.now - peer.lastResponseAt >= input.responsiveMs) return false
  // Caught up, and known to be: it acknowledged entries of this leader and keeps up.
  return peer.match !== 0 && peer.caughtUp
}

/**
 * Shrinks by the voter the group can best do without: one no longer bonded first, then the one
 * silent longest, then the least caught up. (Choosing by match alone could remove the one follower
 * still connected and leave the leader with a voter it cannot reach: no quorum.)
 */
function excessVoterRemoval(input: AutopilotInput): AutopilotChange | undefined {
  let worst: string | undefined
  let worstRank: readonly number[] | undefined
  for (const voter of input.voters) {
    if (voter === input.leader) continue
    const rank = retentionRank(input, voter)
    // The first candidate is the worst so far; ties go to the larger id, the same way in every run.
    const order = worstRank === undefined ? -1 : compareRanks(rank, worstRank)
    if (order < 0 || (order === 0 && voter > worst!)) {
      worst = voter
      worstRank = rank
    }
  }
  if (worst === undefined) return undefined
  return removal(input.voters, worst, 'excess')
}

/** How much the group needs `voter`, compared element by element: bonded, last answer, match. */
function retentionRank(input: AutopilotInput, voter: string): readonly number[] {
  const peer = input.peers.get(voter)
  return [
    input.members.has(voter) ? 1 : 0,
    peer?.lastResponseAt ?? Number.NEGATIVE_INFINITY,
    peer?.match ?? 0,
  ]
}

function removal(voters: readonly string[], peer: string, reason: RemovalReason): AutopilotChange {
  return { kind: 'remove', peer, reason, voters: voters.filter((v) => v !== peer) }
}

function compareRanks(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1
  return 0
}
