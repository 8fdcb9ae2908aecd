import { type AbortOptions, linkSignals, raceSignal } from '../../primitives/abort.ts'
import { DecodeError, FrameTooLargeError, OfflineError } from '../../primitives/errors.ts'
import { BondRequestError, Refusal, RequestRefusedError } from '../bond.ts'
import { isBounded } from '../raft/messages.ts'
import { AppliedTerms } from './applied-terms.ts'
import { CommandRefusedError, CommitUnknownError, GroupBusyError, GroupTerminatedError } from './errors.ts'
import { notLeader, Req, SELF, type WorkerHost } from './host.ts'

/** The index range a batch of commands was assigned. */
export interface IndexRange {
  /** The index of the first command. */
  first: number
  /** The index of the last command. */
  last: number
}

/** Where a leader put a batch: its range and the term it leads in. */
export type Assigned = IndexRange & { term: number }

const APPLIED_TERMS_KEPT = 65_536
/** Forwards of one turn share a request up to this many bytes (a Link frame holds 4 MiB). */
const FORWARD_BATCH_BYTES = 1024 * 1024

/** Forwards of one turn to one leader, sent as one request. */
interface ForwardBatch {
  encoded: Uint8Array[]
  bytes: number
  waiters: { offset: number; count: number; settle(reply: Assigned | Error): void }[]
}

interface Queued {
  encoded: Uint8Array[]
  /** Undefined: leadership moved before the flush, nothing was appended. */
  done(assigned: Assigned | undefined): void
}

/** What one member forwarded to this leader that is not applied here yet. */
interface Forwarded {
  commands: number
  bytes: number
  /** Accepted batches in the order they were appended: their last index and size. */
  batches: { last: number; commands: number; bytes: number }[]
}

interface PendingCommit extends Assigned {
  commands: unknown[]
  resolve(): void
  reject(err: Error): void
  /** When the proposal fails with CommitUnknownError (ms, runtime clock). */
  deadline: number
  cancel: () => void
}

/**
 * Proposals: from a caller's commands to a known outcome. On the leader, commands proposed in one
 * turn share one Raft proposal (one Ready, one disk write); on a follower they are forwarded to the
 * leader. A call waits for a leader (bounded by the forward timeout) instead of failing while an
 * election runs. It succeeds only once the entry applied at its last index carries the term it was
 * proposed in: that entry, and so the whole batch, is committed. Another term there means another
 * leader's entry took the slot (OfflineError: it never takes effect). An unknown term (the index was
 * covered by a snapshot, or nothing was seen in time) is CommitUnknownError, never success. A batch
 * committed with a command the state machine refused fails with CommandRefusedError (the others in it
 * took effect).
 */
export class Proposals {
  readonly terms = new AppliedTerms(APPLIED_TERMS_KEPT)
  readonly #host: WorkerHost
  readonly #queue: Queued[] = []
  #flushScheduled = false
  readonly #pending = new Set<PendingCommit>()
  /** Per member: forwarded commands appended (or about to be) by this leader and not applied yet. */
  readonly #forwarded = new Map<string, Forwarded>()
  /** Per leader: this turn's forwards, not sent yet. */
  readonly #outbox = new Map<string, ForwardBatch>()

  constructor(host: WorkerHost) {
    this.#host = host
  }

  /** Resolves once a leader assigned the commands their indices (not committed yet). */
  async assign(encoded: Uint8Array[], commands: unknown[], options: AbortOptions = {}): Promise<Assigned> {
    const host = this.#host
    this.terms.retain()
    // The common case first, with no timer or signal to set up: this node leads.
    if (host.status.value.role === 'leader' && !options.signal?.aborted) {
      const assigned = await this.#enqueue(encoded)
      if (assigned) return assigned
    }
    const deadline = host.rt.timeout(host.config.forwardTimeoutMs)
    const linked = linkSignals(options.signal, deadline.signal)
    const signal = linked.signal
    try {
      while (true) {
        const route = await host.route(signal)
        const assigned =
          route === SELF ? await this.#enqueue(encoded) : await this.#forward(route, encoded, commands)
        if (assigned) return assigned
        await host.pause(signal)
      }
    } catch (err) {
      // Only the wait for a leader ends in OfflineError: a forward that timed out together with the
      // deadline may have been appended (CommitUnknownError), whichever of the two fired first.
      if (options.signal?.aborted || !signal.aborted || err instanceof CommitUnknownError) throw err
      throw new OfflineError(
        commands,
        `no leader accepted the commands within ${host.config.forwardTimeoutMs} ms`,
        {
          cause: err,
        },
      )
    } finally {
      linked.clear()
      deadline.clear()
    }
  }

