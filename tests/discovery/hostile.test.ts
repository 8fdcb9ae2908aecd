import { quic } from '@chainsafe/libp2p-quic'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p, Stream } from '@libp2p/interface'
import { memory } from '@libp2p/memory'
import { noise } from '@libp2p/noise'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import * as varint from 'uint8-varint'
import { afterEach, describe, expect, it } from 'vitest'
import {
  CloseCode,
  type Digest,
  decodeCanonical,
  EntryLimitError,
  encodeCanonical,
  type Network,
  PeerEntry,
  SignedPeerEntry,
} from '../../platform/node/index.ts'
import { SYNC_CHUNK, SYNCS_PER_PEER } from '../../src/discovery/limits.ts'
import { randomBytes } from '../../src/primitives/bytes.ts'
import { nextEvent, record } from '../support/events.ts'
import { Nodes, type Transport, uniqueNetwork } from '../support/nodes.ts'
import { ms, secs, within } from '../support/time.ts'

/**
 * Attacks on discovery by a peer that speaks its protocols by hand: oversized entries, sybil floods,
 * streams held open or flooded, oversized length prefixes, churn. Each test tries to exceed one limit
 * and checks that the node refuses with the right reason or close code and keeps serving.
 */

const topicOf = (net: Network) => `mosaik/${net.networkId}/announce/1`
const syncProtocol = (net: Network) => `/mosaik/${net.networkId.short()}/discovery/sync/1`
const pingProtocol = (net: Network) => `/mosaik/${net.networkId.short()}/discovery/ping/1`

/** An entry signed by a fresh key: what a sybil attacker mints for free. */
async function minted(
  network: Digest,
  options: { addresses?: string[]; tags?: string[] } = {},
): Promise<SignedPeerEntry> {
  const key = await generateKeyPair('Ed25519')
  const now = Date.now()
  const entry = new PeerEntry({
    peerId: peerIdFromPrivateKey(key).toString(),
    network,
    version: { start: now, update: now },
    addresses: options.addresses ?? ['/ip4/127.0.0.1/udp/9/quic-v1'],
    tags: options.tags ?? [],
  })
  return SignedPeerEntry.sign(entry, key)
}

const manyAddresses = (n: number) =>
  Array.from({ length: n }, (_, i) => `/ip4/10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/tcp/4001`)

/** Opens a raw catalog sync from `from` to `to` and sends `entries` in chunks of `chunk`. */
async function pushSync(from: Network, to: Network, entries: SignedPeerEntry[], chunk = SYNC_CHUNK) {
  const link = await from.context.openLink(to.peerId, syncProtocol(to))
  await link.send([1, to.networkId.bytes, entries.length, 0])
  for (let i = 0; i < entries.length; i += chunk) {
    await link.send(entries.slice(i, i + chunk).map((e) => e.toWire()))
  }
  return link
}

/** Resolves once `check` holds, polling (for state with no event, such as libp2p's peer store). */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = secs(10)) {
  await within(
    timeoutMs,
    (async () => {
      while (!(await check())) await new Promise((r) => setTimeout(r, 20))
    })(),
    what,
  )
}

