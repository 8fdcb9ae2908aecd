import { type Message, TopicValidatorResult } from '@libp2p/gossipsub'
import { delay } from '../primitives/abort.ts'
import { randomBytes } from '../primitives/bytes.ts'
import { decodeCanonical, encodeCanonical } from '../primitives/codec.ts'
import { DecodeError } from '../primitives/errors.ts'
import type { SignedPeerEntry } from './entry.ts'
import { type Ingestion, isPenalized } from './ingest.ts'
import type { DiscoveryState } from './state.ts'

const MSG_ENTRY = 0
const MSG_DEPARTURE = 1

/**
 * Mesh peers an announcement must have gone to before new neighbours stop triggering another one:
 * gossipsub forwards a message along mesh links only, so one published while the mesh was still
 * forming (a node that just joined, a chain of nodes) may reach only its first neighbour.
 */
const MESH_REACH = 3

/**
 * Gossip announcements: this node publishes its signed entry (and at the end its departure) on the
 * network's announce topic, and validates what others publish there before gossipsub forwards it.
 * A message is `[kind, body, nonce]`.
 */
export class Announcements {
  readonly #state: DiscoveryState
  readonly #ingestion: Ingestion
  readonly #topic: string
  #announceScheduled = false
  /** The local entry as last published to at least one subscriber (a new neighbour gets it by sync). */
  #announced: SignedPeerEntry | undefined
  /** How many mesh peers that publish went to. */
  #announcedReach = 0
  /** Our gossipsub mesh on the topic, followed through graft and prune events. */
  readonly #mesh = new Set<string>()

  constructor(state: DiscoveryState, ingestion: Ingestion) {
    this.#state = state
    this.#ingestion = ingestion
    this.#topic = `mosaik/${state.ctx.networkId.toString()}/announce/1`
  }

