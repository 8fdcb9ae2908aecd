import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  CloseCode,
  Digest,
  encodeCanonical,
  type LinkClose,
  type Network,
  PeerEntry,
  type RejectReason,
  SignedPeerEntry,
} from '../../platform/node/index.ts'
import { departureToWire, signDeparture } from '../../src/discovery/departure.ts'
import { randomBytes } from '../../src/primitives/bytes.ts'
import type { Link } from '../../src/transport/link.ts'
import { nextEvent } from '../support/events.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'

const topicOf = (net: Network) => `mosaik/${net.networkId}/announce/1`
const syncProtocol = (net: Network) => `/mosaik/${net.networkId.short()}/discovery/sync/1`

async function keyedEntry(
  network: Digest,
  options: { key?: PrivateKey; update?: number; tags?: string[] } = {},
) {
  const key = options.key ?? (await generateKeyPair('Ed25519'))
  const now = options.update ?? Date.now()
  const entry = new PeerEntry({
    peerId: peerIdFromPrivateKey(key).toString(),
    network,
    version: { start: now, update: now },
    addresses: ['/ip4/127.0.0.1/udp/9/quic-v1'],
    tags: options.tags ?? [],
  })
  return { key, entry }
}

const announcement = (signed: SignedPeerEntry) => encodeCanonical([0, signed.toWire(), randomBytes(8)])

