import type { Watch } from '../../primitives/watch.ts'
import type { Logger } from '../../transport/context.ts'
import { Refusal, RequestRefusedError } from '../bond.ts'
import type { ConsensusConfig } from '../config.ts'
import type { RaftNode } from '../raft/raft.ts'
import type { RaftStatus } from '../raft/types.ts'
import type { LogStore } from '../storage/log-store.ts'
import type { Runtime } from './runtime.ts'
import type { GroupTransport } from './transport.ts'

/** Kinds of requests between members. */
export const Req = {
  Forward: 1,
  ReadIndex: 2,
  FetchEntries: 3,
  RequestSnapshot: 4,
  FetchSnapshot: 5,
} as const

/** The refusal a member that does not lead answers to writes and reads meant for the leader. */
export function notLeader(): RequestRefusedError {
  return new RequestRefusedError(Refusal.NotLeader, 'not the leader')
}

/** Where a call that needs the leader goes: this node, or a bonded leader. */
export const SELF = Symbol('self')
export type Route = typeof SELF | string

/** What the worker's parts (proposals, reads, catch-up) share. */
export interface WorkerHost {
  readonly id: string
  readonly node: RaftNode
  readonly rt: Runtime
  readonly transport: GroupTransport
  readonly config: ConsensusConfig
  readonly store: LogStore
  readonly applied: Watch<number>
  readonly status: Watch<RaftStatus>
  readonly log: Logger
  /** Runs the Ready loop soon. */
  kick(): void
  /** Resolves with the leader once one is known and reachable; rejects when `signal` aborts first. */
  route(signal: AbortSignal): Promise<Route>
  /** Waits for the status to change or a heartbeat period to pass: the pause between two tries. */
  pause(signal: AbortSignal): Promise<void>
  /** Aborts once the worker closes or halts: ends the waits that only its progress would end. */
  readonly stopped: AbortSignal
  /** Throws when the worker is closed or halted. */
  assertRunning(): void
  closedOrHalted(): boolean
  readonly stats: WorkerStats
}

/** Counters of what the worker did, for monitoring and tests. */
export interface WorkerStats {
  /** Snapshots installed from peers (this member was behind a compacted log). */
  snapshotsInstalled: number
  /** Snapshots offered to catching-up members (offers while the state holds share one snapshot). */
  snapshotsServed: number
  /**
   * Snapshots this member holds now for members fetching them: each keeps a copy of the state until
   * `snapshotTtlMs` after the last chunk fetched from it (offers of one state share one copy).
   */
  snapshotsHeld: number
  /** Committed entries pulled from peers in parallel while catching up. */
  entriesPulled: number
  /**
   * Catch-up requests (entries or snapshot chunks) refused because the member asking already had its
   * share under way here: answers being read, or waiting to be sent because it reads slowly.
   */
  catchUpRefused: number
  /** Log compactions (state-machine snapshots taken locally). */
  compactions: number
  /** Commands this member forwarded to the leader. */
  forwarded: number
  /**
   * Raft proposals this member made as leader. Commands that arrive in one turn (its own callers' and
   * forwarded ones) share one: `proposedCommands / proposals` is how well writes batch.
   */
  proposals: number
  /** Commands in those proposals. */
  proposedCommands: number
  /** Strong reads served (locally or through the leader). */
  strongReads: number
}

/** Stats of a worker that has done nothing yet. */
export function noWorkerStats(): WorkerStats {
  return {
    snapshotsInstalled: 0,
    snapshotsServed: 0,
    snapshotsHeld: 0,
    entriesPulled: 0,
    catchUpRefused: 0,
    compactions: 0,
    forwarded: 0,
    proposals: 0,
    proposedCommands: 0,
    strongReads: 0,
  }
}
