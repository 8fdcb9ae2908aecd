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
 * - The WebRTC-direct certificate (and so the `/certhash/` in its address) is new on every start:
 *   hand browsers the address printed by the running relay, or a WebSockets one.
 */
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import type { Connection } from '@libp2p/interface'
import { webRTCDirect } from '@libp2p/webrtc'
import { Network, quicAvailable } from '../platform/node/index.ts'
import { loadOrCreateWebRTCCertificate } from './certificate.ts'
import { CircuitMeter } from './circuits.ts'
import type { RelayConfig } from './config.ts'
import { type HttpEndpoint, type Metric, startHttp } from './http.ts'
import { loadOrCreateIdentity } from './identity.ts'
import type { Log } from './log.ts'

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

export async function startRelay(config: RelayConfig, log: Log): Promise<Relay> {
  const { limits } = config
  const identity = await loadOrCreateIdentity(config.identityFile)
  if (identity.created) log.info('created identity', { file: config.identityFile })
  if (identity.exposed) {
    log.warn('identity file is readable by others: chmod 600 it', { file: config.identityFile })
  }

  const { certificate, created } = await loadOrCreateWebRTCCertificate(config.certificateFile)
  if (created) log.info('created WebRTC-direct certificate', { file: config.certificateFile })

  let listen = config.listen
  if (!(await quicAvailable())) {
    const dropped = listen.filter(isQuic)
    listen = listen.filter((a) => !isQuic(a))
    if (dropped.length > 0) log.warn('QUIC unavailable: not listening on QUIC', { dropped })
  }

  const limited = limits.circuitDurationSeconds > 0 || limits.circuitDataBytes > 0
  const meter = new CircuitMeter({
    maxCircuits: limits.maxCircuits,
    maxBytesPerSecond: limits.maxBytesPerSecond,
  })
  const net = await Network.create({
    network: config.network,
    tags: config.tags,
    bootstrap: config.bootstrap,
    listen,
    announce: config.announce.length > 0 ? config.announce : undefined,
    privateKey: identity.key,
    maxConnections: limits.maxConnections,
    maxConnectionsPerHost: limits.maxConnectionsPerHost,
    connectionGater: meter.gater(),
    libp2p: {
      // webRTCDirect for browsers (the Node platform already brings the circuit relay transport, so
      // the relay can dial peers reachable only through another relay).
      transports: [webRTCDirect({ certificate })],
      services: {
        [RELAY_SERVICE]: circuitRelayServer({
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
        }),
      },
    },
  })
  const server = (net.libp2p.services as Record<string, unknown>)[RELAY_SERVICE] as {
    reservations: { size: number }
  }
  if (!meter.attach(server)) log.warn('cannot measure relayed bytes with this circuit-relay-v2 version')

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

  const started = Date.now()
  let closing: Promise<void> | undefined
  let http: HttpEndpoint | undefined
  try {
    if (config.httpPort !== undefined) {
      http = await startHttp(config.httpHost, config.httpPort, {
        health: () => ({
          ok: closing === undefined && net.libp2p.status === 'started',
          peerId: net.peerId,
          peers: net.discovery.catalog().peers().length,
          connections: net.libp2p.getConnections().length,
          reservations: server.reservations.size,
        }),
        metrics: () => relayMetrics(net, server.reservations.size, meter, config, started),
      })
    }
  } catch (err) {
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
      closing ??= (async () => {
        for (const off of offs) off()
        net.libp2p.removeEventListener('connection:open', onOpen)
        meter.stop()
        await net.close()
        await http?.close()
      })()
      return closing
    },
  }
}

function isQuic(address: string): boolean {
  return /\/quic(-v1)?(\/|$)/.test(address)
}

/** Browsers dial WebSockets (ws, wss, tls/ws) and WebRTC-direct; never TCP or QUIC. */
export function isBrowserDialable(address: string): boolean {
  return /\/(ws|wss)(\/|$)/.test(address) || address.includes('/webrtc-direct/')
}

function transportOf(conn: Connection): string {
  const a = conn.remoteAddr.toString()
  if (a.includes('/p2p-circuit')) return 'circuit'
  if (a.includes('/webrtc-direct')) return 'webrtc-direct'
  if (a.includes('/webrtc')) return 'webrtc'
  if (/\/(ws|wss)(\/|$)/.test(a)) return 'websockets'
  if (isQuic(a)) return 'quic'
  if (a.includes('/tcp/')) return 'tcp'
  return 'other'
}

function relayMetrics(
  net: Network,
  reservations: number,
  meter: CircuitMeter,
  config: RelayConfig,
  started: number,
): Metric[] {
  const byTransport = new Map<string, number>()
  for (const conn of net.libp2p.getConnections()) {
    const t = transportOf(conn)
    byTransport.set(t, (byTransport.get(t) ?? 0) + 1)
  }
  const memory = process.memoryUsage()
  const gauge = (name: string, help: string, value: number): Metric => ({
    name,
    help,
    type: 'gauge',
    samples: [{ value }],
  })
  const counter = (name: string, help: string, value: number): Metric => ({
    name,
    help,
    type: 'counter',
    samples: [{ value }],
  })
  return [
    gauge(
      'mosaik_relay_catalog_peers',
      'Peers in the discovery catalog (this node excluded).',
      net.discovery.catalog().peers().length,
    ),
    {
      name: 'mosaik_relay_connections',
      help: 'Open libp2p connections by transport.',
      type: 'gauge',
      samples: [...byTransport].map(([transport, value]) => ({ labels: { transport }, value })),
    },
    gauge('mosaik_relay_reservations', 'Circuit-relay reservations held.', reservations),
    gauge('mosaik_relay_circuits_active', 'Relayed connections open.', meter.active),
    counter('mosaik_relay_circuits_opened_total', 'Relayed connections opened.', meter.opened),
    counter(
      'mosaik_relay_circuits_refused_total',
      'Relayed connections refused at max-circuits.',
      meter.refused,
    ),
    counter('mosaik_relay_relayed_bytes_total', 'Bytes relayed, both directions.', meter.bytes),
    counter(
      'mosaik_relay_throttled_total',
      'Times relayed traffic was paused at max-bytes-per-second.',
      meter.throttled,
    ),
    {
      name: 'mosaik_relay_limit',
      help: 'Configured limits (0 = none).',
      type: 'gauge',
      samples: Object.entries(config.limits).map(([limit, value]) => ({ labels: { limit }, value })),
    },
    gauge('process_resident_memory_bytes', 'Resident set size in bytes.', memory.rss),
    gauge('nodejs_heap_used_bytes', 'V8 heap in use, bytes.', memory.heapUsed),
    gauge('nodejs_heap_total_bytes', 'V8 heap allocated, bytes.', memory.heapTotal),
    gauge('process_uptime_seconds', 'Seconds since the relay started.', (Date.now() - started) / 1000),
  ]
}
