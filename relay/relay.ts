/**
 * The relay: a full mosaik peer (discovery, so peers and browsers bootstrap from it) that also runs
 * libp2p's circuit-relay-v2 server, listens on QUIC (where available), TCP, WebSockets and
 * WebRTC-direct, and serves /healthz and /metrics. `main.ts` is its command line.
 *
 * When to use: `startRelay` embeds a relay in another program (tests do); operators run the binary.
 *
 * Gotchas:
 * - libp2p cuts relayed connections after 2 min / 128 KiB unless told otherwise. Here both limits
 *   are off by default (`applyDefaultLimit: false`, so relayed connections are not even "limited");
 *   `circuitDurationSeconds` / `circuitDataBytes` turn them back on with the operator's values.
 * - The identity and the WebRTC-direct certificate (and so the peer id and the `/certhash/` in the
 *   WebRTC-direct address) are kept in files across restarts; a damaged one stops the start and is
 *   left as it is (identity.ts, certificate.ts). The certificate is renewed when less than 30 days of
 *   its year remain: the certhash then changes.
 */
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import type { Connection, PrivateKey } from '@libp2p/interface'
import { webRTCDirect } from '@libp2p/webrtc'
import { Network, type NetworkOptions, quicAvailable } from '../platform/node/index.ts'
import { isBrowserDialable, isQuic } from './addresses.ts'
import { loadOrCreateWebRTCCertificate, type WebRTCCertificate } from './certificate.ts'
import { CircuitMeter } from './circuits.ts'
import type { RelayConfig, RelayLimits } from './config.ts'
import { type HttpEndpoint, startHttp } from './http.ts'
import { loadOrCreateIdentity } from './identity.ts'
import type { Log } from './log.ts'
import { relayMetrics } from './metrics.ts'

export { isBrowserDialable } from './addresses.ts'

export interface Relay {
  readonly net: Network
  readonly peerId: string
  /** Every address, with `/p2p/<id>`: what peers put in `bootstrap`. */
  readonly addresses: string[]
  /** The addresses a browser can dial (WebSockets and WebRTC-direct). */
  readonly browserAddresses: string[]
  /** The /healthz and /metrics base URL, when enabled. */
  readonly httpUrl: string | undefined
  readonly meter: CircuitMeter
  /** Announces departure, stops the node and the HTTP endpoint. Safe to call more than once. */
  close(): Promise<void>
}

/** The libp2p name of the relay service: `net.libp2p.services.relay`. */
export const RELAY_SERVICE = 'relay'

const NO_DURATION_LIMIT_MS = 0xffffffff // the protocol's uint32 maximum
const NO_DATA_LIMIT = 2n ** 64n - 1n // the protocol's uint64 maximum

/** What the relay reads from the circuit-relay-v2 server: its reservation table. */
interface RelayServer {
  reservations: { size: number }
}

export async function startRelay(config: RelayConfig, log: Log): Promise<Relay> {
  const key = await loadIdentity(config.identityFile, log)
  const certificate = await loadCertificate(config.certificateFile, log)
  const listen = await usableListen(config.listen, log)
  const meter = new CircuitMeter({
    maxCircuits: config.limits.maxCircuits,
    maxBytesPerSecond: config.limits.maxBytesPerSecond,
  })
  const net = await Network.create(networkOptions(config, listen, key, certificate, meter))
  const server = (net.libp2p.services as Record<string, unknown>)[RELAY_SERVICE] as RelayServer
  if (!meter.attach(server)) log.warn('cannot measure relayed bytes with this circuit-relay-v2 version')
  const unwatch = logActivity(net, log)

  let closing: Promise<void> | undefined
  let http: HttpEndpoint | undefined
  try {
    http = await serveOperations(config, { net, server, meter, isClosing: () => closing !== undefined })
  } catch (err) {
    // The node is up already: do not leave it running behind the error.
    await net.close()
    throw err
  }

  const addresses = net.addresses
  return {
    net,
    peerId: net.peerId,
    addresses,
    browserAddresses: addresses.filter(isBrowserDialable),
    httpUrl: http?.url,
    meter,
    close() {
      closing ??= shutdown(net, meter, http, unwatch)
      return closing
    },
  }
}

/** The persistent identity, so the peer id (and every bootstrap address naming it) survives restarts. */
async function loadIdentity(file: string, log: Log): Promise<PrivateKey> {
  const identity = await loadOrCreateIdentity(file)
  if (identity.created) log.info('created identity', { file })
  if (identity.exposed) log.warn('identity file is readable by others: chmod 600 it', { file })
  return identity.key
}