describe('discovery under attack: peer entries', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  it('refuses at decode an entry over the address limit, the size limit or the tag limit', async () => {
    const net = (await nodes.create()).networkId
    const huge = await minted(net, { addresses: manyAddresses(27_000) })
    const started = performance.now()
    expect(() => SignedPeerEntry.parse(huge.toWire())).toThrow(EntryLimitError)
    // refused by size before it is decoded: no work proportional to the addresses
    expect(performance.now() - started).toBeLessThan(ms(50))
    await expect(
      SignedPeerEntry.fromWire((await minted(net, { addresses: manyAddresses(17) })).toWire()),
    ).rejects.toMatchObject({ code: 'ENTRY_TOO_LARGE', limit: 'addresses' })
    const tags = Array.from({ length: 65 }, (_, i) => `t${i}`)
    await expect(SignedPeerEntry.fromWire((await minted(net, { tags })).toWire())).rejects.toMatchObject({
      code: 'ENTRY_TOO_LARGE',
      limit: 'tags',
    })
    const fits = await minted(net, { addresses: manyAddresses(16) })
    expect((await SignedPeerEntry.fromWire(fits.toWire())).entry.addresses).toHaveLength(16)
  })

  it('closes a sync that carries an oversized entry with FrameTooLarge and never stores it', async () => {
    const victim = await nodes.create()
    const attacker = await nodes.create({ bootstrap: victim.addresses })
    await within(secs(10), victim.discovery.when.peer(attacker.peerId))
    for (const addresses of [manyAddresses(17), manyAddresses(27_000)]) {
      const bad = await minted(victim.networkId, { addresses })
      const rejected = record(victim.discovery, 'rejected')
      const link = await pushSync(attacker, victim, [bad])
      const close = await within(secs(5), link.closed, 'sync closed')
      rejected.stop()
      expect(close.code).toBe(CloseCode.FrameTooLarge)
      expect(victim.discovery.catalog().has(bad.entry.peerId)).toBe(false)
      expect(await victim.libp2p.peerStore.has(peerIdFromString(bad.entry.peerId))).toBe(false)
    }
    expect(victim.discovery.stats.rejected.oversized).toBeGreaterThan(0)
    // and keeps serving
    await victim.discovery.syncWith(attacker.peerId)
  })

  it('rejects a gossiped entry over the address limit as oversized', async () => {
    const victim = await nodes.create()
    const attacker = await nodes.create({ bootstrap: victim.addresses })
    await gossipNeighbours(attacker, victim)
    const bad = await minted(victim.networkId, { addresses: manyAddresses(17) })
    const rejected = nextEvent(victim.discovery, 'rejected', (r) => r.reason === 'oversized')
    await attacker.libp2p.services.pubsub.publish(
      topicOf(attacker),
      encodeCanonical([0, bad.toWire(), randomBytes(8)]),
    )
    expect((await within(secs(5), rejected)).from).toBe(attacker.peerId)
    expect(victim.discovery.catalog().has(bad.entry.peerId)).toBe(false)
  })

  it('refuses a local change that would make its own entry too large, and keeps the entry', async () => {
    const net = await nodes.create({ discovery: { maxEntryBytes: 2048 } })
    const before = net.discovery.me()
    const tags = Array.from({ length: 65 }, (_, i) => `tag-${i}`)
    await expect(net.discovery.addTags(...tags)).rejects.toMatchObject({ code: 'ENTRY_TOO_LARGE' })
    expect(net.discovery.me()).toBe(before)
    await net.discovery.addTags('fits')
    expect(net.discovery.me().entry.tags.has('fits')).toBe(true)
  })
})

describe('discovery under attack: sybil entries', () => {
  it('a source may keep only its quota of entries of peers never seen connected', async () => {
    const nodes = new Nodes('memory')
    try {
      const victim = await nodes.create({ discovery: { maxPeers: 100 } })
      const attacker = await nodes.create({ bootstrap: victim.addresses })
      await within(secs(10), victim.discovery.when.peer(attacker.peerId))
      const quota = victim.discovery.config.maxRelayedPerSource
      expect(quota).toBe(25)
      const flood = await Promise.all(Array.from({ length: 300 }, () => minted(victim.networkId)))
      const rejected = record(victim.discovery, 'rejected')
      const link = await pushSync(attacker, victim, flood)
      await within(secs(10), link.recv(), 'victim answered') // it finished reading the flood
      await link.close()
      rejected.stop()
      const overQuota = rejected.items.filter((r) => r.reason === 'over-quota')
      expect(overQuota).toHaveLength(300 - quota)
      const catalog = victim.discovery.catalog()
      expect(flood.filter((s) => catalog.has(s.entry.peerId))).toHaveLength(quota)
      // an honest newcomer still gets in
      const honest = await nodes.create({ bootstrap: victim.addresses })
      await within(secs(10), victim.discovery.when.peer(honest.peerId))
    } finally {
      await nodes.closeAll()
    }
  })

  it('a full catalog makes room for a peer that connects directly', async () => {
    const nodes = new Nodes('memory')
    try {
      // One source may fill the catalog here, to reach the full state with few nodes.
      const discovery = { maxPeers: 6, maxRelayedPerSource: 6 }
      const victim = await nodes.create({ discovery })
      const attacker = await nodes.create({ bootstrap: victim.addresses })
      await within(secs(10), victim.discovery.when.peer(attacker.peerId))
      const flood = await Promise.all(Array.from({ length: 10 }, () => minted(victim.networkId)))
      const full = nextEvent(victim.discovery, 'rejected', (r) => r.reason === 'catalog-full')
      const link = await pushSync(attacker, victim, flood)
      await within(secs(5), full)
      await link.recv()
      await link.close()
      expect(victim.discovery.catalog().signedCount).toBe(6)

      const evicted = record(victim.discovery, 'peer:departed')
      const honest = await Promise.all([1, 2].map(() => nodes.create({ bootstrap: victim.addresses })))
      for (const h of honest) await within(secs(10), victim.discovery.when.peer(h.peerId), 'honest admitted')
      evicted.stop()
      const catalog = victim.discovery.catalog()
      expect(catalog.signedCount).toBe(6)
      expect(catalog.has(attacker.peerId)).toBe(true)
      const mintedIds = new Set(flood.map((s) => s.entry.peerId))
      expect(evicted.items.length).toBeGreaterThanOrEqual(2)
      for (const e of evicted.items) {
        expect(e.reason).toBe('evicted')
        expect(mintedIds.has(e.id)).toBe(true)
      }
    } finally {
      await nodes.closeAll()
    }
  })

  it('sources on one host share one quota', async () => {
    const nodes = new Nodes('quic')
    try {
      const victim = await nodes.create({ discovery: { maxPeers: 40 } })
      const quota = victim.discovery.config.maxRelayedPerSource
      const attackers = await Promise.all([1, 2, 3].map(() => nodes.create({ bootstrap: victim.addresses })))
      await within(secs(10), victim.discovery.when.peers(3))
      const flooded: SignedPeerEntry[] = []
      for (const attacker of attackers) {
        const flood = await Promise.all(Array.from({ length: quota }, () => minted(victim.networkId)))
        flooded.push(...flood)
        const link = await pushSync(attacker, victim, flood)
        await within(secs(10), link.recv())
        await link.close()
      }
      const catalog = victim.discovery.catalog()
      expect(flooded.filter((s) => catalog.has(s.entry.peerId))).toHaveLength(quota)
      expect(victim.discovery.stats.rejected['over-quota']).toBe(2 * quota)
    } finally {
      await nodes.closeAll()
    }
  })
})

