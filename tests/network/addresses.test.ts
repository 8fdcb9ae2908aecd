/** The peer-id helpers of multiaddrs: which peer an address names, and its transport part. */
import { describe, expect, it } from 'vitest'
import { peerOfAddress, stripPeer } from '../../src/transport/addresses.ts'

const id = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'

describe('peer addresses', () => {
  it('finds the peer an address or a bare id names', () => {
    expect(peerOfAddress(`/ip4/1.2.3.4/udp/4001/quic-v1/p2p/${id}`)).toBe(id)
    expect(peerOfAddress(id)).toBe(id)
    expect(peerOfAddress('/ip4/1.2.3.4/tcp/4001')).toBeUndefined()
    expect(peerOfAddress(`/ip4/1.2.3.4/tcp/4001/p2p/${id}/p2p-circuit`)).toBeUndefined()
  })

  it('strips a trailing peer id, and only a trailing one', () => {
    expect(stripPeer(`/ip4/1.2.3.4/tcp/4001/p2p/${id}`)).toBe('/ip4/1.2.3.4/tcp/4001')
    expect(stripPeer('/ip4/1.2.3.4/tcp/4001')).toBe('/ip4/1.2.3.4/tcp/4001')
    const circuit = `/ip4/1.2.3.4/tcp/4001/p2p/${id}/p2p-circuit`
    expect(stripPeer(circuit)).toBe(circuit)
  })
})
