/**
 * The public API, pinned: the values `import 'mosaik'` gives under Node and in browsers. A change here
 * is a change of the SDK's contract: make it on purpose, never by re-exporting an internal (Link,
 * Watch, Backoff and entry-version helpers stay inside).
 */
import { describe, expect, it } from 'vitest'

/** Exported by both builds. */
const SHARED = [
  'AbortError',
  'CellReader',
  'CellWriter',
  'ChannelConditions',
  'ChannelState',
  'CloseCode',
  'ClosedError',
  'CommandRefusedError',
  'CommitUnknownError',
  'Condition',
  'Consumer',
  'CorruptLogError',
  'DEFAULT_ENTRY_LIMITS',
  'DataDirLockedError',
  'DecodeError',
  'DifferentNetworkError',
  'Digest',
  'DigestSet',
  'Discovery',
  'EntryLimitError',
  'Expiration',
  'FrameTooLargeError',
  'FullError',
  'Group',
  'GroupBusyError',
  'GroupConditions',
  'GroupDivergedError',
  'GroupFailedError',
  'GroupKey',
  'GroupTerminatedError',
  'Groups',
  'InvalidArgumentError',
  'InvalidSignatureError',
  'InvalidTicketError',
  'InvalidValueError',
  'JWT_TICKET_CLASS',
  'Jwt',
  'JwtSigningKey',
  'JwtTicketBuilder',
  'JwtVerifyingKey',
  'LeaderNotReadyError',
  'LinkClosedError',
  'MapReader',
  'MapWriter',
  'MemoryLogStore',
  'MosaikError',
  'Network',
  'NotLeaderError',
  'OfflineError',
  'OnceReader',
  'OnceWriter',
  'OutOfRangeError',
  'PeerEntry',
  'PriorityQueueReader',
  'PriorityQueueWriter',
  'Producer',
  'SetReader',
  'SetWriter',
  'SignedPeerEntry',
  'StorageError',
  'StreamAlreadyExistsError',
  'Streams',
  'SyncError',
  'Ticket',
  'TimeoutError',
  'UnsupportedEntryVersionError',
  'UnsupportedRuntimeError',
  'UnsupportedVersionError',
  'VecReader',
  'VecWriter',
  'When',
  'cbor',
  'cborOf',
  'closeCodeName',
  'codecs',
  'collections',
  'consensusConfig',
  'decodeCanonical',
  'defineStream',
  'encodeCanonical',
  'registerPlatform',
  'rttBelow',
  'validateTicket',
  'validateTickets',
]
const NODE_ONLY = [
  'FileLogStore',
  'QUIC_UNAVAILABLE_WARNING',
  'WEBRTC_UNAVAILABLE_WARNING',
  'checkNodeRuntime',
  'nodePlatform',
  'quicAvailable',
]
const BROWSER_ONLY = ['IdbLogStore', 'browserPlatform', 'requestPersistentStorage']

describe('the public API', () => {
  it('the Node entry exports exactly the pinned names', async () => {
    const api = await import('../../platform/node/index.ts')
    expect(Object.keys(api).sort()).toEqual([...SHARED, ...NODE_ONLY].sort())
  })

  it('the browser entry exports exactly the pinned names', async () => {
    const api = await import('../../platform/browser/index.ts')
    expect(Object.keys(api).sort()).toEqual([...SHARED, ...BROWSER_ONLY].sort())
  })
})
