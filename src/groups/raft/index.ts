/**
 * The IO-less Raft core of mosaik groups. `RaftNode` is driven by the group worker; see its
 * documentation for the Ready/advance contract.
 */
export {
  type AutopilotChange,
  type AutopilotInput,
  nextMembershipChange,
  targetVoterCount,
} from './autopilot.ts'
export { compareStanding } from './clusters.ts'
export { CatchUpMismatchError, LeaderNotReadyError, NotLeaderError, RaftContractError } from './errors.ts'
export { isBounded, MAX_TERM_LEAP, MAX_TERM_OR_INDEX, parseEntry, parseMessage } from './messages.ts'
export { DEFAULT_TIMING, RaftNode } from './raft.ts'
export type * from './types.ts'
