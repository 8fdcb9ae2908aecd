import { concatBytes } from '../../primitives/bytes.ts'
import { type Codec, cborOf, decodeCanonical } from '../../primitives/codec.ts'
import type { Logger } from '../../transport/context.ts'
import type { Entry } from '../raft/types.ts'
import type { ApplyContext, StateMachine } from '../state-machine.ts'
import type { AppliedTerms } from './applied-terms.ts'
import { GroupFailedError } from './errors.ts'

/** Log payloads start with one byte: a user command, or the worker's own (e.g. "everyone snapshot here"). */
const PAYLOAD_USER = 0
const PAYLOAD_INTERNAL = 1
const USER_PREFIX = new Uint8Array([PAYLOAD_USER])
const INTERNAL_PREFIX = new Uint8Array([PAYLOAD_INTERNAL])

/** The worker's internal log commands, as they are applied. */
export interface InternalCommands {
  /** "Everyone snapshot at `index` for `requester`": a member catching up asked for a snapshot. */
  snapshotMarker(index: number, requester: string): void
}

/**
 * The state machine as the log sees it: what a proposal's payload holds, and how committed entries
 * reach the state machine (runs of user commands as batches, the worker's own commands in between).
 *
 * Gotchas:
 * - A command that fails to decode, or whose `apply` throws, is refused: recorded in the terms (its
 *   caller gets CommandRefusedError) and skipped, and the commands after it apply as usual. Every
 *   replica applies the same bytes, so a deterministic state machine refuses it on all of them,
 *   however the commits were split into batches.
 * - `applyBatch` must not throw: it cannot say how far it got, so the replica's state is unknown and
 *   the member stops (GroupFailedError) rather than go on from a state the others may not share.
 * - The state machine changes only through this applier (commands, `restore`, `reset`): `snapshot()`
 *   hands out the bytes it took last while none of those happened since.
 */
export class Applier<C, Q, R> {
  readonly stateMachine: StateMachine<C, Q, R>
  /** The state before any command, to start over after rejoining a rival cluster. */
  readonly #initialState: Uint8Array
  readonly #command: Codec<C>
  readonly #log: Logger
  /** The last snapshot taken, while the state is still the one it encodes. */
  #taken: Uint8Array | undefined

  constructor(stateMachine: StateMachine<C, Q, R>, log: Logger) {
    this.stateMachine = stateMachine
    this.#initialState = stateMachine.snapshot()
    this.#command = stateMachine.codecs?.command ?? cborOf<C>()
    this.#log = log
  }

  /** The log payload of a user command. */
  userPayload(command: C): Uint8Array {
    return concatBytes(USER_PREFIX, this.#command.encode(command))
  }

  /** The log payload of one of the worker's own commands. */
  internalPayload(payload: Uint8Array): Uint8Array {
    return concatBytes(INTERNAL_PREFIX, payload)
  }

  /** Puts the state machine back where it was before any command. */
  reset(): void {
    this.restore(this.#initialState)
  }

  /** Replaces the whole state with a snapshot's. */
  restore(data: Uint8Array): void {
    this.#taken = undefined
    this.stateMachine.restore(data)
  }

  /**
   * The state machine's snapshot now, taken once per state. Log entries other than user commands
   * (snapshot markers, no-ops, configuration changes) leave the state as it was: when several members
   * catch up while no command is applied (dashboards opening on a quiet collection), each marker they
   * ask for is served with the same bytes, not with a copy (and a hash) of the whole state each.
   */
  snapshot(): Uint8Array {
    this.#taken ??= this.stateMachine.snapshot()
    return this.#taken
  }

  /**
   * Applies committed entries in order, recording each one's term (and its command's result) in
   * `terms`: a waiting proposal learns from them whether its own entry got the slot.
   */
  apply(entries: readonly Entry[], terms: AppliedTerms, internal: InternalCommands): void {
    let run: C[] = []
    let ctxs: ApplyContext[] = []
    const flush = () => {
      if (run.length === 0) return
      this.#applyRun(run, ctxs, terms)
      run = []
      ctxs = []
    }
    for (const e of entries) {
      terms.set(e.index, e.term)
      if (e.kind !== 'command') continue
      if (e.data[0] === PAYLOAD_USER) {
        let command: C
        try {
          command = this.#command.decode(e.data.subarray(1))
        } catch (err) {
          const reason = `it does not decode: ${(err as Error).message}`
          this.#log('command at %d refused: %s', e.index, reason)
          terms.refuse(e.index, reason)
          continue
        }
        run.push(command)
        ctxs.push({ index: e.index, term: e.term })
      } else {
        flush()
        this.#applyInternal(e, internal)
      }
    }
    flush()
  }

  #applyRun(run: C[], ctxs: ApplyContext[], terms: AppliedTerms): void {
    const sm = this.stateMachine
    this.#taken = undefined
    if (sm.applyBatch) {
      let results: unknown[] | undefined
      try {
        results = sm.applyBatch(run, ctxs)
      } catch (err) {
        throw new GroupFailedError(
          `the state machine's applyBatch threw on the commands at ${ctxs[0]!.index}..${ctxs.at(-1)!.index}, ` +
            `so this replica's state is unknown: ${(err as Error).message}`,
          { cause: err },
        )
      }
      if (results === undefined) return
      // A CommandRefusal among them is kept as it is: the terms read it as a refusal.
      for (let i = 0; i < ctxs.length; i++) terms.setResult(ctxs[i]!.index, results[i])
      return
    }
    for (let i = 0; i < run.length; i++) {
      const index = ctxs[i]!.index
      let result: unknown
      try {
        result = sm.apply(run[i]!, ctxs[i]!)
      } catch (err) {
        const reason = `apply threw: ${(err as Error).message}`
        this.#log('command at %d refused: %s', index, reason)
        terms.refuse(index, reason)
        continue
      }
      if (result !== undefined) terms.setResult(index, result)
    }
  }

  /** Internal log commands; today only "everyone snapshot at this index for `requester`". */
  #applyInternal(e: Entry & { kind: 'command' }, internal: InternalCommands): void {
    let decoded: unknown
    try {
      decoded = decodeCanonical(e.data.subarray(1))
    } catch {
      return
    }
    if (!Array.isArray(decoded) || decoded[0] !== 'snapshot' || typeof decoded[1] !== 'string') return
    internal.snapshotMarker(e.index, decoded[1])
  }
}