describe('discovery under attack: held and flooded streams', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  async function pair(discovery = {}) {
    const victim = await nodes.create({ discovery: { requestTimeoutMs: ms(400), ...discovery } })
    const attacker = await nodes.create({ bootstrap: victim.addresses })
    await within(secs(10), victim.discovery.when.peer(attacker.peerId))
    return { victim, attacker }
  }

  it('closes a sync that stalls with Timeout at the deadline', async () => {
    const { victim, attacker } = await pair()
    const link = await attacker.context.openLink(victim.peerId, syncProtocol(victim))
    await link.send([1, victim.networkId.bytes, 5, 0]) // announces 5 entries, sends none
    expect((await within(secs(5), link.closed)).code).toBe(CloseCode.Timeout)
  })

  it('closes a sync whose initiator never closes with Timeout', async () => {
    const { victim, attacker } = await pair()
    const link = await pushSync(attacker, victim, [])
    await link.recv() // the victim's header; its snapshot follows, then the attacker holds on
    expect((await within(secs(5), link.closed)).code).toBe(CloseCode.Timeout)
  })

  it('closes a ping that stalls with Timeout, and one that sends too much with FrameTooLarge', async () => {
    const { victim, attacker } = await pair()
    const idle = await attacker.context.openLink(victim.peerId, pingProtocol(victim))
    expect((await within(secs(5), idle.closed)).code).toBe(CloseCode.Timeout)
    const flood = await attacker.context.openLink(victim.peerId, pingProtocol(victim))
    await flood.sendBytes(new Uint8Array(4096))
    expect((await within(secs(5), flood.closed)).code).toBe(CloseCode.FrameTooLarge)
  })

  it('closes a sync that brings more than maxSyncBytes with FrameTooLarge', async () => {
    const { victim, attacker } = await pair({ maxSyncBytes: 64 * 1024, requestTimeoutMs: secs(5) })
    const link = await attacker.context.openLink(victim.peerId, syncProtocol(victim))
    await link.send([1, victim.networkId.bytes, 10_000, 0])
    // junk that costs nothing to make: each is refused as malformed, but the bytes still count
    const junk = Array.from({ length: 200 }, () => [randomBytes(500), randomBytes(64)])
    const sending = (async () => {
      for (let i = 0; i < 10 && !link.isClosed; i++) await link.send(junk)
    })().catch(() => {})
    expect((await within(secs(5), link.closed)).code).toBe(CloseCode.FrameTooLarge)
    await sending
  })

  it('closes a sync chunk of more entries than a frame may hold with ProtocolViolation', async () => {
    const { victim, attacker } = await pair({ requestTimeoutMs: secs(5) })
    const link = await attacker.context.openLink(victim.peerId, syncProtocol(victim))
    await link.send([1, victim.networkId.bytes, SYNC_CHUNK + 1, 0])
    await link.send(Array.from({ length: SYNC_CHUNK + 1 }, () => [new Uint8Array(1), new Uint8Array(64)]))
    expect((await within(secs(5), link.closed)).code).toBe(CloseCode.ProtocolViolation)
  })

  it('answers TooManyStreams to a peer holding more syncs than it may', async () => {
    const { victim, attacker } = await pair({ requestTimeoutMs: secs(5) })
    const links = await Promise.all(
      Array.from({ length: SYNCS_PER_PEER + 2 }, () =>
        attacker.context.openLink(victim.peerId, syncProtocol(victim)),
      ),
    )
    // each announces one entry and holds the sync open
    for (const link of links) await link.send([1, victim.networkId.bytes, 1, 0]).catch(() => {})
    const refused = await within(
      secs(5),
      Promise.race(links.map((l) => l.closed.then((c) => c.code))),
      'a sync refused',
    )
    expect(refused).toBe(CloseCode.TooManyStreams)
    const open = links.filter((l) => !l.isClosed)
    expect(open.length).toBeLessThanOrEqual(SYNCS_PER_PEER)
    for (const link of links) link.abort()
    // the slots come back once the held syncs end
    await within(secs(5), attacker.discovery.syncWith(victim.peerId))
  })
})

