import { MosaikError } from '../../primitives/errors.ts'
import type { ClusterStanding } from '../raft/types.ts'

/**
 * The command was accepted by a leader but its commit was not observed: it may or may not take
 * effect. (An OfflineError, by contrast, means the command certainly did not take effect and can be
 * retried.)
 */
export class CommitUnknownError<T = unknown> extends MosaikError {
  /** The command (or commands) whose outcome is unknown. */
  readonly value: T
  constructor(value: T, message: string, options?: ErrorOptions) {
    super('COMMIT_UNKNOWN', message, options)
    this.value = value
  }

  /** For commands still open when their member stopped because of `cause`. @internal */
  static stopped<T>(commands: T, cause: Error): CommitUnknownError<T> {
    return new CommitUnknownError(
      commands,
      `this member stopped before the commit was seen: ${cause.message}`,
      {
        cause,
      },
    )
  }
}

/** A command the state machine refused: where it sits in the log, and why. */
export interface RefusedCommand {
  /** The log index of the command. */
  readonly index: number
  /** Why the state machine refused it (it did not decode, or `apply` threw, and what it said). */
  readonly reason: string
}

/**
 * The group committed the command, but the state machine refused it: its bytes did not decode, or
 * `apply` threw. Every replica applies the same bytes, so a deterministic state machine refuses it on
 * all of them and it took no effect (beyond what `apply` changed before it threw). Retrying the same
 * command is refused the same way. `value` holds the commands; `refused` says which, and why.
 */
export class CommandRefusedError<T = unknown> extends MosaikError {
  /** The commands of the call. */
  readonly value: T
  /** The refused commands of the call. */
  readonly refused: readonly RefusedCommand[]
  constructor(value: T, refused: readonly RefusedCommand[]) {
    const what = refused.map((r) => `${r.index} (${r.reason})`).join(', ')
    super('COMMAND_REFUSED', `the state machine refused the command at ${what}`)
    this.value = value
    this.refused = refused
  }
}

/** The group handle (or its node) was closed. */
export class GroupTerminatedError extends MosaikError {
  constructor(message = 'the group was closed') {
    super('GROUP_TERMINATED', message)
  }
}

/**
 * This member's cluster met another cluster of the same group with a different history, and the other
 * one won; this member holds committed commands that joining the winner would discard. It stopped
 * taking part and kept its store for the operator: writes and strong reads fail with this error, weak
 * reads still show the local state. To rejoin, export what must be kept, then delete the group's data
 * (its dataDir) and restart the node.
 */
export class GroupDivergedError extends MosaikError {
  /** This member's cluster standing (cluster id, commit index...), for diagnosis. */
  readonly ours: unknown
  /** The winning cluster's standing, for diagnosis. */
  readonly theirs: unknown
  constructor(message: string, ours: unknown, theirs: unknown) {
    super('GROUP_DIVERGED', message)
    this.ours = ours
    this.theirs = theirs
  }

  /** For a member whose cluster lost to `theirs` while holding committed commands. @internal */
  static lostTo({ ours, theirs }: { ours: ClusterStanding; theirs: ClusterStanding }): GroupDivergedError {
    return new GroupDivergedError(
      `this member's cluster ${ours.clusterId} (commit ${ours.commit}) met cluster ${theirs.clusterId} ` +
        `(commit ${theirs.commit}) of the same group, which wins; joining it would discard commands committed ` +
        'here, so this member stopped and kept its data',
      ours,
      theirs,
    )
  }
}

/**
 * The leader refused a command or strong read forwarded by this member: too many of this member's
 * forwards already wait there (commands not yet committed, or reads not yet confirmed). Nothing was
 * queued, so the call is safe to retry once earlier ones finish; other members are not affected.
 * `value` holds the commands (or the query) refused.
 */
export class GroupBusyError<T = unknown> extends MosaikError {
  /** The commands (or the query) the leader refused. */
  readonly value: T
  constructor(value: T, message: string, options?: ErrorOptions) {
    super('GROUP_BUSY', message, options)
    this.value = value
  }
}

/**
 * This member's group worker failed with an error it cannot recover from while it runs (the `cause`:
 * a broken state-machine contract or a defect), so it stopped taking part, as it does when its log
 * store fails (that halt's error is the store's StorageError itself). The store keeps what reached it:
 * restart the node to rejoin from there.
 */
export class GroupFailedError extends MosaikError {
  constructor(message: string, options?: ErrorOptions) {
    super('GROUP_FAILED', message, options)
  }

  /** Wraps what stopped the worker. @internal */
  static of(cause: unknown): GroupFailedError {
    const what = cause instanceof Error ? cause.message : String(cause)
    return new GroupFailedError(`this member's group worker failed: ${what}`, { cause })
  }
}