  /** Resolves once `assigned` is applied locally as proposed; see the class comment for failures. */
  awaitCommit(assigned: Assigned, commands: unknown[], options: AbortOptions = {}): Promise<void> {
    const host = this.#host
    if (host.applied.value >= assigned.last) {
      const outcome = this.#outcome(assigned, commands)
      return outcome ? Promise.reject(outcome) : Promise.resolve()
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    const pending: PendingCommit = {
      ...assigned,
      commands,
      resolve,
      reject,
      deadline: Number.POSITIVE_INFINITY,
      cancel: () => {},
    }
    this.#pending.add(pending)
    this.#expireAfter(pending, host.config.commitTimeoutMs)
    return raceSignal(promise, options.signal).finally(() => {
      pending.cancel()
      this.#pending.delete(pending)
    })
  }

  /** After entries were applied: settles the proposals whose last index is applied now. */
  settle(): void {
    const applied = this.#host.applied.value
    this.#releaseForwarded(applied)
    for (const p of this.#pending) {
      if (applied < p.last) continue
      this.#pending.delete(p)
      p.cancel()
      const outcome = this.#outcome(p, p.commands)
      if (outcome) p.reject(outcome)
      else p.resolve()
    }
  }

  /** This node went offline: proposals still waiting get the forward timeout, not the commit timeout. */
  offline(): void {
    for (const p of this.#pending) this.#expireAfter(p, this.#host.config.forwardTimeoutMs)
  }

  /** Fails every proposal (queued or waiting) with `error(commands)`. */
  failAll(error: (commands: unknown[]) => Error): void {
    for (const q of this.#queue.splice(0)) q.done(undefined)
    this.#forwarded.clear()
    for (const p of this.#pending) {
      p.cancel()
      p.reject(error(p.commands))
    }
    this.#pending.clear()
  }

  /**
   * A follower forwarded commands: propose them if this node leads, never forward them again. Each
   * member may have at most `maxForwardedCommands` (and `maxForwardedBytes`) forwarded commands
   * appended here and not yet applied; past that the forward is refused with BUSY and nothing is
   * appended, so a member that forwards faster than the group commits cannot grow this leader's log
   * without bound or crowd out the others.
   */
  async acceptForwarded(peer: string, body: unknown): Promise<[number, number, number]> {
    if (!Array.isArray(body) || body.length === 0 || !body.every((b) => b instanceof Uint8Array)) {
      throw new DecodeError('malformed forwarded commands')
    }
    const host = this.#host
    if (host.node.status().role !== 'leader') throw notLeader()
    const encoded = body as Uint8Array[]
    let bytes = 0
    for (const b of encoded) {
      // A command that could not reach the other members in one frame would stall their replication.
      if (b.byteLength - 1 > host.config.maxCommandBytes) {
        throw new RequestRefusedError(
          Refusal.TooLarge,
          `a command of ${b.byteLength - 1} bytes is over ${host.config.maxCommandBytes}`,
          host.config.maxCommandBytes,
        )
      }
      bytes += b.byteLength
    }
    let usage = this.#forwarded.get(peer)
    if (usage && usage.commands > 0) {
      const { maxForwardedCommands, maxForwardedBytes } = host.config
      if (usage.commands + encoded.length > maxForwardedCommands || usage.bytes + bytes > maxForwardedBytes) {
        throw new RequestRefusedError(
          Refusal.Busy,
          `${usage.commands} commands (${usage.bytes} bytes) forwarded by this member await commit ` +
            `(limits ${maxForwardedCommands} commands, ${maxForwardedBytes} bytes)`,
        )
      }
    }
    if (!usage) {
      usage = { commands: 0, bytes: 0, batches: [] }
      this.#forwarded.set(peer, usage)
    }
    // Counted before the flush, so forwards arriving in one turn see each other.
    usage.commands += encoded.length
    usage.bytes += bytes
    let assigned: Assigned | undefined
    try {
      assigned = await this.#enqueue(encoded)
    } finally {
      if (!assigned) this.#unreserve(peer, usage, encoded.length, bytes)
    }
    if (!assigned) throw notLeader()
    if (this.#forwarded.get(peer) === usage) {
      if (host.applied.value >= assigned.last) this.#unreserve(peer, usage, encoded.length, bytes)
      else usage.batches.push({ last: assigned.last, commands: encoded.length, bytes })
    }
    return [assigned.first, assigned.last, assigned.term]
  }

  /** Whether `peer` forwarded commands here that await commit (it waits for the commit index). */
  awaitsCommit(peer: string): boolean {
    return this.#forwarded.has(peer)
  }

  #unreserve(peer: string, usage: Forwarded, commands: number, bytes: number): void {
    if (this.#forwarded.get(peer) !== usage) return
    usage.commands -= commands
    usage.bytes -= bytes
    if (usage.commands <= 0 && usage.batches.length === 0) this.#forwarded.delete(peer)
  }

  /**
   * Forwarded batches at or below `applied` no longer count. Batches a new leader replaced are
   * released too once the log applied past them, so nothing stays counted forever.
   */
  #releaseForwarded(applied: number): void {
    for (const [peer, usage] of this.#forwarded) {
      let n = 0
      while (n < usage.batches.length && usage.batches[n]!.last <= applied) {
        usage.commands -= usage.batches[n]!.commands
        usage.bytes -= usage.batches[n]!.bytes
        n++
      }
      if (n > 0) usage.batches.splice(0, n)
      if (usage.commands <= 0 && usage.batches.length === 0) this.#forwarded.delete(peer)
    }
  }

  /**
   * The last snapshot installed or loaded: the committed entry at its index has its term. By Raft's
   * Log Matching, if that term is the proposal's and the proposal lies at or before it, the committed
   * log up to there is the log of the proposal's leader, which put the proposal where it said: it is
   * committed. A smaller term there means another leader's entries hold the slot.
   */
  snapshotAt(index: number, term: number): void {
    this.terms.clear()
    this.terms.set(index, term)
    this.#floor = { index, term }
  }

  #floor = { index: 0, term: 0 }

  #outcome(assigned: Assigned, commands: unknown[]): Error | undefined {
    let term = this.terms.get(assigned.last)
    if (term === undefined && assigned.last <= this.#floor.index) {
      if (this.#floor.term === assigned.term) return undefined
      if (this.#floor.term < assigned.term) term = this.#floor.term
    }
    if (term === assigned.term) return this.#refusals(assigned, commands)
    if (term === undefined) {
      return new CommitUnknownError(
        commands,
        `commands at ${assigned.first}..${assigned.last} were accepted, but a snapshot replaced that part of the log before their term could be checked`,
      )
    }
    return new OfflineError(commands, 'a new leader replaced the commands before they were committed')
  }

  /** The commands of `assigned` the state machine refused, as the caller's error; none: undefined. */
  #refusals(assigned: Assigned, commands: unknown[]): Error | undefined {
    let refused: { index: number; reason: string }[] | undefined
    for (let i = assigned.first; i <= assigned.last; i++) {
      const reason = this.terms.refusal(i)
      if (reason === undefined) continue
      refused ??= []
      refused.push({ index: i, reason })
    }
    return refused && new CommandRefusedError(commands, refused)
  }

  /** Queues for the next flush; all batches of one turn become one Raft proposal. */
  #enqueue(encoded: Uint8Array[]): Promise<Assigned | undefined> {
    const { promise, resolve } = Promise.withResolvers<Assigned | undefined>()
    this.#queue.push({ encoded, done: resolve })
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      queueMicrotask(() => this.#flush())
    }
    return promise
  }

  #flush(): void {
    this.#flushScheduled = false
    const batch = this.#queue.splice(0)
    if (batch.length === 0) return
    const all = batch.length === 1 ? batch[0]!.encoded : batch.flatMap((q) => q.encoded)
    const result = this.#host.node.propose(all, this.#host.rt.now())
    if (!result.ok) {
      // Leadership moved between queueing and flushing: nothing was appended; the callers try again.
      for (const q of batch) q.done(undefined)
      return
    }
    this.#host.stats.proposals++
    this.#host.stats.proposedCommands += all.length
    let next = result.first
    for (const q of batch) {
      const first = next
      next += q.encoded.length
      q.done({ first, last: next - 1, term: result.term })
    }
    this.#host.kick()
  }

