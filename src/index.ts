/**
 * mosaik: self-organizing, leaderless distributed systems for Node and browsers, on js-libp2p.
 *
 * Four primitives: discovery (signed peer catalogs), streams (typed pub/sub), groups (Raft-replicated
 * state machines) and collections (replicated Map, Vec, Set, Cell, Once and PriorityQueue), with
 * tickets (JWT and custom credentials in peer entries) for admission control.
 *
 * @packageDocumentation
 */

export * from './collections/index.ts'
export { type Catalog, type PeerInfo, type RejectReason, rttBelow } from './discovery/catalog.ts'
export type { Departure } from './discovery/departure.ts'
export {
  type BootstrapState,
  type BootstrapStatus,
  DifferentNetworkError,
  Discovery,
  type DiscoveryConditions,
  type DiscoveryConfig,
  type DiscoveryEvents,
  type DiscoveryOptions,
  type DiscoveryStats,
  SyncError,
  UnsupportedVersionError,
} from './discovery/discovery.ts'
export {
  DEFAULT_ENTRY_LIMITS,
  DigestSet,
  EntryLimitError,
  type EntryLimits,
  type EntryVersion,
  PeerEntry,
  SignedPeerEntry,
  UnsupportedEntryVersionError,
} from './discovery/entry.ts'
export * from './groups/index.ts'
export { type Libp2pExtensions, Network, type NetworkOptions } from './network/network.ts'
export { type Platform, registerPlatform, type TransportFactory } from './network/platform.ts'
export type { AbortOptions } from './primitives/abort.ts'
export { type Codec, cbor, cborOf, codecs, decodeCanonical, encodeCanonical } from './primitives/codec.ts'
export {
  Digest,
  type DigestLike,
  type GroupId,
  type NetworkId,
  type StoreId,
  type StreamId,
  type Tag,
} from './primitives/digest.ts'
export {
  AbortError,
  ClosedError,
  DataDirLockedError,
  DecodeError,
  FrameTooLargeError,
  FullError,
  InvalidArgumentError,
  InvalidSignatureError,
  MosaikError,
  OfflineError,
  TimeoutError,
  UnsupportedRuntimeError,
} from './primitives/errors.ts'
export * from './streams/index.ts'
export {
  type AsymmetricAlgorithm,
  Expiration,
  type HmacAlgorithm,
  InvalidTicketError,
  type JsonValue,
  JWT_TICKET_CLASS,
  Jwt,
  type JwtAlgorithm,
  type JwtPolicy,
  JwtSigningKey,
  JwtTicketBuilder,
  JwtVerifyingKey,
  Ticket,
  type TicketErrorCode,
  type TicketValidator,
  validateTicket,
  validateTickets,
} from './tickets/index.ts'
export { CloseCode, closeCodeName, type LinkClose, LinkClosedError } from './transport/close.ts'
