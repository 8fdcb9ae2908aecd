import { delay } from '../primitives/abort.ts'
import type { Timers } from '../primitives/time.ts'
import { CloseCode } from '../transport/close.ts'
import { InboundLimit } from '../transport/limits.ts'
import type { Link } from '../transport/link.ts'
import type { Probation } from './probation.ts'

const noop = () => {}

/**
 * The limits a producer checks before anything else when a consumer subscribes: subscriptions per
 * peer and per remote host, and the turns of peers on probation. A refusal goes through `refuse`.
 */
export class SubscriptionLimits {
  readonly #subscriptions: InboundLimit
  /** Peers found lagging: no grace, and spaced re-subscriptions. */
  readonly #probation: Probation
  readonly #handshakeTimeoutMs: number
  readonly #now: () => number
  readonly #timers: Timers
  readonly #refuse: (link: Link, peerId: string, code: number, reason: string) => void

  constructor(
    options: {
      perPeer: number
      perHost: number
      probation: Probation
      handshakeTimeoutMs: number
      now: () => number
      timers: Timers
    },
    refuse: (link: Link, peerId: string, code: number, reason: string) => void,
  ) {
    this.#subscriptions = new InboundLimit({ perPeer: options.perPeer, perHost: options.perHost })
    this.#probation = options.probation
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs
    this.#now = options.now
    this.#timers = options.timers
    this.#refuse = refuse
  }

  /**
   * Counts the subscription against its peer's and its host's limits until its link closes; refuses
   * it with TooManyStreams when either is reached.
   */
  count(link: Link, peerId: string): boolean {
    const slot = this.#subscriptions.enter(peerId, link.connection.remoteAddr)
    if (!slot.ok) {
      const from = slot.reached === 'host' ? 'host' : 'peer'
      this.#refuse(link, peerId, CloseCode.TooManyStreams, `too many subscriptions from this ${from}`)
      return false
    }
    link.closed.then(slot.release)
    return true
  }

  /**
   * Waits for the turn of a peer on probation. The link is held (up to the handshake timeout) rather
   * than refused at once, so a peer that re-subscribes in a loop waits instead of spinning through
   * handshakes. False when the turn did not come in that time (refused with TooSlow) or the link
   * closed meanwhile.
   */
  async awaitTurn(link: Link, peerId: string): Promise<boolean> {
    let wait = this.#probation.admit(peerId, this.#now())
    if (wait === 0) return true
    const stop = new AbortController()
    link.closed.then(() => stop.abort(), noop)
    await delay(Math.min(wait, this.#handshakeTimeoutMs), stop.signal, this.#timers).catch(noop)
    stop.abort()
    if (link.isClosed) return false
    wait = this.#probation.admit(peerId, this.#now())
    if (wait === 0) return true
    this.#refuse(link, peerId, CloseCode.StreamTooSlow, `lagging: next subscription in ${wait} ms`)
    return false
  }
}
