import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import {
  DecodeError,
  Digest,
  InvalidSignatureError,
  PeerEntry,
  rttBelow,
  SignedPeerEntry,
} from '../../platform/node/index.ts'
import { toPeerInfo } from '../../src/discovery/catalog.ts'
import { signDeparture, verifyDeparture } from '../../src/discovery/departure.ts'
import { RttTracker } from '../../src/discovery/rtt.ts'

async function freshEntry(now = 1_000_000) {
  const key = await generateKeyPair('Ed25519')
  const entry = new PeerEntry({
    peerId: peerIdFromPrivateKey(key).toString(),
    network: Digest.from('net'),
    version: { start: now, update: now },
    addresses: ['/ip4/127.0.0.1/udp/1/quic-v1'],
    tags: ['tag1'],
  })
  return { key, entry }
}

// Ports of mosaik's discovery::entry unit tests, plus the signature rules of this port.
describe('peer entry', () => {
  it('a valid signed entry round-trips through its wire form', async () => {
    const { key, entry } = await freshEntry()
    const signed = await SignedPeerEntry.sign(entry, key)
    const back = await SignedPeerEntry.fromWire(signed.toWire())
    expect(back.entry.sameContent(entry)).toBe(true)
    expect(back.entry.version).toEqual(entry.version)
    expect(back.entry.tags.has('tag1')).toBe(true)
  })

  it('a tampered signature fails to verify', async () => {
    const { key, entry } = await freshEntry()
    const signed = await SignedPeerEntry.sign(entry, key)
    const sig = Uint8Array.from(signed.signature)
    sig[0]! ^= 1
    await expect(SignedPeerEntry.verify(signed.bytes, sig)).rejects.toBeInstanceOf(InvalidSignatureError)
  })

  it('a modified entry with the original signature fails to verify', async () => {
    const { key, entry } = await freshEntry()
    const signed = await SignedPeerEntry.sign(entry, key)
    const modified = entry.update(entry.updatedAt + 1, { tags: ['evil'] })
    await expect(SignedPeerEntry.verify(modified.encode(), signed.signature)).rejects.toBeInstanceOf(
      InvalidSignatureError,
    )
  })

  it('an entry signed by another key than its peer id fails to verify', async () => {
    const { entry } = await freshEntry()
    const other = await generateKeyPair('Ed25519')
    const forged = await SignedPeerEntry.sign(entry, other)
    await expect(SignedPeerEntry.verify(forged.bytes, forged.signature)).rejects.toBeInstanceOf(
      InvalidSignatureError,
    )
  })

  it("a signer's entry verified once does not make a forgery of its next version pass", async () => {
    const { key, entry } = await freshEntry()
    const signed = await SignedPeerEntry.sign(entry, key)
    expect((await SignedPeerEntry.verify(signed.bytes, signed.signature)).entry.sameContent(entry)).toBe(true)
    const next = entry.update(entry.updatedAt + 1, { tags: ['evil'] })
    const forged = await SignedPeerEntry.sign(next, await generateKeyPair('Ed25519'))
    await expect(SignedPeerEntry.verify(forged.bytes, forged.signature)).rejects.toBeInstanceOf(
      InvalidSignatureError,
    )
    const honest = await SignedPeerEntry.sign(next, key)
    expect((await SignedPeerEntry.verify(honest.bytes, honest.signature)).entry.tags.has('evil')).toBe(true)
  })

  it('malformed bytes give a DecodeError, never an entry', async () => {
    await expect(
      SignedPeerEntry.verify(new Uint8Array([1, 2, 3]), new Uint8Array(64)),
    ).rejects.toBeInstanceOf(DecodeError)
    await expect(SignedPeerEntry.fromWire('nope')).rejects.toBeInstanceOf(DecodeError)
  })

  it.each([
    ['add tags', (e: PeerEntry) => e.update(e.updatedAt, { tags: [...e.tags, Digest.from('x')] })],
    ['remove tags', (e: PeerEntry) => e.update(e.updatedAt, { tags: [] })],
    ['add streams', (e: PeerEntry) => e.update(e.updatedAt, { streams: ['s'] })],
    ['remove streams', (e: PeerEntry) => e.update(e.updatedAt, { streams: [] })],
    ['update address', (e: PeerEntry) => e.update(e.updatedAt, { addresses: ['/ip4/1.2.3.4/tcp/1'] })],
  ])('the version increments on %s', async (_name, change) => {
    const { entry } = await freshEntry()
    const next = change(entry)
    expect(next.isNewerThan(entry)).toBe(true)
    expect(next.version.start).toBe(entry.version.start)
  })

  it('versions increase monotonically even when the clock stands still or goes back', async () => {
    const { entry } = await freshEntry(5000)
    let e = entry
    for (const now of [5000, 5000, 4000, 6000, 6000]) {
      const next = e.update(now)
      expect(next.isNewerThan(e)).toBe(true)
      e = next
    }
  })

  it('is_newer_than compares (start, update) lexicographically', async () => {
    const { entry } = await freshEntry(1000)
    const restarted = new PeerEntry({ ...fields(entry), version: { start: 2000, update: 2000 } })
    const later = entry.update(999_999)
    expect(restarted.isNewerThan(later)).toBe(true)
    expect(later.isNewerThan(entry)).toBe(true)
    expect(entry.isNewerThan(entry)).toBe(false)
  })

  it('encodes canonically: equal entries give equal bytes whatever the input order', async () => {
    const { entry } = await freshEntry()
    const a = new PeerEntry({ ...fields(entry), tags: ['b', 'a'], addresses: ['/z', '/a'] })
    const b = new PeerEntry({ ...fields(entry), tags: ['a', 'b'], addresses: ['/a', '/z'] })
    expect(a.encode()).toEqual(b.encode())
  })

  it('departures are signed by the departing peer', async () => {
    const { key, entry } = await freshEntry()
    const d = await signDeparture(
      { peerId: entry.peerId, network: entry.network, lastVersion: entry.version, timestamp: 1 },
      key,
    )
    expect(await verifyDeparture(d)).toBe(true)
    expect(await verifyDeparture({ ...d, timestamp: 2 })).toBe(false)
  })
})

