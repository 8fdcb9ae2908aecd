import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { PrivateKey } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'
import { InvalidArgumentError, MosaikError } from '../primitives/errors.ts'
import type { MosaikLibp2p } from '../transport/context.ts'
import { allowingPrivateDials, hostLimitingGater } from '../transport/hosts.ts'
import type { Libp2pExtensions, NetworkOptions } from './network.ts'
import { fastNoise } from './noise.ts'
import type { Platform } from './platform.ts'
import { lazyWindowYamux } from './yamux.ts'

/** Service names the node registers itself; `Libp2pExtensions.services` cannot take them. */
const RESERVED_SERVICES = ['identify', 'pubsub']

/**
 * Starts the libp2p node under a Network: the platform's transports and the caller's, Noise and
 * yamux, the host-limiting gater, and the node's own identify and gossipsub services. Rejects with
 * InvalidArgumentError for a reserved service name, and with a MosaikError of code `BIND` when libp2p
 * cannot start (e.g. a listen address is unavailable).
 */
export async function startLibp2p(
  options: NetworkOptions,
  platform: Platform,
  privateKey: PrivateKey,
  maxFrameSize: number,
): Promise<MosaikLibp2p> {
  const extra = options.libp2p ?? {}
  for (const name of RESERVED_SERVICES) {
    if (extra.services && name in extra.services) {
      throw new InvalidArgumentError(`libp2p service name '${name}' is reserved by the node`)
    }
  }
  const listen = options.listen ?? platform.defaultListen()
  const libp2p = await createLibp2p({
    privateKey,
    addresses: { listen, ...(options.announce ? { announce: options.announce } : {}) },
    transports: [...platform.transports(), ...(extra.transports ?? [])],
    connectionEncrypters: [fastNoise()],
    streamMuxers: [lazyWindowYamux()],
    connectionGater: gater(options, platform),
    connectionManager: {
      maxConnections: options.maxConnections ?? 300,
      // Many nodes on one host (tests, relays) dial each other in bursts; libp2p's default of 5
      // inbound connections per second per host would refuse them. What one host may hold at once
      // is bounded by the gater instead (maxConnectionsPerHost, and 8 of them still upgrading).
      inboundConnectionThreshold: Number.POSITIVE_INFINITY,
      // Handshakes under way across all hosts; a stalled one is dropped after libp2p's 10 s
      // inboundUpgradeTimeout.
      maxIncomingPendingConnections: 64,
    },
    services: services(extra, maxFrameSize),
  }).catch((err: Error) => {
    throw new MosaikError('BIND', `cannot start the node: ${err.message}`, { cause: err })
  })
  return libp2p as MosaikLibp2p
}

/** Inbound connections per host are capped, then private dials are allowed or refused. */
function gater(options: NetworkOptions, platform: Platform) {
  return hostLimitingGater(
    {
      maxConnectionsPerHost: options.maxConnectionsPerHost ?? 32,
      limitLoopback: options.limitLoopback ?? false,
    },
    allowingPrivateDials(
      options.connectionGater ?? platform.connectionGater?.(),
      options.allowPrivateAddresses ?? false,
    ),
  )
}

/** The caller's services and the node's own: identify, and gossipsub for discovery's announcements. */
function services(extra: Libp2pExtensions, maxFrameSize: number) {
  return {
    ...extra.services,
    identify: identify(),
    pubsub: gossipsub({
      allowPublishToZeroTopicPeers: true,
      // Discovery signs what it publishes itself (entries and departures are relayed and synced,
      // so they must carry their own signatures); a second gossipsub signature per message would
      // double the verification cost for nothing.
      globalSignaturePolicy: 'StrictNoSign',
      // No IP colocation penalty: gossipsub counts every peer seen from an IP for an hour (scores
      // of departed peers are retained), so past ~10 nodes per host, NAT or loopback, across churn,
      // it graylists them all and silently drops their announcements and departures. Nodes per
      // host are bounded by the connection gater (maxConnectionsPerHost) and admission instead.
      scoreParams: { IPColocationFactorWeight: 0 },
      emitSelf: false,
      runOnLimitedConnection: true,
      maxInboundDataLength: maxFrameSize,
    }),
  }
}
