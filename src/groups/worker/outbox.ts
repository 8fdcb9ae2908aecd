import type { AppendMessage, Message } from '../raft/types.ts'

/**
 * The worker's outgoing Raft messages, with one economy: a quiet commit notice (an empty append that
 * only moves a follower's commit index, and wants no answer) waits one macrotask before it leaves.
 *
 * Why: a writer awaiting each command in turn makes the leader send, per commit, an append to each
 * follower, receive their answers, then a notice of the new commit index to each. The next command's
 * append follows within microseconds and carries that commit index anyway, so the notice only costs
 * both sides an encryption, a frame and a decode, on the writer's critical path. Held back, it is
 * dropped when a later append to the same follower overtakes it, and sent when none does: when the
 * writes stop, the follower learns the commit index one macrotask later than it would have.
 *
 * Gotchas:
 * - Only quiet notices wait. An append with entries, a probe, a read round (ReadIndex confirmation)
 *   or an answer leaves at once; when one goes to a follower with a notice held, a later append with
 *   a commit index at least as high replaces the notice, anything else is sent after it, so each
 *   follower still receives the leader's messages in the order the core produced them.
 * - A follower that forwarded commands still awaiting commit waits for the notice to apply them and
 *   answer its caller: `urgent` says so, and its notices leave at once.
 * - Dropping a notice is as safe as losing it on the wire, which Raft tolerates; delaying it is a
 *   slower network.
 */
export class RaftOutbox {
  readonly #transmit: (m: Message) => void
  readonly #macrotask: (fn: () => void) => void
  readonly #urgent: (follower: string) => boolean
  readonly #held = new Map<string, AppendMessage>()
  #flushQueued = false

  constructor(options: {
    transmit: (m: Message) => void
    macrotask: (fn: () => void) => void
    /** Whether `follower` waits for the commit index (its notices are not held back). */
    urgent: (follower: string) => boolean
  }) {
    this.#transmit = options.transmit
    this.#macrotask = options.macrotask
    this.#urgent = options.urgent
  }

  send(m: Message): void {
    const held = this.#held.get(m.to)
    if (held !== undefined) {
      this.#held.delete(m.to)
      const supersedes = m.type === 'append' && m.term === held.term && m.commit >= held.commit
      if (!supersedes) this.#transmit(held)
    }
    if (m.type === 'append' && m.quiet && !this.#urgent(m.to)) {
      this.#held.set(m.to, m)
      if (!this.#flushQueued) {
        this.#flushQueued = true
        this.#macrotask(() => {
          this.#flushQueued = false
          this.flush()
        })
      }
      return
    }
    this.#transmit(m)
  }

  /** Sends every notice held back (the macrotask came, or the worker is closing). */
  flush(): void {
    if (this.#held.size === 0) return
    const held = [...this.#held.values()]
    this.#held.clear()
    for (const m of held) this.#transmit(m)
  }

  /** Forgets what is held (the worker halted or stopped: the notices' term is over for it). */
  clear(): void {
    this.#held.clear()
  }
}
