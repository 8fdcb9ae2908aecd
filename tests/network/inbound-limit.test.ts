import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { countedHost, InboundLimit, type InboundSlot } from '../../src/transport/limits.ts'

/**
 * InboundLimit: the slots (handshakes, exchanges, subscriptions) one peer, one remote host and all
 * peers together may hold. The per-host cap is what keeps one machine minting identities from
 * holding the node-wide cap.
 */

const at = (address: string) => multiaddr(address)

/** The release of an admitted slot; fails the test when it was refused. */
function taken(slot: InboundSlot): () => void {
  if (!slot.ok) throw new Error(`refused by the ${slot.reached} cap`)
  return slot.release
}

const refusedBy = (slot: InboundSlot) => (slot.ok ? 'admitted' : slot.reached)

describe('countedHost', () => {
  it('keys IPv4 hosts and IPv6 /64s; leaves loopback, memory and relayed connections out', () => {
    expect(countedHost(at('/ip4/203.0.113.1/tcp/1'))).toBe('host:203.0.113.1')
    expect(countedHost(at('/ip6/2001:db8:1:2::5/tcp/1'))).toBe('host:2001:db8:1:2::/64')
    expect(countedHost(at('/ip4/127.0.0.1/tcp/1'))).toBeUndefined()
    expect(countedHost(at('/ip6/::1/tcp/1'))).toBeUndefined()
    expect(countedHost(at('/memory/abc'))).toBeUndefined()
    expect(
      countedHost(
        at('/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit'),
      ),
    ).toBeUndefined()
    expect(countedHost(undefined)).toBeUndefined()
  })
})

describe('InboundLimit', () => {
  it('refuses a host past its cap whatever identities its peers use; other hosts keep theirs', () => {
    const limit = new InboundLimit({ perPeer: 2, perHost: 3, total: 100 })
    const host = '/ip4/203.0.113.1/tcp/1'
    for (const peer of ['a', 'a', 'b']) taken(limit.enter(peer, at(host)))
    // A fresh identity on the same host is refused by the host, not by its own (empty) peer count.
    expect(refusedBy(limit.enter('c', at(host)))).toBe('host')
    expect(refusedBy(limit.enter('c', at('/ip4/203.0.113.1/udp/9/quic-v1')))).toBe('host')
    // Another IPv4 host, and one /64 as one host.
    taken(limit.enter('c', at('/ip4/203.0.113.2/tcp/1')))
    for (const peer of ['d', 'e', 'f']) taken(limit.enter(peer, at(`/ip6/2001:db8:1:2::${peer}/tcp/1`)))
    expect(refusedBy(limit.enter('g', at('/ip6/2001:db8:1:2:ffff::1/tcp/1')))).toBe('host')
    taken(limit.enter('g', at('/ip6/2001:db8:1:3::1/tcp/1')))
    expect(limit.size).toBe(8)
  })

  it('refuses a peer past its cap on any host, and everyone past the total', () => {
    const limit = new InboundLimit({ perPeer: 2, perHost: 10, total: 4 })
    taken(limit.enter('a', at('/ip4/203.0.113.1/tcp/1')))
    taken(limit.enter('a', at('/ip4/203.0.113.2/tcp/1')))
    expect(refusedBy(limit.enter('a', at('/ip4/203.0.113.3/tcp/1')))).toBe('peer')
    taken(limit.enter('b', at('/ip4/203.0.113.3/tcp/1')))
    taken(limit.enter('c', at('/ip4/203.0.113.4/tcp/1')))
    expect(refusedBy(limit.enter('d', at('/ip4/203.0.113.5/tcp/1')))).toBe('total')
    // No total given: no total cap.
    const open = new InboundLimit({ perPeer: 1, perHost: 1 })
    for (let i = 0; i < 300; i++) taken(open.enter(`p${i}`, at(`/ip4/198.51.${i >> 8}.${i & 255}/tcp/1`)))
    expect(open.size).toBe(300)
  })

  it('does not count loopback, memory or relayed connections per host (per peer and in total it does)', () => {
    const limit = new InboundLimit({ perPeer: 1, perHost: 1, total: 6 })
    for (const address of ['/ip4/127.0.0.1/tcp/1', '/ip6/::1/tcp/1', '/memory/x']) {
      taken(limit.enter(`${address}-1`, at(address)))
      taken(limit.enter(`${address}-2`, at(address)))
    }
    expect(refusedBy(limit.enter('late', at('/ip4/127.0.0.1/tcp/1')))).toBe('total')
    expect(refusedBy(limit.enter('/memory/x-1', at('/memory/y')))).toBe('peer')
  })

  it('a refusal takes no slot, and a release gives back exactly one, once', () => {
    const limit = new InboundLimit({ perPeer: 1, perHost: 1, total: 10 })
    const first = taken(limit.enter('a', at('/ip4/203.0.113.1/tcp/1')))
    // b is refused by its host: had the refusal kept b's peer slot, b would be refused elsewhere.
    expect(refusedBy(limit.enter('b', at('/ip4/203.0.113.1/tcp/2')))).toBe('host')
    const second = taken(limit.enter('b', at('/ip4/203.0.113.2/tcp/1')))
    expect(limit.size).toBe(2)

    first()
    first()
    expect(limit.size).toBe(1)
    // a's peer and host slots are free again; b's are still held.
    taken(limit.enter('a', at('/ip4/203.0.113.1/tcp/3')))
    expect(refusedBy(limit.enter('b', at('/ip4/203.0.113.3/tcp/1')))).toBe('peer')
    expect(refusedBy(limit.enter('c', at('/ip4/203.0.113.2/tcp/2')))).toBe('host')
    second()
    taken(limit.enter('c', at('/ip4/203.0.113.2/tcp/2')))
  })
})
