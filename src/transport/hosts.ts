import type { ConnectionGater, MultiaddrConnection } from '@libp2p/interface'
import { isLoopback, tryGetNetConfig } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * Per-host limits. Keys cost nothing, so limits per peer id do not stop one machine that mints
 * identities; limits per remote host do. A "host" is an IPv4 address or an IPv6 /64 (the block one
 * subscriber usually holds).
 */

/** How connections from one remote host are limited. */
export interface HostLimits {
  /** Inbound connections (open or still upgrading) one host may hold at once. */
  readonly maxConnectionsPerHost: number
  /** Apply the limit to loopback too (otherwise local processes are not limited). */
  readonly limitLoopback: boolean
}

/**
 * The host a connection comes from: `host:<ipv4>` or `host:<ipv6 /64>`. Undefined for connections
 * without an IP of their own: in-memory ones, and relayed ones (their address is the relay's, so the
 * relay is the one to limit per host).
 */
export function hostKey(address: Multiaddr): string | undefined {
  if (address.toString().includes('/p2p-circuit')) return undefined
  const config = tryGetNetConfig(address)
  if (!config) return undefined
  if (config.type === 'ip4') return `host:${config.host}`
  if (config.type !== 'ip6') return undefined
  const groups = expandIpv6(config.host)
  if (!groups) return `host:${config.host}`
  // An IPv4-mapped address (::ffff:a.b.c.d) is that IPv4 host.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `host:${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`
  }
  return `host:${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`
}

/** The eight 16-bit groups of an IPv6 address (a dotted IPv4 tail counts as two). */
function expandIpv6(ip: string): number[] | undefined {
  const [head, tail, extra] = ip.split('::')
  if (extra !== undefined) return undefined
  const parts = (s: string | undefined) =>
    (s ? s.split(':') : []).flatMap((p) => {
      if (!p.includes('.')) return [Number.parseInt(p, 16)]
      const [a = 0, b = 0, c = 0, d = 0] = p.split('.').map(Number)
      return [(a << 8) | b, (c << 8) | d]
    })
  const left = parts(head)
  const right = parts(tail)
  const missing = 8 - left.length - right.length
  if (missing < 0 || (tail === undefined && missing !== 0)) return undefined
  const groups = [...left, ...Array<number>(missing).fill(0), ...right]
  return groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined
}

/**
 * Connections one host may hold still upgrading (handshake not done): libp2p's pending pool is shared
 * by all hosts, so one host that stalls its handshakes must not take all of it.
 */
export const MAX_PENDING_PER_HOST = 8

/**
 * A connection gater that refuses an inbound connection when its host already holds
 * `maxConnectionsPerHost` connections (upgraded or still upgrading) or `MAX_PENDING_PER_HOST` still
 * upgrading, and otherwise defers to `inner`. The count starts at libp2p's first check of a new
 * connection (before the handshake, so stalled handshakes count too) and ends when it closes.
 */
export function hostLimitingGater(limits: HostLimits, inner: ConnectionGater = {}): ConnectionGater {
  const byHost = new Map<string, Set<MultiaddrConnection>>()
  const pending = new Set<MultiaddrConnection>()
  const release = (key: string, conn: MultiaddrConnection) => {
    pending.delete(conn)
    const open = byHost.get(key)
    open?.delete(conn)
    if (open?.size === 0) byHost.delete(key)
  }
  const gater = methodsOf(inner)
  gater.denyInboundConnection = async (maConn) => {
    if (await inner.denyInboundConnection?.(maConn)) return true
    const key = hostKey(maConn.remoteAddr)
    if (key === undefined || (!limits.limitLoopback && isLoopback(maConn.remoteAddr))) return false
    let open = byHost.get(key)
    if (!open) {
      open = new Set()
      byHost.set(key, open)
    }
    let upgrading = 0
    for (const conn of open) {
      // Self-healing: a connection that closed without an event is not counted.
      if (conn.status !== 'open') {
        open.delete(conn)
        pending.delete(conn)
      } else if (pending.has(conn)) upgrading++
    }
    if (open.size >= limits.maxConnectionsPerHost || upgrading >= MAX_PENDING_PER_HOST) return true
    open.add(maConn)
    pending.add(maConn)
    maConn.addEventListener('close', () => release(key, maConn), { once: true })
    return false
  }
  gater.denyInboundUpgradedConnection = async (peer, maConn) => {
    pending.delete(maConn)
    return (await inner.denyInboundUpgradedConnection?.(peer, maConn)) === true
  }
  return gater
}

const GATER_METHODS: Record<keyof ConnectionGater, true> = {
  denyDialPeer: true,
  denyDialMultiaddr: true,
  denyInboundConnection: true,
  denyOutboundConnection: true,
  denyInboundEncryptedConnection: true,
  denyOutboundEncryptedConnection: true,
  denyInboundUpgradedConnection: true,
  denyOutboundUpgradedConnection: true,
  denyInboundRelayReservation: true,
  denyOutboundRelayedConnection: true,
  denyInboundRelayedConnection: true,
  filterMultiaddrForPeer: true,
}

/**
 * `inner` with dials to every address allowed unless `inner` decides, when `allow` is set: libp2p's
 * browser default gater refuses private and loopback addresses, and a gater method present here
 * replaces that default.
 */
export function allowingPrivateDials(
  inner: ConnectionGater | undefined,
  allow: boolean,
): ConnectionGater | undefined {
  if (!allow) return inner
  const gater = methodsOf(inner ?? {})
  const decide = gater.denyDialMultiaddr
  gater.denyDialMultiaddr = async (addr) => (decide ? decide(addr) : false)
  return gater
}

/**
 * A new gater with the methods `inner` has, bound to it, and no others: libp2p's defaults (which differ
 * in browsers) fill in the missing ones, so copying must not add any.
 */
function methodsOf(inner: ConnectionGater): ConnectionGater {
  const gater: ConnectionGater = {}
  for (const name of Object.keys(GATER_METHODS) as (keyof ConnectionGater)[]) {
    const method = inner[name] as ((...args: unknown[]) => unknown) | undefined
    if (method) (gater as Record<string, unknown>)[name] = method.bind(inner)
  }
  return gater
}
