/**
 * Quorum arithmetic over a voter set, in one place (after etcd's quorum package). Quorum is always a
 * majority of the voter set in force, never of the members bonded right now.
 */

import type { VoteAnswer } from './types.ts'

/** The smallest majority of `voters` voters. */
export function majority(voters: number): number {
  return Math.floor(voters / 2) + 1
}

/**
 * The greatest value a majority of voters has reached, given each voter's value (a match index for the
 * commit index, an acknowledged round for ReadIndex). `values` is sorted in place; it holds one value
 * per voter.
 */
export function quorumValue(values: number[]): number {
  const n = values.length
  if (n === 0) return 0
  // Insertion sort, descending: voter sets are small (at most maxVoters), and Array.prototype.sort
  // allocates on every call, which the leader makes on every acknowledgement.
  for (let i = 1; i < n; i++) {
    const v = values[i]!
    let j = i - 1
    while (j >= 0 && values[j]! < v) {
      values[j + 1] = values[j]!
      j--
    }
    values[j + 1] = v
  }
  return values[majority(n) - 1]!
}

export type VoteResult = 'won' | 'lost' | 'pending'

/**
 * Abstention made safe. A voter answers grant (equal logs), abstain (its log is behind) or deny (its
 * log is ahead); a grant and an abstention are both recorded as its vote for the term. The candidate
 * wins when
 *   (1) grants + abstains ≥ ⌊voters/2⌋ + 1, and
 *   (2) grants > denials.
 * Why this is at least as strict as Raft: an abstainer's log is behind the candidate's, so Raft
 * would have counted it as a grant; (1) is therefore exactly Raft's majority, over voters that each
 * recorded a vote for this candidate in this term and so back no other: two candidates cannot both
 * win a term (two majorities of one voter set intersect), and the winner's log is at least as
 * up-to-date as a majority's, so it holds every committed entry. (2) only adds a refusal: it prefers
 * the most up-to-date candidate (a denier is ahead and should win instead), as mosaik intends.
 * When every voter answers, (1) and (2) together are exactly "grants ≥ ⌊(voters − abstains)/2⌋ + 1";
 * unlike that formula they do not count a dead voter as a denial, so a cluster that lost its leader
 * under load (survivors' logs unequal) can still elect the most up-to-date survivor.
 *
 * Answers from non-voters are not counted. 'lost' means the election can no longer be won even if
 * every voter yet to answer grants.
 */
export function tallyVotes(voters: readonly string[], votes: ReadonlyMap<string, VoteAnswer>): VoteResult {
  let grants = 0
  let abstains = 0
  let denials = 0
  for (const voter of voters) {
    const answer = votes.get(voter)
    if (answer === 'grant') grants++
    else if (answer === 'abstain') abstains++
    else if (answer === 'deny') denials++
  }
  const needed = majority(voters.length)
  if (grants + abstains >= needed && grants > denials) return 'won'
  // The best that can still happen: every voter yet to answer grants.
  const unanswered = voters.length - grants - abstains - denials
  if (grants + unanswered + abstains < needed || grants + unanswered <= denials) return 'lost'
  return 'pending'
}

/** CheckQuorum: a majority of voters (the leader included, by `isActive`) was heard from recently. */
export function quorumActive(voters: readonly string[], isActive: (voter: string) => boolean): boolean {
  let active = 0
  for (const voter of voters) if (isActive(voter)) active++
  return active >= majority(voters.length)
}
