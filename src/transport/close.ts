import { MosaikError } from '../primitives/errors.ts'

/**
 * Numbered reasons a link closes with, as in mosaik (application close codes). A peer always learns
 * why it was disconnected: the code travels in the last frame of the link.
 */
export const CloseCode = {
  /** The exchange completed normally. */
  Success: 200,
  /** The peer is closing the link on purpose (shutting down, or the handle closed). */
  GracefulShutdown: 204,
  /** The remote opened the link with a protocol this node does not serve. */
  InvalidProtocol: 100,
  /** The remote belongs to another network id. */
  DifferentNetwork: 101,
  /** This side cancelled the exchange (aborted or closed locally). */
  Cancelled: 102,
  /** The link ended without a close frame, or on an internal error. */
  UnexpectedClose: 103,
  /** The remote sent something malformed or out of order. */
  ProtocolViolation: 400,
  /** The remote is not in the catalog yet: sync catalogs, then retry. */
  UnknownPeer: 401,
  /** Not in mosaik: the exchange did not finish within its deadline. */
  Timeout: 408,
  /** Not in mosaik: a frame (or a whole exchange) over the configured maximum size. */
  FrameTooLarge: 413,
  /** Not in mosaik: the peer already has as many exchanges of this protocol open as it may. */
  TooManyStreams: 429,
  /** Not in mosaik: the remote speaks a protocol version this node does not. */
  UnsupportedVersion: 426,
  /** The consumer does not satisfy the producer's `require` predicates or tickets. */
  StreamNotAllowed: 10403,
  /** This node produces no stream with the requested id. */
  StreamNotFound: 10404,
  /** The consumer lagged behind the producer and was dropped (or must wait its turn). */
  StreamTooSlow: 10413,
  /** The producer has as many consumers as it accepts. */
  StreamNoCapacity: 10509,
  /** The group bond handshake was malformed or did not finish. */
  GroupInvalidHandshake: 30400,
  /** The peer does not satisfy the group's ticket validators. */
  GroupNotAllowed: 30403,
  /** This node is not a member of the requested group. */
  GroupNotFound: 30404,
  /** The remote does not prove it holds the group secret. */
  GroupInvalidProof: 30405,
  /** The bond handshake timed out, or the bonded peer missed its heartbeats. */
  GroupTimeout: 30408,
  /** The two peers already share a bond in this group (or the simultaneous one won). */
  GroupAlreadyBonded: 30429,
} as const

export type CloseCodeName = keyof typeof CloseCode
export type CloseCodeValue = (typeof CloseCode)[CloseCodeName]

const names = new Map<number, string>(Object.entries(CloseCode).map(([k, v]) => [v, k]))

/** The name of a close code, or `Unknown(<n>)`. */
export function closeCodeName(code: number): string {
  return names.get(code) ?? `Unknown(${code})`
}

/** How a link ended: the code, a human-readable reason, and which side closed it. */
export interface LinkClose {
  /** The close code (see CloseCode). */
  code: number
  /** Why the link closed, in words (may be empty). */
  reason: string
  /** True when the remote peer closed the link (or its transport failed). */
  remote: boolean
}

/** Thrown by reads and writes on a link that has closed; carries the close code. */
export class LinkClosedError extends MosaikError {
  /** The close code of the link (see CloseCode). */
  readonly closeCode: number
  /** Why the link closed, in words (may be empty). */
  readonly reason: string
  /** True when the remote peer closed the link (or its transport failed). */
  readonly remote: boolean
  constructor(close: LinkClose) {
    super(
      'LINK_CLOSED',
      `link closed ${close.remote ? 'by remote' : 'locally'}: ${closeCodeName(close.code)} (${close.code})${close.reason ? `: ${close.reason}` : ''}`,
    )
    this.closeCode = close.code
    this.reason = close.reason
    this.remote = close.remote
  }
}
