/**
 * What /metrics reports about a running relay: its node (catalog, connections by transport,
 * reservations), its circuits (what the `CircuitMeter` counted), the configured caps, and its process.
 */
import type { Network } from '../platform/node/index.ts'
import { transportOf } from './addresses.ts'
import type { CircuitMeter } from './circuits.ts'
import type { RelayConfig } from './config.ts'
import type { Metric } from './http.ts'

/** Every metric family, in the order /metrics prints them. */
export function relayMetrics(
  net: Network,
  reservations: number,
  meter: CircuitMeter,
  config: RelayConfig,
  started: number,
): Metric[] {
  return [
    ...nodeMetrics(net, reservations),
    ...circuitMetrics(meter),
    {
      name: 'mosaik_relay_limit',
      help: 'Configured limits (0 = none).',
      type: 'gauge',
      samples: Object.entries(config.limits).map(([limit, value]) => ({ labels: { limit }, value })),
    },
    ...processMetrics(started),
  ]
}

/** Catalog peers, open connections by transport, and reservations held. */
function nodeMetrics(net: Network, reservations: number): Metric[] {
  const byTransport = new Map<string, number>()
  for (const conn of net.libp2p.getConnections()) {
    const t = transportOf(conn)
    byTransport.set(t, (byTransport.get(t) ?? 0) + 1)
  }
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
  ]
}

/** What the circuit meter counted. */
function circuitMetrics(meter: CircuitMeter): Metric[] {
  return [
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
  ]
}

/** The relay process's memory and uptime. */
function processMetrics(started: number): Metric[] {
  const memory = process.memoryUsage()
  return [
    gauge('process_resident_memory_bytes', 'Resident set size in bytes.', memory.rss),
    gauge('nodejs_heap_used_bytes', 'V8 heap in use, bytes.', memory.heapUsed),
    gauge('nodejs_heap_total_bytes', 'V8 heap allocated, bytes.', memory.heapTotal),
    gauge('process_uptime_seconds', 'Seconds since the relay started.', (Date.now() - started) / 1000),
  ]
}

function gauge(name: string, help: string, value: number): Metric {
  return { name, help, type: 'gauge', samples: [{ value }] }
}

function counter(name: string, help: string, value: number): Metric {
  return { name, help, type: 'counter', samples: [{ value }] }
}
