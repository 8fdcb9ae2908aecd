import type { Codec } from '../primitives/codec.ts'
import type { DigestLike } from '../primitives/digest.ts'

/** What `apply` learns about where a command sits in the log. */
export interface ApplyContext {
  /** The log index of this command. */
  readonly index: number
  /** The term in which the command was proposed. */
  readonly term: number
}

/**
 * A deterministic state machine replicated by a group: every member applies the same commands in the
 * same order and so reaches the same state.
 *
 * When to use: anything that must agree across nodes (counters, registries, order books, leases).
 *
 * Gotchas:
 * - `apply` must be deterministic: no clocks, no randomness, no I/O; the same commands must give the
 *   same state on every member.
 * - `snapshot()` must encode the state deterministically (the same state gives the same bytes), because
 *   a catching-up member may fetch one snapshot in chunks from several peers and check its hash.
 * - Snapshot bytes are handed over, not copied (they are the whole state): `snapshot()` returns bytes
 *   the machine never writes to again (a fresh encoding, or a view of bytes it only appends after), and
 *   `restore()` must not modify the bytes it is given. The log store keeps them too.
 * - The state changes only through `apply`, `applyBatch` and `restore`: a member hands out the snapshot
 *   it took last, without taking another, while none of them ran since.
 * - `signature` is part of the GroupId: change it whenever the command semantics change, so nodes
 *   running different versions never share a group.
 * - Any member can propose any bytes as a command (a secret admits it, not its commands): refuse what
 *   is not a command in the command codec's `decode` (throw), or in `apply` (throw). The command is
 *   then refused on every replica and its caller gets CommandRefusedError; the commands around it
 *   apply as usual. `applyBatch` must not throw: it cannot say how far it got, so a throw stops the
 *   member (GroupFailedError). Refuse bad commands before it runs.
 */
export interface StateMachine<Command, Query, Result> {
  /** Names the machine and its version; part of the GroupId. */
  readonly signature: DigestLike
  /** Codecs of commands, queries and results (canonical CBOR when omitted). */
  readonly codecs?: {
    /** The codec of commands, as they travel to the leader and sit in the log. */
    command?: Codec<Command>
    /** The codec of queries. */
    query?: Codec<Query>
    /** The codec of query results. */
    result?: Codec<Result>
  }
  /**
   * Applies one command. What it returns (if anything) is handed to the caller of `executeForResult`
   * on this node; it must be deterministic like the state itself. Throwing refuses the command (see
   * the gotchas).
   */
  apply(command: Command, ctx: ApplyContext): unknown
  /**
   * Applies a run of commands; the default applies them one by one. Returns one result per command.
   * Must not throw (see the gotchas).
   */
  applyBatch?(commands: readonly Command[], ctxs: readonly ApplyContext[]): unknown[] | undefined
  /** Reads the current state; must not modify it. */
  query(query: Query): Result
  /** The whole state as bytes, for compaction and for members that catch up. */
  snapshot(): Uint8Array
  /** Replaces the whole state with one produced by `snapshot()`. */
  restore(snapshot: Uint8Array): void
}

export type CommandOf<M> = M extends StateMachine<infer C, unknown, unknown> ? C : never
export type QueryOf<M> = M extends StateMachine<unknown, infer Q, unknown> ? Q : never
export type ResultOf<M> = M extends StateMachine<unknown, unknown, infer R> ? R : never

/**
 * A result of `applyBatch` that refuses its command, as a throw from `apply` does, for a batch that
 * refuses one command and applies the rest: the SDK's collections use it. @internal
 */
export class CommandRefusal {
  readonly reason: string
  constructor(reason: string) {
    this.reason = reason
  }
}