function fields(e: PeerEntry) {
  return { peerId: e.peerId, network: e.network, version: e.version, addresses: e.addresses, tags: e.tags }
}

// Ports of mosaik's discovery::rtt unit tests.
describe('rtt tracker (RFC 6298)', () => {
  it('the first sample sets srtt and rttvar = r/2', () => {
    const t = new RttTracker()
    expect(t.record('p', 100)).toMatchObject({ srtt: 100, rttvar: 50, samples: 1 })
  })

  it('the moving average converges to a steady RTT', () => {
    const t = new RttTracker()
    t.record('p', 1000)
    for (let i = 0; i < 100; i++) t.record('p', 200)
    expect(t.get('p')!.srtt).toBeCloseTo(200, 0)
  })

  it('forgets a removed peer', () => {
    const t = new RttTracker()
    t.record('p', 10)
    t.remove('p')
    expect(t.get('p')).toBeUndefined()
  })

  it('below() is optimistic when the RTT is unknown', () => {
    expect(new RttTracker().below('unknown', 1)).toBe(true)
  })

  it('below() compares against the threshold', () => {
    const t = new RttTracker()
    t.record('p', 50)
    expect(t.below('p', 100)).toBe(true)
    expect(t.below('p', 10)).toBe(false)
  })

  it('PeerInfo exposes the RTT and rttBelow', async () => {
    const { entry } = await freshEntry()
    expect(rttBelow(toPeerInfo(entry, true, 30), 50)).toBe(true)
    expect(rttBelow(toPeerInfo(entry, true, 80), 50)).toBe(false)
    expect(rttBelow(toPeerInfo(entry, true, undefined), 50)).toBe(true)
  })
})
