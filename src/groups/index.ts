export { type ConsensusOptions, consensusConfig } from './config.ts'
export { Group, GroupConditions } from './group.ts'
export { Groups, type GroupsOptions, type JoinOptions } from './groups.ts'
export { GroupKey } from './key.ts'
export { LeaderNotReadyError, NotLeaderError } from './raft/errors.ts'
export type { Preference, RaftStatus, Role } from './raft/types.ts'
export type { ApplyContext, StateMachine } from './state-machine.ts'
export {
  CorruptLogError,
  type HardState,
  type LoadedLog,
  type LogEntry,
  type LogStore,
  type SnapshotMeta,
  StorageError,
} from './storage/log-store.ts'
export { MemoryLogStore } from './storage/memory.ts'
export {
  CommandRefusedError,
  CommitUnknownError,
  type Consistency,
  GroupBusyError,
  GroupDivergedError,
  GroupFailedError,
  type GroupHaltError,
  GroupTerminatedError,
  type IndexRange,
  type QueryResult,
  type RefusedCommand,
} from './worker.ts'