  /** Forwards to the leader; undefined when it certainly did not append them (worth another try). */
  async #forward(leader: string, encoded: Uint8Array[], commands: unknown[]): Promise<Assigned | undefined> {
    this.#host.stats.forwarded += encoded.length
    const reply = await this.#forwardInBatch(leader, encoded)
    if (!(reply instanceof Error)) return reply
    const err = reply
    if (err instanceof RequestRefusedError) return this.#refused(err, encoded, commands)
    const stopped = this.#host.stopped
    if (stopped.aborted) {
      // This member stopped (closed, or halted by its disk) with the forward in flight, and closing its
      // bonds failed the request: what stopped it is the reason, as for the commands awaiting commit.
      const cause = stopped.reason as Error
      if (cause instanceof GroupTerminatedError || (err instanceof BondRequestError && !err.sent)) throw cause
      throw CommitUnknownError.stopped(commands, cause)
    }
    if (err instanceof BondRequestError && !err.sent) return undefined
    if (err instanceof DecodeError) throw new CommitUnknownError(commands, err.message)
    throw new CommitUnknownError(
      commands,
      `the commands were sent to the leader, which did not answer: ${err.message}`,
      { cause: err },
    )
  }

  /**
   * The leader appended none of the batch these commands travelled in. A leader that stepped down or
   * stopped is worth another try (undefined); a command over the leader's own size limit, which may
   * be lower than this member's, fails its caller alone: the others of the batch try again without it.
   */
  #refused(err: RequestRefusedError, encoded: Uint8Array[], commands: unknown[]): undefined {
    const why = `the leader refused the commands: ${err.message}`
    switch (err.refusal) {
      case Refusal.NotLeader:
      case Refusal.Stopped:
        return undefined
      case Refusal.Busy:
        throw new GroupBusyError(commands, why, { cause: err })
      case Refusal.TooLarge: {
        const limit = err.limit
        if (limit === undefined) throw new OfflineError(commands, why, { cause: err })
        let largest = 0
        for (const b of encoded) largest = Math.max(largest, b.byteLength - 1)
        if (largest > limit) throw new FrameTooLargeError(largest, limit, "command (the leader's limit)")
        return undefined
      }
      default:
        throw new OfflineError(commands, why, { cause: err })
    }
  }

  /**
   * Forwards made in one turn to the same leader travel as one request, so the leader proposes them
   * together: 100 callers on a follower cost one round of appends, not 100. Each caller gets its part
   * of the range; a refusal or a lost request is every caller's.
   */
  #forwardInBatch(leader: string, encoded: Uint8Array[]): Promise<Assigned | Error> {
    let bytes = 0
    for (const b of encoded) bytes += b.byteLength
    const { maxForwardedCommands, maxForwardedBytes } = this.#host.config
    let batch = this.#outbox.get(leader)
    // A batch stays within what the leader accepts from one member at a time (and within a frame).
    if (
      batch &&
      (batch.bytes + bytes > Math.min(FORWARD_BATCH_BYTES, maxForwardedBytes) ||
        batch.encoded.length + encoded.length > maxForwardedCommands)
    ) {
      this.#sendBatch(leader, batch)
      batch = undefined
    }
    if (!batch) {
      const fresh: ForwardBatch = { encoded: [], bytes: 0, waiters: [] }
      this.#outbox.set(leader, fresh)
      queueMicrotask(() => this.#sendBatch(leader, fresh))
      batch = fresh
    }
    const offset = batch.encoded.length
    for (const b of encoded) batch.encoded.push(b)
    batch.bytes += bytes
    const { promise, resolve } = Promise.withResolvers<Assigned | Error>()
    batch.waiters.push({ offset, count: encoded.length, settle: resolve })
    return promise
  }

  #sendBatch(leader: string, batch: ForwardBatch): void {
    if (this.#outbox.get(leader) !== batch) return // sent already (it grew past the byte limit)
    this.#outbox.delete(leader)
    const host = this.#host
    host.transport.request(leader, Req.Forward, batch.encoded, host.config.forwardTimeoutMs).then(
      (reply) => {
        const valid =
          Array.isArray(reply) &&
          reply.length === 3 &&
          reply.every((n) => isBounded(n)) &&
          reply[1] - reply[0] + 1 === batch.encoded.length
        for (const w of batch.waiters) {
          if (!valid) w.settle(new DecodeError('malformed forward acknowledgement from the leader'))
          else {
            const first = (reply[0] as number) + w.offset
            w.settle({ first, last: first + w.count - 1, term: reply[2] as number })
          }
        }
      },
      (err: Error) => {
        for (const w of batch.waiters) w.settle(err)
      },
    )
  }

  /** Fails a pending proposal with CommitUnknownError after `ms`, unless it is due sooner already. */
  #expireAfter(pending: PendingCommit, ms: number): void {
    const rt = this.#host.rt
    const deadline = rt.now() + ms
    if (deadline >= pending.deadline) return
    pending.deadline = deadline
    pending.cancel()
    pending.cancel = rt.setTimeout(() => {
      this.#pending.delete(pending)
      pending.reject(
        new CommitUnknownError(
          pending.commands,
          `commands at ${pending.first}..${pending.last} were accepted but their commit was not seen in time`,
        ),
      )
    }, ms)
  }
}