describe('discovery rejects bad input and keeps serving', () => {
  const nodes = new Nodes('memory')
  let victim: Network
  let good: Network
  let attacker: Network

  beforeEach(async () => {
    victim = await nodes.create({ discovery: { maxPeers: 8 } })
    good = await nodes.create({ bootstrap: victim.addresses, tags: ['honest'] })
    attacker = await nodes.create({ bootstrap: victim.addresses })
    await within(secs(10), victim.discovery.when.peers(2), 'victim sees both')
    // the attacker's gossip must reach the victim
    await within(
      secs(10),
      new Promise<void>((resolve) => {
        const check = () =>
          attacker.libp2p.services.pubsub
            .getSubscribers(topicOf(attacker))
            .some((p) => p.toString() === victim.peerId)
            ? resolve()
            : setTimeout(check, 10)
        check()
      }),
      'attacker gossip neighbour of victim',
    )
  })
  afterEach(() => nodes.closeAll())

  /** Publishes raw bytes from the attacker and resolves with the victim's rejection reason. */
  async function gossipRejection(bytes: Uint8Array, reason: RejectReason): Promise<void> {
    const rejected = nextEvent(victim.discovery, 'rejected', (r) => r.reason === reason)
    await attacker.libp2p.services.pubsub.publish(topicOf(attacker), bytes)
    const r = await within(secs(5), rejected, `rejection ${reason}`)
    expect(r.from).toBe(attacker.peerId)
    expect(victim.discovery.stats.rejected[reason]).toBeGreaterThan(0)
  }

  function expectGoodIntact(): void {
    const seen = victim.discovery.catalog().get(good.peerId)
    expect(seen?.tags.has('honest')).toBe(true)
    expect(seen?.tags.has('evil')).toBe(false)
  }

  it('rejects an entry with a forged signature and keeps the genuine one', async () => {
    const forged = new PeerEntry({
      ...good.discovery.me().entry,
      peerId: good.peerId,
      version: { start: good.discovery.me().entry.version.start, update: Date.now() + 10 },
      tags: ['evil'],
    })
    const signedByAttacker = await SignedPeerEntry.sign(forged, attacker.context.privateKey)
    await gossipRejection(announcement(signedByAttacker), 'invalid-signature')
    await expect(victim.discovery.insertSigned(signedByAttacker)).rejects.toMatchObject({
      code: 'INVALID_SIGNATURE',
    })
    expectGoodIntact()
  })

  it('rejects entries of another network', async () => {
    const { key, entry } = await keyedEntry(Digest.from('another-network'))
    await gossipRejection(announcement(await SignedPeerEntry.sign(entry, key)), 'different-network')
    expect(victim.discovery.catalog().has(entry.peerId)).toBe(false)
  })

  it('rejects gossiped entries with stale or future timestamps', async () => {
    const drift = victim.discovery.config.maxTimeDriftMs
    const stale = await keyedEntry(victim.networkId, { update: Date.now() - drift - 5000 })
    await gossipRejection(announcement(await SignedPeerEntry.sign(stale.entry, stale.key)), 'clock-drift')
    const old = await keyedEntry(victim.networkId, {
      update: Date.now() - victim.discovery.config.purgeAfterMs - 5000,
    })
    await gossipRejection(announcement(await SignedPeerEntry.sign(old.entry, old.key)), 'outdated')
    const future = await keyedEntry(victim.networkId, { update: Date.now() + drift + 5000 })
    await gossipRejection(announcement(await SignedPeerEntry.sign(future.entry, future.key)), 'future')
    for (const e of [stale, old, future]) expect(victim.discovery.catalog().has(e.entry.peerId)).toBe(false)
  })

  it('rejects a replayed older version and keeps the newer one', async () => {
    const v1 = good.discovery.me()
    await good.discovery.addTags('v2')
    await within(
      secs(5),
      victim.discovery.when.catalog((c) => c.get(good.peerId)?.tags.has('v2') === true),
    )
    await gossipRejection(announcement(v1), 'not-newer')
    expect(victim.discovery.catalog().get(good.peerId)?.tags.has('v2')).toBe(true)
  })

  it('rejects a replay of a departed peer', async () => {
    const leaving = await nodes.create({ bootstrap: victim.addresses })
    await within(secs(5), victim.discovery.when.peer(leaving.peerId))
    const captured = leaving.discovery.me()
    await leaving.close()
    await within(secs(5), victim.discovery.when.gone(leaving.peerId))
    await gossipRejection(announcement(captured), 'departed')
    expect(victim.discovery.catalog().has(leaving.peerId)).toBe(false)
  })

  it('rejects a departure not signed by the departing peer', async () => {
    const me = good.discovery.me().entry
    const fake = await signDeparture(
      { peerId: good.peerId, network: me.network, lastVersion: me.version, timestamp: Date.now() },
      attacker.context.privateKey,
    )
    await gossipRejection(encodeCanonical([1, departureToWire(fake), randomBytes(8)]), 'invalid-signature')
    expectGoodIntact()
  })

  it('rejects a departure signed by the peer but for another network, or stale, or from the future', async () => {
    const me = good.discovery.me().entry
    const key = good.context.privateKey
    const depart = async (network: Digest, timestamp: number) =>
      encodeCanonical([
        1,
        departureToWire(
          await signDeparture({ peerId: good.peerId, network, lastVersion: me.version, timestamp }, key),
        ),
        randomBytes(8),
      ])
    await gossipRejection(await depart(Digest.from('elsewhere'), Date.now()), 'different-network')
    await gossipRejection(await depart(me.network, Date.now() - 10 * 60_000), 'clock-drift')
    await gossipRejection(await depart(me.network, Date.now() + 10 * 60_000), 'clock-drift')
    expectGoodIntact()
  })

  it('rejects malformed, oversized and unknown-version announcements', async () => {
    await gossipRejection(new Uint8Array([0xff, 0x00, 0x13]), 'malformed')
    await gossipRejection(encodeCanonical([7, 'what']), 'malformed')
    await gossipRejection(new Uint8Array(70 * 1024).fill(1), 'oversized')
    const { key, entry } = await keyedEntry(victim.networkId)
    const bytes = entry.encode()
    // same entry, format version 2: a future node's format this one cannot interpret
    const v2 = Uint8Array.from(bytes)
    v2[1] = 0x02
    const sig = await key.sign(new Uint8Array(0))
    await gossipRejection(encodeCanonical([0, [v2, sig], randomBytes(8)]), 'unsupported-version')
    expectGoodIntact()
  })

  it('refuses a flood of relayed entries beyond its source quota without dropping known peers', async () => {
    const known = new Set(
      victim.discovery
        .catalog()
        .peers()
        .map((p) => p.id),
    )
    const flood = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const { key, entry } = await keyedEntry(victim.networkId)
        return SignedPeerEntry.sign(entry, key)
      }),
    )
    const overQuota = nextEvent(victim.discovery, 'rejected', (r) => r.reason === 'over-quota')
    const link = await attacker.context.openLink(victim.peerId, syncProtocol(victim))
    await link.send([1, victim.networkId.bytes, flood.length, 0])
    await link.send(flood.map((s) => s.toWire()))
    expect((await within(secs(5), overQuota)).from).toBe(attacker.peerId)
    await link.recv() // the victim's reply header
    await link.close()
    // maxPeers 8: the attacker may keep a quarter of it (2) of entries only heard of.
    const catalog = victim.discovery.catalog()
    expect(catalog.signedCount).toBe(known.size + victim.discovery.config.maxRelayedPerSource)
    for (const id of known) expect(catalog.has(id)).toBe(true)
    expectGoodIntact()
  })

  it('rate-limits a peer that floods versions of its own entry', async () => {
    const { key, entry } = await keyedEntry(victim.networkId)
    const limited = nextEvent(victim.discovery, 'rejected', (r) => r.reason === 'rate-limited')
    let e = entry
    for (let i = 0; i < 60; i++) {
      e = e.update(Date.now())
      await attacker.libp2p.services.pubsub.publish(
        topicOf(attacker),
        announcement(await SignedPeerEntry.sign(e, key)),
      )
    }
    const r = await within(secs(5), limited)
    expect(r.peer).toBe(entry.peerId)
  })

  describe('catalog sync protocol', () => {
    async function openSync(): Promise<Link> {
      return attacker.context.openLink(victim.peerId, syncProtocol(victim))
    }

    it('closes a link that sends malformed CBOR with ProtocolViolation', async () => {
      const link = await openSync()
      await link.sendBytes(new Uint8Array([0xff, 0xff]))
      expect((await within(secs(5), link.closed)).code).toBe(CloseCode.ProtocolViolation)
    })

    it('closes a link that announces an oversized frame with FrameTooLarge', async () => {
      const link = await openSync()
      // a varint length of 64 MiB, far over the 4 MiB limit, then a few bytes
      link.stream.send(new Uint8Array([0x80, 0x80, 0x80, 0x20, 0x00, 0x01, 0x02]))
      expect((await within(secs(5), link.closed)).code).toBe(CloseCode.FrameTooLarge)
    })

    it('closes a sync of an unknown protocol version with UnsupportedVersion', async () => {
      const link = await openSync()
      await link.send([99, victim.networkId.bytes, 0, 0])
      expect((await within(secs(5), link.closed)).code).toBe(CloseCode.UnsupportedVersion)
    })

    it('closes a sync for another network with DifferentNetwork', async () => {
      const link = await openSync()
      await link.send([1, Digest.from('elsewhere').bytes, 0, 0])
      expect((await within(secs(5), link.closed)).code).toBe(CloseCode.DifferentNetwork)
    })

    it('closes a ping of another version, for another network or malformed, each with its code', async () => {
      const ping = (net: Network) => `/mosaik/${net.networkId.short()}/discovery/ping/1`
      const cases: [unknown, number][] = [
        [[99, victim.networkId.bytes], CloseCode.UnsupportedVersion],
        [[1, Digest.from('elsewhere').bytes], CloseCode.DifferentNetwork],
        ['hello', CloseCode.ProtocolViolation],
        [[1], CloseCode.ProtocolViolation],
      ]
      for (const [hello, code] of cases) {
        const link = await attacker.context.openLink(victim.peerId, ping(victim))
        await link.send(hello)
        expect((await within(secs(5), link.closed)).code).toBe(code)
      }
      // The right hello is answered with the victim's entry.
      const link = await attacker.context.openLink(victim.peerId, ping(victim))
      await link.send([1, victim.networkId.bytes])
      const answer = await SignedPeerEntry.fromWire(await link.recv())
      expect(answer.entry.peerId).toBe(victim.peerId)
      link.abort()
    })

    it('rejects a ping reply carrying another peer entry; the pinged peer keeps its record and RTT', async () => {
      // The attacker answers pings with validly signed entries that are not its own: the honest peer's
      // (replayed) and a fresh identity's (a sybil that must not get in as a direct entry).
      const sybil = await keyedEntry(victim.networkId)
      const replies = [good.discovery.me(), await SignedPeerEntry.sign(sybil.entry, sybil.key)]
      const ping = attacker.context.protocol('discovery/ping/1')
      await attacker.libp2p.unhandle(ping)
      const closes: Promise<LinkClose>[] = []
      await attacker.context.handle(ping, async (link) => {
        await link.recv()
        closes.push(link.closed)
        await link.send(replies[closes.length - 1]!.toWire())
        await link.closed
      })
      const before = victim.discovery.catalog().get(attacker.peerId)
      const goodBefore = victim.discovery.catalog().get(good.peerId)
      const pings = victim.discovery.stats.pings
      for (const _ of replies) {
        await expect(victim.discovery.ping(attacker.peerId)).rejects.toMatchObject({
          code: 'DECODE',
          message: 'ping reply carries another peer entry',
        })
      }
      for (const close of await within(secs(5), Promise.all(closes))) {
        expect(close).toMatchObject({ code: CloseCode.ProtocolViolation, remote: true })
      }
      // Nothing ingested, nothing measured: no ping completed.
      expect(victim.discovery.catalog().has(sybil.entry.peerId)).toBe(false)
      const after = victim.discovery.catalog().get(attacker.peerId)
      expect({ version: after?.version, rtt: after?.rtt }).toEqual({
        version: before?.version,
        rtt: before?.rtt,
      })
      expect(victim.discovery.catalog().get(good.peerId)?.version).toEqual(goodBefore?.version)
      expect(victim.discovery.stats.pings).toBe(pings)
      // An honest peer's ping still completes.
      expect(await victim.discovery.ping(good.peerId)).toBeGreaterThanOrEqual(0)
      expect(victim.discovery.stats.pings).toBe(pings + 1)
      expect(victim.discovery.catalog().get(good.peerId)?.rtt).toBeDefined()
      expectGoodIntact()
    })

    it('drops forged entries inside a sync and keeps the valid ones', async () => {
      const honest = await keyedEntry(victim.networkId, { tags: ['fresh'] })
      const forgedEntry = (await keyedEntry(victim.networkId)).entry
      const forged = await SignedPeerEntry.sign(forgedEntry, attacker.context.privateKey)
      const valid = await SignedPeerEntry.sign(honest.entry, honest.key)
      const rejected = nextEvent(victim.discovery, 'rejected', (r) => r.reason === 'invalid-signature')
      const link = await openSync()
      await link.send([1, victim.networkId.bytes, 2, 0])
      await link.send([forged.toWire(), valid.toWire()])
      await within(secs(5), rejected)
      await within(secs(5), victim.discovery.when.peer(honest.entry.peerId))
      expect(victim.discovery.catalog().has(forgedEntry.peerId)).toBe(false)
      await link.close()
    })
  })

  it('still serves honest peers after all of it', async () => {
    await gossipRejection(new Uint8Array([1, 2, 3]), 'malformed')
    const late = await nodes.create({ bootstrap: victim.addresses })
    await within(secs(5), victim.discovery.when.peer(late.peerId))
    await within(secs(5), late.discovery.when.peers(3))
  })
})
