import type { PeerInfo } from '../discovery/catalog.ts'
import type { StreamId } from '../primitives/digest.ts'
import type { LinkClose } from '../transport/close.ts'

/** The life of one subscription (a producer-consumer pair). */
export const ChannelState = {
  /** Handshaking, or (on a consumer) waiting to reconnect. */
  Connecting: 'connecting',
  /** Datums flow. */
  Connected: 'connected',
  /** Over; a consumer may open a new channel to the same producer later. */
  Terminated: 'terminated',
} as const
export type ChannelState = (typeof ChannelState)[keyof typeof ChannelState]

/** Traffic of one channel; `bytes` counts encoded datum bytes (not framing). */
export interface ChannelStats {
  /** Datums sent (producer side) or received (consumer side) over the channel. */
  readonly datums: number
  /** Their encoded bytes. */
  readonly bytes: number
  /** Milliseconds since the channel connected; undefined while it is not connected. */
  readonly uptime: number | undefined
}

/** A snapshot of one channel, as `producer.consumers()` and `consumer.producers()` list them. */
export interface ChannelInfo {
  /** The stream the channel carries. */
  readonly streamId: StreamId
  /** The peer id of the producing node. */
  readonly producerId: string
  /** The peer id of the consuming node. */
  readonly consumerId: string
  /** The remote peer as the local catalog knows it. */
  readonly peer: PeerInfo
  /** Where the channel stands: connecting, connected or terminated. */
  readonly state: ChannelState
  /** Traffic so far. */
  readonly stats: ChannelStats
  /** How the channel last closed, when it did. */
  readonly lastClose: LinkClose | undefined
}

/** The mutable side of a channel: state and counters, shared by producer and consumer channels. */
export class ChannelRecord {
  readonly streamId: StreamId
  readonly producerId: string
  readonly consumerId: string
  peer: PeerInfo
  state: ChannelState = ChannelState.Connecting
  datums = 0
  bytes = 0
  connectedAt: number | undefined
  lastClose: LinkClose | undefined

  constructor(streamId: StreamId, producerId: string, consumerId: string, peer: PeerInfo) {
    this.streamId = streamId
    this.producerId = producerId
    this.consumerId = consumerId
    this.peer = peer
  }

  get peerId(): string {
    return this.peer.id
  }

  info(now: number): ChannelInfo {
    return {
      streamId: this.streamId,
      producerId: this.producerId,
      consumerId: this.consumerId,
      peer: this.peer,
      state: this.state,
      stats: {
        datums: this.datums,
        bytes: this.bytes,
        uptime:
          this.state === ChannelState.Connected && this.connectedAt !== undefined
            ? now - this.connectedAt
            : undefined,
      },
      lastClose: this.lastClose,
    }
  }
}

/** A test on a peer catalog entry: what `require` predicates and `ChannelConditions` filters are. */
export type PeerPredicate = (peer: PeerInfo) => boolean

/** `require` as given (one predicate or several) → a list, AND-ed. */
export function predicates(require: PeerPredicate | readonly PeerPredicate[] | undefined): PeerPredicate[] {
  if (require === undefined) return []
  return typeof require === 'function' ? [require] : [...require]
}

/** True when every predicate holds; a predicate that throws counts as failing. */
export function passesAll(preds: readonly PeerPredicate[], peer: PeerInfo): boolean {
  try {
    for (const p of preds) if (!p(peer)) return false
    return true
  } catch {
    return false
  }
}
