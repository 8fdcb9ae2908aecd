import { connect, type Socket } from 'node:net'
import type { Libp2p } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import { randomBytes, toHex } from '../../src/primitives/bytes.ts'
import { hostKey, MAX_PENDING_PER_HOST } from '../../src/transport/hosts.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'

describe('hostKey', () => {
  it('groups IPv4 by address and IPv6 by /64, and leaves relayed and memory connections out', () => {
    expect(hostKey(multiaddr('/ip4/203.0.113.7/tcp/4001'))).toBe('host:203.0.113.7')
    const a = hostKey(multiaddr('/ip6/2001:db8:1:2::5/udp/1/quic-v1'))
    expect(a).toBe('host:2001:db8:1:2::/64')
    expect(hostKey(multiaddr('/ip6/2001:0db8:0001:0002:ffff::1/tcp/1'))).toBe(a)
    expect(hostKey(multiaddr('/ip6/2001:db8:1:3::5/tcp/1'))).not.toBe(a)
    expect(hostKey(multiaddr('/ip6/::ffff:198.51.100.1/tcp/1'))).toBe('host:198.51.100.1')
    expect(
      hostKey(
        multiaddr(
          '/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit',
        ),
      ),
    ).toBeUndefined()
    expect(hostKey(multiaddr('/memory/abc'))).toBeUndefined()
  })
})

describe('inbound connections per host', () => {
  const nodes = new Nodes('tcp')
  const clients: Libp2p[] = []
  const sockets: Socket[] = []
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy()
    await Promise.all(clients.splice(0).map((c) => c.stop()))
    await nodes.closeAll()
  })

  /** A bare libp2p node with a fresh identity: what an attacker minting identities runs. */
  async function rawClient(): Promise<Libp2p> {
    const client = await createLibp2p({
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    })
    clients.push(client)
    return client
  }

  /** A victim on loopback TCP (limited) and on memory (another "host": no IP, never limited). */
  async function victimWith(options: { maxConnections?: number; maxConnectionsPerHost?: number }) {
    const memoryAddr = `/memory/${toHex(randomBytes(8))}`
    const victim = await nodes.create({
      listen: ['/ip4/127.0.0.1/tcp/0', memoryAddr],
      limitLoopback: true,
      ...options,
    })
    const tcpAddr = victim.addresses.find((a) => a.includes('/tcp/'))!
    const memAddr = victim.addresses.find((a) => a.startsWith('/memory/'))!
    return { victim, tcpAddr, memAddr }
  }

  it('one host with many identities cannot take every connection slot', async () => {
    const { victim, tcpAddr, memAddr } = await victimWith({ maxConnections: 12, maxConnectionsPerHost: 4 })
    const results = []
    for (let i = 0; i < 12; i++) {
      const client = await rawClient()
      results.push(
        await client.dial(multiaddr(tcpAddr)).then(
          () => true,
          () => false,
        ),
      )
    }
    expect(results.filter(Boolean)).toHaveLength(4)
    // a peer from elsewhere still gets in
    const honest = await nodes.create({ listen: [`/memory/${toHex(randomBytes(8))}`], bootstrap: [memAddr] })
    await within(secs(10), victim.discovery.when.peer(honest.peerId))
    // and a slot of the host comes back when one of its connections closes
    await clients[0]!.stop()
    await within(
      secs(5),
      (async () => {
        for (;;) {
          const ok = await (await rawClient()).dial(multiaddr(tcpAddr)).then(
            () => true,
            () => false,
          )
          if (ok) return
        }
      })(),
      'a freed slot',
    )
  })

  it('loopback is not limited unless asked', async () => {
    const victim = await nodes.create()
    const clients = await Promise.all(Array.from({ length: 34 }, () => rawClient()))
    // more than the default 32 per host, all from 127.0.0.1
    await Promise.all(clients.map((c) => c.dial(multiaddr(victim.addresses[0]!))))
    expect(clients.every((c) => c.getConnections().length === 1)).toBe(true)
  })

  it(`one host may hold only ${MAX_PENDING_PER_HOST} handshakes under way`, async () => {
    const { tcpAddr } = await victimWith({})
    const port = Number(tcpAddr.split('/')[4])
    // sockets that never start the handshake
    for (let i = 0; i < MAX_PENDING_PER_HOST; i++) {
      const socket = connect({ host: '127.0.0.1', port })
      socket.on('error', () => {})
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
      sockets.push(socket)
    }
    await expect((await rawClient()).dial(multiaddr(tcpAddr))).rejects.toThrow()
    for (const s of sockets.splice(0)) s.destroy()
    await within(
      secs(5),
      (async () => {
        for (;;) {
          const ok = await (await rawClient()).dial(multiaddr(tcpAddr)).then(
            () => true,
            () => false,
          )
          if (ok) return
        }
      })(),
      'handshake slots back',
    )
  })
})