/** One network for the close-frame tests, so the catalog they need is minted once. */
const closeFramesNetwork = uniqueNetwork('close-frames')
let bigCatalog: Promise<SignedPeerEntry[]> | undefined

describe.each<Transport>(['memory', 'tcp', 'quic'])('close frames are not lost over %s', (transport) => {
  const nodes = new Nodes(transport, closeFramesNetwork)
  let raw: Libp2p | undefined
  afterEach(async () => {
    await raw?.stop()
    await nodes.closeAll()
  })

  /** Resolves with the close frame the victim sends on `stream` (Link framing: varint, kind, body). */
  function closeFrame(stream: Stream): Promise<{ code: number; reason: string }> {
    const decoder = new LengthPrefixedDecoder({ maxDataLength: 1 << 20 })
    return new Promise((resolve, reject) => {
      stream.addEventListener('message', (evt) => {
        for (const frame of decoder.decode(evt.data)) {
          const bytes = frame.subarray()
          if (bytes[0] !== 1) continue
          const [code, reason] = decodeCanonical(bytes.subarray(1)) as [number, string]
          resolve({ code, reason })
        }
      })
      stream.addEventListener('close', () => reject(new Error('stream closed without a close frame')))
    })
  }

  /** A Link MESSAGE frame, written by hand. */
  function messageFrame(value: unknown): Uint8Array {
    const body = encodeCanonical(value)
    return new Uint8Array([...varint.encode(body.length + 1), 0, ...body])
  }

  it.each(['sync', 'ping'])('a 2^31 length prefix on %s is answered with FrameTooLarge', async (which) => {
    const victim = await nodes.create()
    if (which === 'sync') {
      // A reply larger than the muxer's window, so it is still queued when the prefix arrives.
      bigCatalog ??= Promise.all(
        Array.from({ length: 600 }, () => minted(victim.networkId, { addresses: manyAddresses(12) })),
      )
      for (const signed of await bigCatalog) await victim.discovery.insertSigned(signed)
    }
    raw = await createLibp2p({
      transports: [tcp(), quic(), memory()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    })
    const protocol = which === 'sync' ? syncProtocol(victim) : pingProtocol(victim)
    const stream = await raw.dialProtocol(multiaddr(victim.addresses[0]!), protocol)
    // A client that is slow to read, as the attacker's was: the victim's writes back up.
    stream.pause()
    setTimeout(() => stream.resume(), ms(300))
    const closed = closeFrame(stream)
    const request = which === 'sync' ? [1, victim.networkId.bytes, 0, 0] : [1, victim.networkId.bytes]
    stream.send(new Uint8Array([...messageFrame(request), ...varint.encode(2 ** 31)]))
    expect((await within(secs(5), closed)).code).toBe(CloseCode.FrameTooLarge)
  })
})

describe('libp2p peer store after churn', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  it('forgets peers that departed or were purged', async () => {
    const victim = await nodes.create({ discovery: { purgeAfterMs: secs(2) } })
    const fast = { discovery: { announceIntervalMs: 300 } }
    for (let round = 0; round < 3; round++) {
      const churn = await Promise.all(
        Array.from({ length: 6 }, () => nodes.create({ ...fast, bootstrap: victim.addresses })),
      )
      await within(secs(10), victim.discovery.when.peers(6))
      // half leave with a departure, half crash and are purged
      for (const [i, net] of churn.entries()) {
        if (i % 2 === 0) await net.close()
        else await nodes.crash(net)
      }
      await within(
        secs(10),
        victim.discovery.when.catalog((c) => c.size === 0),
        'all gone',
      )
    }
    await until('peer store empty', async () => (await victim.libp2p.peerStore.all()).length === 0)
  })
})

/** Resolves once `a` has `b` as a gossip neighbour on the discovery topic. */
async function gossipNeighbours(a: Network, b: Network): Promise<void> {
  await until('gossip neighbours', () =>
    a.libp2p.services.pubsub.getSubscribers(topicOf(a)).some((p) => p.toString() === b.peerId),
  )
}
