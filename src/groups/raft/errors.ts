import { MosaikError } from '../../primitives/errors.ts'

/** Only the leader assigns log indices and confirms reads; `leader` is the hint to forward to. */
export class NotLeaderError extends MosaikError {
  /** The leader this node knows of, if any: where to forward. */
  readonly leader: string | undefined
  constructor(leader: string | undefined) {
    super(
      'NOT_LEADER',
      leader === undefined ? 'not the leader; no leader known' : `not the leader; ${leader} is`,
    )
    this.leader = leader
  }
}

/**
 * A new leader cannot confirm a read until it has committed an entry of its own term: before that its
 * commit index may be behind what earlier leaders committed.
 */
export class LeaderNotReadyError extends MosaikError {
  constructor() {
    super('LEADER_NOT_READY', 'the leader has not yet committed an entry of its term')
  }
}

/** The worker broke the core's contract (two Readies outstanding, compacting unapplied entries, ...). */
export class RaftContractError extends MosaikError {
  constructor(message: string) {
    super('RAFT_CONTRACT', message)
  }
}

/** Entries fed by a parallel catch-up contradict the committed log (they came from another cluster). */
export class CatchUpMismatchError extends MosaikError {
  readonly index: number
  constructor(index: number, message: string) {
    super('CATCH_UP_MISMATCH', message)
    this.index = index
  }
}
