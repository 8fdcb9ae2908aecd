import { type AbortOptions, linkSignals, raceSignal } from '../../primitives/abort.ts'
import { OfflineError } from '../../primitives/errors.ts'
import { Refusal, RequestRefusedError } from '../bond.ts'
import { isBounded } from '../raft/messages.ts'
import type { ReadRequestId, Ready } from '../raft/types.ts'
import { GroupBusyError } from './errors.ts'
import { notLeader, Req, SELF, type WorkerHost } from './host.ts'

interface PendingRead {
  resolve(index: number): void
  /** Leadership was lost before the read was confirmed. */
  drop(): void
}

/**
 * Strong reads (ReadIndex): the leader's commit index, confirmed by a quorum, becomes the read point;
 * the query runs once the local replica has applied it. A read rides through failover: while no
 * leader is known, or when the leader lost its leadership before confirming, it waits and tries
 * again (reads are idempotent) until the query timeout.
 */
export class StrongReads {
  readonly #host: WorkerHost
  readonly #pending = new Map<string, PendingRead>()
  /** Reads each member has in flight at this leader. */
  readonly #served = new Map<string, number>()
  #nextId = 0

  constructor(host: WorkerHost) {
    this.#host = host
  }

  /** Resolves once the local replica can answer linearizably; rejects with OfflineError on timeout. */
  async readPoint(what: unknown, options: AbortOptions = {}): Promise<void> {
    const host = this.#host
    const deadline = host.rt.timeout(host.config.queryTimeoutMs)
    const linked = linkSignals(options.signal, deadline.signal)
    const signal = linked.signal
    try {
      while (true) {
        const index = await this.#readIndex(what, signal)
        if (index !== undefined) {
          if (host.applied.value < index) {
            await this.#whileRunning(signal, (s) => host.applied.until((a) => a >= index, { signal: s }))
          }
          return
        }
        await host.pause(signal)
      }
    } catch (err) {
      if (host.stopped.aborted) host.assertRunning()
      if (options.signal?.aborted || !signal.aborted) throw err
      throw new OfflineError(
        what,
        `strong read failed: no leader confirmed a read point within ${host.config.queryTimeoutMs} ms`,
        {
          cause: err,
        },
      )
    } finally {
      linked.clear()
      deadline.clear()
    }
  }

  /**
   * Waits on the replica's applied index (`wait`) until `signal` aborts or the worker stops: a stopped
   * worker (halted, closed) applies nothing more. Linked only while a read waits for its replica,
   * which most reads never do.
   */
  async #whileRunning(signal: AbortSignal, wait: (signal: AbortSignal) => Promise<unknown>): Promise<void> {
    const linked = linkSignals(signal, this.#host.stopped)
    try {
      await wait(linked.signal)
    } finally {
      linked.clear()
    }
  }

  /** Hands the core's verdicts on reads to their callers. */
  onReady(rd: Ready): void {
    for (const rs of rd.readStates) this.#pending.get(String(rs.requestId))?.resolve(rs.index)
    for (const id of rd.droppedReads) this.#pending.get(String(id))?.drop()
  }

  /**
   * A follower asks for a read point: only the leader answers, and to at most `maxForwardedReads`
   * reads of one member at a time (past that it refuses with BUSY rather than queue them).
   */
  async serve(peer: string): Promise<number> {
    const host = this.#host
    if (host.node.status().role !== 'leader') throw notLeader()
    const inFlight = this.#served.get(peer) ?? 0
    if (inFlight >= host.config.maxForwardedReads) {
      throw new RequestRefusedError(
        Refusal.Busy,
        `${inFlight} strong reads of this member are in flight (limit ${host.config.maxForwardedReads})`,
      )
    }
    this.#served.set(peer, inFlight + 1)
    const deadline = host.rt.timeout(host.config.queryTimeoutMs)
    try {
      const index = await this.#local(deadline.signal)
      if (index === undefined) throw notLeader()
      return index
    } finally {
      deadline.clear()
      const left = (this.#served.get(peer) ?? 1) - 1
      if (left > 0) this.#served.set(peer, left)
      else this.#served.delete(peer)
    }
  }

  /** Drops every read in flight; their callers try again and meet the reason the worker stopped. */
  dropAll(): void {
    for (const r of this.#pending.values()) r.drop()
    this.#pending.clear()
  }

  /** A read point, or undefined when this try failed in a way worth retrying. */
  async #readIndex(what: unknown, signal: AbortSignal): Promise<number | undefined> {
    const host = this.#host
    const route = await host.route(signal)
    if (route === SELF) return this.#local(signal)
    try {
      const reply = await raceSignal(
        host.transport.request(route, Req.ReadIndex, null, host.config.queryTimeoutMs),
        signal,
      )
      return typeof reply === 'number' && isBounded(reply) ? reply : undefined
    } catch (err) {
      if (signal.aborted) throw err
      if (err instanceof RequestRefusedError && err.refusal === Refusal.Busy) {
        throw new GroupBusyError(what, `the leader refused the strong read: ${err.message}`, { cause: err })
      }
      host.log('read index from %s failed: %s', route, (err as Error).message)
      return undefined
    }
  }

  /** ReadIndex on this node as leader; undefined when it lost leadership before confirming. */
  async #local(signal: AbortSignal): Promise<number | undefined> {
    const host = this.#host
    while (true) {
      const id = `r${this.#nextId++}`
      const result = host.node.readIndex(id as ReadRequestId, host.rt.now())
      if (result.ok) {
        const { promise, resolve } = Promise.withResolvers<number | undefined>()
        this.#pending.set(id, { resolve, drop: () => resolve(undefined) })
        host.kick()
        return raceSignal(promise, signal).finally(() => this.#pending.delete(id))
      }
      if (result.error.code !== 'LEADER_NOT_READY') return undefined
      // A new leader must commit an entry of its term before it may serve reads: wait for it.
      await this.#whileRunning(signal, (s) => host.applied.changed({ signal: s }))
    }
  }
}