  /** Validates the topic and subscribes to it. */
  start(): void {
    const pubsub = this.#state.ctx.libp2p.services.pubsub
    pubsub.topicValidators.set(this.#topic, this.#validateAnnouncement)
    pubsub.subscribe(this.#topic)
    pubsub.addEventListener('subscription-change', this.#onSubscriptionChange)
    pubsub.addEventListener('gossipsub:graft', this.#onGraft)
    pubsub.addEventListener('gossipsub:prune', this.#onPrune)
  }

  stop(): void {
    const pubsub = this.#state.ctx.libp2p.services.pubsub
    pubsub.removeEventListener('subscription-change', this.#onSubscriptionChange)
    pubsub.removeEventListener('gossipsub:graft', this.#onGraft)
    pubsub.removeEventListener('gossipsub:prune', this.#onPrune)
  }

  /**
   * The peers gossip reaches now: subscribed to the announce topic, with this node's gossip stream to
   * them open. A subscription can arrive before that stream opens (on a connection made moments
   * ago), and gossipsub drops what it would send to a peer without one.
   */
  reachable(): Set<string> {
    const pubsub = this.#state.ctx.libp2p.services.pubsub
    // The GossipSub class keeps its open streams in `streamsOutbound`; its exported interface does
    // not declare them. Without them (another version), every subscriber counts as reached.
    const open = (pubsub as unknown as { streamsOutbound?: ReadonlyMap<string, unknown> }).streamsOutbound
    const out = new Set<string>()
    for (const peer of pubsub.getSubscribers(this.#topic)) {
      const id = peer.toString()
      if (open === undefined || open.has(id)) out.add(id)
    }
    return out
  }

  /** Coalesces announcement requests: many triggers within `delayMs` give one publish. */
  schedule(delayMs: number): void {
    const { scope } = this.#state
    if (this.#announceScheduled || this.#state.departed) return
    this.#announceScheduled = true
    scope.setTimeout(() => {
      this.#announceScheduled = false
      scope.spawn(this.#announce())
    }, delayMs)
  }

  async #announce(): Promise<void> {
    const { ctx, store, stats } = this.#state
    const pubsub = ctx.libp2p.services.pubsub
    // Publishing to nobody is a silent drop; the next neighbour to subscribe triggers an announcement.
    if (pubsub.getSubscribers(this.#topic).length === 0) return
    const local = store.local
    // The nonce makes each announcement a distinct gossip message: gossipsub refuses to publish the
    // same bytes twice, and a periodic re-announcement must go out.
    const reach = this.#mesh.size
    await pubsub.publish(this.#topic, encodeCanonical([MSG_ENTRY, local.toWire(), randomBytes(8)]))
    this.#announced = local
    this.#announcedReach = reach
    stats.announcementsSent++
  }

  /** Publishes a signed departure, then leaves the transport the departure window to flush it. */
  publishDeparture(departure: unknown): Promise<void> {
    const { config } = this.#state
    return this.#publishDeparture(departure).then(async () => {
      // Let the transport flush before the connections close.
      if (config.departureWindowMs > 0) await delay(config.departureWindowMs)
    })
  }

  /**
   * Publishes a departure the departed peer pushed to this node. Its gossip may not have reached
   * this node's mesh (it sends only on streams already open), and a pushed departure arrives before
   * the gossip copy, which would then not be forwarded. Every copy has the same bytes, so gossipsub
   * delivers one message however many nodes publish it; one that saw it already refuses to publish it
   * again, which is fine.
   */
  relayDeparture(departure: unknown): void {
    this.#publishDeparture(departure).catch((err: Error) =>
      this.#state.log('departure relay not published: %s', err.message),
    )
  }

  /**
   * A departure's gossip message. Unlike an announcement's, its nonce is fixed: the departed node and
   * the nodes relaying its departure publish the very same bytes, one gossip message.
   */
  #publishDeparture(departure: unknown): Promise<unknown> {
    return this.#state.ctx.libp2p.services.pubsub.publish(
      this.#topic,
      encodeCanonical([MSG_DEPARTURE, departure, DEPARTURE_NONCE]),
    )
  }

  readonly #onSubscriptionChange = (
    evt: CustomEvent<{
      peerId: { toString(): string }
      subscriptions: { topic: string; subscribe: boolean }[]
    }>,
  ): void => {
    if (evt.detail.subscriptions.some((s) => s.topic === this.#topic && s.subscribe)) this.#reannounce()
  }

  readonly #onGraft = (evt: CustomEvent<{ topic: string; peerId: { toString(): string } }>): void => {
    if (evt.detail.topic !== this.#topic) return
    this.#mesh.add(evt.detail.peerId.toString())
    this.#reannounce()
  }

  readonly #onPrune = (evt: CustomEvent<{ topic: string; peerId: { toString(): string } }>): void => {
    if (evt.detail.topic === this.#topic) this.#mesh.delete(evt.detail.peerId.toString())
  }

  /**
   * A new neighbour or mesh link announces our entry again only while the last announcement reached
   * fewer than MESH_REACH mesh peers: one that did is spreading by gossip, and a new neighbour gets it
   * in the catalog sync every new connection runs. Announcing to every new subscriber made a burst of
   * n joining nodes flood n² announcements.
   */
  #reannounce(): void {
    if (this.#announced === this.#state.store.local && this.#announcedReach >= MESH_REACH) return
    this.schedule(20)
  }

  /** Gossipsub validator: decode, verify and apply; invalid input is rejected (and penalized). */
  readonly #validateAnnouncement = async (
    from: { toString(): string },
    message: Message,
  ): Promise<TopicValidatorResult> => {
    const sender = from.toString()
    const ingestion = this.#ingestion
    if (message.data.length > this.#state.config.maxAnnouncementBytes)
      return ingestion.reject('oversized', sender)
    let kind: unknown
    let body: unknown
    try {
      const decoded = decodeCanonical(message.data)
      if (!Array.isArray(decoded) || decoded.length !== 3) throw new DecodeError('not an announcement')
      ;[kind, body] = decoded
    } catch {
      return ingestion.reject('malformed', sender)
    }
    if (kind === MSG_ENTRY) {
      const result = await ingestion.entry(body, true, sender, false)
      if (result.status === 'rejected') {
        return isPenalized(result.reason) ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
      }
      // Forward even entries we already have (e.g. from a sync): other nodes may not, and gossipsub's
      // seen-cache already stops each message from circulating twice.
      return TopicValidatorResult.Accept
    }
    if (kind === MSG_DEPARTURE) {
      const outcome = await ingestion.departure(body, true, sender)
      if (outcome === 'rejected') return TopicValidatorResult.Reject
      // Forward it also when it came here first another way (pushed by the departing node): gossip
      // is how it reaches the nodes that were not connected to it.
      return outcome === 'ignored' ? TopicValidatorResult.Ignore : TopicValidatorResult.Accept
    }
    return ingestion.reject('malformed', sender)
  }
}

const DEPARTURE_NONCE = new Uint8Array(8)
