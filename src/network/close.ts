import { MosaikError } from '../primitives/errors.ts'

/**
 * Numbered reasons a link closes with, as in mosaik (application close codes). A peer always learns
 * why it was disconnected: the code travels in the last frame of the link.
 */
export const CloseCode = {
  Success: 200,
  GracefulShutdown: 204,
  InvalidProtocol: 100,
  DifferentNetwork: 101,
  Cancelled: 102,
  UnexpectedClose: 103,
  ProtocolViolation: 400,
  UnknownPeer: 401,
  /** Not in mosaik: the exchange did not finish within its deadline. */
  Timeout: 408,
  /** Not in mosaik: a frame (or a whole exchange) over the configured maximum size. */
  FrameTooLarge: 413,
  /** Not in mosaik: the peer already has as many exchanges of this protocol open as it may. */
  TooManyStreams: 429,
  /** Not in mosaik: the remote speaks a protocol version this node does not. */
  UnsupportedVersion: 426,
  StreamNotAllowed: 10403,
  StreamNotFound: 10404,
  StreamTooSlow: 10413,
  StreamNoCapacity: 10509,
  GroupInvalidHandshake: 30400,
  GroupNotAllowed: 30403,
  GroupNotFound: 30404,
  GroupInvalidProof: 30405,
  GroupTimeout: 30408,
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
  code: number
  reason: string
  /** True when the remote peer closed the link (or its transport failed). */
  remote: boolean
}

/** Thrown by reads and writes on a link that has closed; carries the close code. */
export class LinkClosedError extends MosaikError {
  readonly closeCode: number
  readonly reason: string
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
