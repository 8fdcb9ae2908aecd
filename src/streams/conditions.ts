import type { PeerInfo } from '../discovery/catalog.ts'
import type { AbortOptions } from '../primitives/abort.ts'
import { Digest, type DigestLike } from '../primitives/digest.ts'
import type { Watch } from '../primitives/watch.ts'
import type { PeerPredicate } from './channel.ts'

/**
 * Awaitable conditions on the channels of a producer or consumer (mosaik's `When` and
 * `ChannelConditions`).
 *
 * A condition is a thenable: `await p.when.subscribed().minimumOf(2)`; `.wait({ signal })` is the same
 * with an AbortSignal. It is edge-triggered and re-armable: the first await resolves at once if the
 * condition holds, and every later await of the *same object* resolves on the next transition from
 * not met to met (so `while (true) { await cond; ... }` runs once per transition). A fresh builder
 * (`when.subscribed()` again) starts over. `isMet` reads the level without waiting.
 *
 * Gotcha: being thenable, a condition returned from an async function is awaited by it; return
 * `cond.isMet` or wrap it in an object if that is not what you want. Waits reject with ClosedError once
 * the producer or consumer closes.
 */
export abstract class Condition implements PromiseLike<void> {
  readonly #changes: Watch<number>
  #fired = false

  constructor(changes: Watch<number>) {
    this.#changes = changes
  }

  /** Whether the condition holds right now. */
  abstract get isMet(): boolean

  /**
   * Resolves when the condition becomes met: at once on the first wait if it already is, then on each
   * not-met → met transition.
   */
  async wait(options?: AbortOptions): Promise<void> {
    if (this.#fired && this.isMet) await this.#changes.until(() => !this.isMet, options)
    await this.#changes.until(() => this.isMet, options)
    this.#fired = true
  }

  // biome-ignore lint/suspicious/noThenProperty: conditions are awaitable by design
  then<R1 = void, R2 = never>(
    // biome-ignore lint/suspicious/noConfusingVoidType: the signature of PromiseLike<void>.then
    onFulfilled?: ((value: void) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.wait().then(onFulfilled, onRejected)
  }
}

/** What channel conditions are evaluated over: the peers of the connected channels. */
export interface ChannelSource {
  /** Bumped on every change of the connected set or of a connected peer's entry. */
  readonly changes: Watch<number>
  connectedPeers(): readonly PeerInfo[]
}

/**
 * "At least n connected channels whose peer passes every filter" (or, after `unmet()`, the opposite).
 * Builders return new conditions, so a base condition can be shared and refined.
 */
export class ChannelConditions extends Condition {
  readonly #source: ChannelSource
  readonly #min: number
  readonly #tags: readonly Digest[]
  readonly #predicates: readonly PeerPredicate[]
  readonly #inverse: boolean

  constructor(
    source: ChannelSource,
    min = 1,
    tags: readonly Digest[] = [],
    predicates: readonly PeerPredicate[] = [],
    inverse = false,
  ) {
    super(source.changes)
    this.#source = source
    this.#min = min
    this.#tags = tags
    this.#predicates = predicates
    this.#inverse = inverse
  }

  /** Requires at least `n` matching channels (`minimumOf(0)` always holds). */
  minimumOf(n: number): ChannelConditions {
    return new ChannelConditions(this.#source, n, this.#tags, this.#predicates, this.#inverse)
  }

  /** Counts only peers carrying every given tag. */
  withTags(...tags: (DigestLike | Iterable<DigestLike>)[]): ChannelConditions {
    const more = tags.flatMap((t) =>
      typeof t === 'string' || t instanceof Uint8Array || t instanceof Digest ? [t] : [...t],
    )
    return new ChannelConditions(
      this.#source,
      this.#min,
      [...this.#tags, ...more.map((t) => Digest.from(t))],
      this.#predicates,
      this.#inverse,
    )
  }

  /** Counts only peers for which `predicate` holds (AND-ed with the other filters). */
  withPredicate(predicate: PeerPredicate): ChannelConditions {
    return new ChannelConditions(
      this.#source,
      this.#min,
      this.#tags,
      [...this.#predicates, predicate],
      this.#inverse,
    )
  }

  /** The negation: met exactly when this condition is not. */
  unmet(): ChannelConditions {
    return new ChannelConditions(this.#source, this.#min, this.#tags, this.#predicates, !this.#inverse)
  }

  /** Connected channels whose peer passes the filters. */
  get count(): number {
    let n = 0
    for (const peer of this.#source.connectedPeers()) if (this.#matches(peer)) n++
    return n
  }

  get isMet(): boolean {
    return this.count >= this.#min !== this.#inverse
  }

  #matches(peer: PeerInfo): boolean {
    for (const tag of this.#tags) if (!peer.tags.has(tag)) return false
    for (const p of this.#predicates) if (!p(peer)) return false
    return true
  }
}

/** A condition over a boolean level (online / offline). */
class LevelCondition extends Condition {
  readonly #level: () => boolean

  constructor(changes: Watch<number>, level: () => boolean) {
    super(changes)
    this.#level = level
  }

  get isMet(): boolean {
    return this.#level()
  }
}

/**
 * The `when` of a producer or consumer. `online` follows the `onlineWhen` option: a producer sends
 * only while online (default: at least one consumer); a consumer is online at once by default.
 */
export class When {
  readonly #source: ChannelSource
  readonly #online: () => boolean

  constructor(source: ChannelSource, online: () => boolean) {
    this.#source = source
    this.#online = online
  }

  /** At least one connected channel; refine with `.minimumOf(n)`, `.withTags()`, `.withPredicate()`. */
  subscribed(): ChannelConditions {
    return new ChannelConditions(this.#source)
  }

  /** No connected channel (`subscribed().unmet()`). */
  unsubscribed(): ChannelConditions {
    return this.subscribed().unmet()
  }

  /** The handle's `onlineWhen` condition holds. */
  online(): Condition {
    return new LevelCondition(this.#source.changes, this.#online)
  }

  /** The handle's `onlineWhen` condition does not hold. */
  offline(): Condition {
    return new LevelCondition(this.#source.changes, () => !this.#online())
  }

  /** Whether the handle's `onlineWhen` condition holds now. */
  get isOnline(): boolean {
    return this.#online()
  }
}