/** The persistent WebRTC-direct certificate, so the `/certhash/` browsers were given stays valid. */
async function loadCertificate(file: string, log: Log): Promise<WebRTCCertificate> {
  const { certificate, created } = await loadOrCreateWebRTCCertificate(file)
  if (created) log.info('created WebRTC-direct certificate', { file })
  return certificate
}

/** The listen addresses this host can serve: QUIC ones are dropped where its native binding is missing. */
async function usableListen(listen: string[], log: Log): Promise<string[]> {
  if (await quicAvailable()) return listen
  const dropped = listen.filter(isQuic)
  if (dropped.length > 0) log.warn('QUIC unavailable: not listening on QUIC', { dropped })
  return listen.filter((a) => !isQuic(a))
}

/** A mosaik node with the relay's caps, the meter's gater, WebRTC-direct and the circuit-relay server. */
function networkOptions(
  config: RelayConfig,
  listen: string[],
  key: PrivateKey,
  certificate: WebRTCCertificate,
  meter: CircuitMeter,
): NetworkOptions {
  return {
    network: config.network,
    tags: config.tags,
    bootstrap: config.bootstrap,
    listen,
    announce: config.announce.length > 0 ? config.announce : undefined,
    privateKey: key,
    maxConnections: config.limits.maxConnections,
    maxConnectionsPerHost: config.limits.maxConnectionsPerHost,
    connectionGater: meter.gater(),
    libp2p: {
      // webRTCDirect for browsers (the Node platform already brings the circuit relay transport, so
      // the relay can dial peers reachable only through another relay).
      transports: [webRTCDirect({ certificate })],
      services: { [RELAY_SERVICE]: circuitRelayService(config.limits) },
    },
  }
}

/** libp2p's circuit-relay-v2 server, with its per-circuit limits off unless the operator set them. */
function circuitRelayService(limits: RelayLimits) {
  const limited = limits.circuitDurationSeconds > 0 || limits.circuitDataBytes > 0
  return circuitRelayServer({
    reservations: {
      maxReservations: limits.maxReservations,
      reservationTtl: limits.reservationTtlSeconds * 1000,
      applyDefaultLimit: limited,
      defaultDurationLimit:
        limits.circuitDurationSeconds > 0 ? limits.circuitDurationSeconds * 1000 : NO_DURATION_LIMIT_MS,
      defaultDataLimit: limits.circuitDataBytes > 0 ? BigInt(limits.circuitDataBytes) : NO_DATA_LIMIT,
    },
    // Each circuit holds one HOP stream on its source's connection and one STOP stream on its
    // destination's, for as long as it is open.
    maxInboundHopStreams: limits.maxCircuitsPerPeer,
    maxOutboundStopStreams: limits.maxCircuitsPerPeer,
  })
}

/** Logs peers arriving and leaving (info) and every connection opened (debug); returns the undo. */
function logActivity(net: Network, log: Log): () => void {
  const offs = [
    net.discovery.on('peer:discovered', (p) => log.info('peer discovered', { peer: p.id })),
    net.discovery.on('peer:departed', (p) => log.info('peer departed', { peer: p.id, reason: p.reason })),
  ]
  const onOpen = (e: CustomEvent<Connection>) =>
    log.debug('connection open', {
      peer: e.detail.remotePeer.toString(),
      addr: e.detail.remoteAddr.toString(),
    })
  net.libp2p.addEventListener('connection:open', onOpen)
  return () => {
    for (const off of offs) off()
    net.libp2p.removeEventListener('connection:open', onOpen)
  }
}

/** What /healthz and /metrics read. */
interface Served {
  net: Network
  server: RelayServer
  meter: CircuitMeter
  /** `close()` was called: health turns 503 at once, before the node has stopped. */
  isClosing(): boolean
}

/** /healthz and /metrics, unless the operator turned them off (`httpPort` undefined). */
async function serveOperations(config: RelayConfig, served: Served): Promise<HttpEndpoint | undefined> {
  if (config.httpPort === undefined) return undefined
  const { net, server, meter } = served
  const started = Date.now()
  return startHttp(config.httpHost, config.httpPort, {
    health: () => ({
      ok: !served.isClosing() && net.libp2p.status === 'started',
      peerId: net.peerId,
      peers: net.discovery.catalog().peers().length,
      connections: net.libp2p.getConnections().length,
      reservations: server.reservations.size,
    }),
    metrics: () => relayMetrics(net, server.reservations.size, meter, config, started),
  })
}

/** The endpoint goes last, so /healthz answers 503 rather than nothing while the node departs. */
async function shutdown(
  net: Network,
  meter: CircuitMeter,
  http: HttpEndpoint | undefined,
  unwatch: () => void,
): Promise<void> {
  unwatch()
  meter.stop()
  await net.close()
  await http?.close()
}
