import type { GroupId } from '../../primitives/digest.ts'
import type { Logger } from '../../transport/context.ts'
import type { ConsensusConfig } from '../config.ts'
import type { Preference } from '../raft/types.ts'
import type { StateMachine } from '../state-machine.ts'
import type { LogStore, StorageError } from '../storage/log-store.ts'
import type { GroupDivergedError, GroupFailedError } from './errors.ts'
import type { Runtime } from './runtime.ts'
import type { GroupTransport } from './transport.ts'

/**
 * Why a member stopped taking part for good (`Group.when.halted()`): its cluster lost to a rival
 * holding committed commands here, its log store failed, or its worker failed otherwise.
 */
export type GroupHaltError = GroupDivergedError | StorageError | GroupFailedError

/** Consistency of a query: 'weak' reads the local replica; 'strong' is linearizable (ReadIndex). */
export type Consistency = 'weak' | 'strong'

/** A query result with the committed index it was read at. */
export interface QueryResult<R> {
  /** What the state machine's `query` returned. */
  result: R
  /** The committed index the replica had applied when it answered. */
  at: number
}

export interface WorkerInit<C, Q, R> {
  /** This node's peer id. */
  id: string
  groupId: GroupId
  stateMachine: StateMachine<C, Q, R>
  store: LogStore
  consensus: ConsensusConfig
  preference: Preference
  transport: GroupTransport
  runtime: Runtime
  log: Logger
  /** Called once if the worker halts (see GroupHaltError). */
  onHalt?: (error: GroupHaltError) => void
}
