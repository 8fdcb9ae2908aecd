export { type ConsensusOptions, consensusConfig } from './config.ts'
export { Group, GroupConditions } from './group.ts'
export { Groups, type GroupsOptions, type JoinOptions } from './groups.ts'
export { GroupKey } from './key.ts'
export { LeaderNotReadyError, NotLeaderError } from './raft/errors.ts'
export type { Preference, RaftStatus, Role } from './raft/types.ts'
export type { ApplyContext, StateMachine } from './state-machine.ts'
export type { HardState, LoadedLog, LogEntry, LogStore, SnapshotMeta } from './storage/log-store.ts'
export { MemoryLogStore } from './storage/memory.ts'
export {
  CommitUnknownError,
  type Consistency,
  GroupBusyError,
  GroupDivergedError,
  GroupTerminatedError,
  type IndexRange,
  type QueryResult,
} from './worker.ts'
