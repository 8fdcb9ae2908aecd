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

/** The largest odd number ≤ min(maxVoters, eligible), at least 1. */
export function targetVoterCount(eligible: number, maxVoters: number): number {
  const cap = Math.max(1, Math.min(maxVoters, eligible))
  return cap % 2 === 1 ? cap : cap - 1
}

export function nextMembershipChange(input: AutopilotInput): AutopilotChange | undefined {
  const { leader, voters, members, peers, now } = input
  const without = (peer: string) => voters.filter((v) => v !== peer)

  for (const voter of voters) {
    if (voter === leader) continue
    const member = members.get(voter)
    const lastResponseAt = peers.get(voter)?.lastResponseAt ?? Number.NEGATIVE_INFINITY
    if (member === undefined && now - lastResponseAt >= input.responsiveMs) {
      return { kind: 'remove', peer: voter, reason: 'departed', voters: without(voter) }
    }
    if (member?.observer === true) {
      return { kind: 'remove', peer: voter, reason: 'observer', voters: without(voter) }
    }
    if (now - lastResponseAt >= input.voterUnreachableMs) {
      return { kind: 'remove', peer: voter, reason: 'unreachable', voters: without(voter) }
    }
  }

  let eligible = 1 // the leader
  for (const [id, member] of members) if (id !== leader && !member.observer) eligible++
  const target = targetVoterCount(eligible, input.maxVoters)

  if (voters.length < target) {
    let best: string | undefined
    let bestMatch = -1
    for (const [id, member] of members) {
      if (member.observer || id === leader || voters.includes(id)) continue
      const peer = peers.get(id)
      if (peer === undefined || now - peer.lastResponseAt >= input.responsiveMs) continue
      // Caught up, and known to be: it acknowledged entries of this leader and keeps up.
      if (peer.match === 0 || !peer.caughtUp) continue
      // Ties go to the smaller id so that every run decides the same way.
      if (peer.match > bestMatch || (peer.match === bestMatch && best !== undefined && id < best)) {
        best = id
        bestMatch = peer.match
      }
    }
    if (best !== undefined) return { kind: 'promote', peer: best, voters: [...voters, best] }
    return undefined
  }

  if (voters.length > target && voters.length > 2) {
    // Shrink by the voter the group can best do without: one no longer bonded first, then the one
    // silent longest, then the least caught up. (Choosing by match alone could remove the one follower
    // still connected and leave the leader with a voter it cannot reach: no quorum.)
    let worst: string | undefined
    let worstRank: readonly number[] | undefined
    for (const voter of voters) {
      if (voter === leader) continue
      const peer = peers.get(voter)
      const rank = [
        members.has(voter) ? 1 : 0,
        peer?.lastResponseAt ?? Number.NEGATIVE_INFINITY,
        peer?.match ?? 0,
      ] as const
      const before =
        worstRank === undefined ||
        compareRanks(rank, worstRank) < 0 ||
        (compareRanks(rank, worstRank) === 0 && voter > worst!)
      if (before) {
        worst = voter
        worstRank = rank
      }
    }
    if (worst !== undefined) return { kind: 'remove', peer: worst, reason: 'excess', voters: without(worst) }
  }
  return undefined
}

function compareRanks(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1
  return 0
}
