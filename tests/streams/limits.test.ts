import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import {
  CloseCode,
  type Digest,
  defineStream,
  type LinkClose,
  type Network,
} from '../../platform/node/index.ts'
import { SubscriptionLimits } from '../../src/streams/admission.ts'
import { Probation } from '../../src/streams/probation.ts'
import { HANDSHAKES_PER_HOST, HANDSHAKES_PER_PEER } from '../../src/streams/streams.ts'
import type { Link } from '../../src/transport/link.ts'
import { externalAddress, hostCrowd, NO_EXTERNAL_ADDRESS } from '../support/hosts.ts'
import { Nodes } from '../support/nodes.ts'
import { ManualTime, ms, secs, within } from '../support/time.ts'
import { handshake, producerEvent, protocolOf, sees, subscribe, take } from './support.ts'

/**
 * The producer's limits on what one peer or one host may hold: handshakes in progress per peer and
 * per remote host, and subscriptions per remote host. Each test checks the close code the attacker
 * gets and that a consumer elsewhere is still served.
 */

const Text = defineStream<string>('text')

/** Opens a raw subscription link and resolves with how the producer closed it. */
async function refused(from: Network, to: Network, stream: Digest): Promise<LinkClose> {
  const link = await from.context.openLink(to.peerId, protocolOf(to))
  await link.send(handshake(to.networkId, stream))
  return within(secs(5), link.closed, 'the producer closes the link')
}

describe('a producer bounds the handshakes one peer has in progress', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  it(`refuses a peer's handshake past ${HANDSHAKES_PER_PEER} in progress with 429; another peer still subscribes`, async () => {
    const handshakeTimeoutMs = ms(2000)
    const victim = await nodes.create({ streams: { handshakeTimeoutMs } })
    const good = await nodes.create({ bootstrap: victim.addresses })
    const attacker = await nodes.create({ bootstrap: victim.addresses })
    await within(secs(10), victim.discovery.when.peers(2), 'victim knows both')
    const p = victim.streams.producer(Text)
    await sees(good, victim, (peer) => peer.streams.has(Text.streamId), 'the stream in the catalog')

    // Links that never send their handshake: each holds one of the attacker's slots until the timeout.
    const held: Link[] = []
    for (let i = 0; i < HANDSHAKES_PER_PEER; i++) {
      held.push(await attacker.context.openLink(victim.peerId, protocolOf(victim)))
    }
    // One more is refused at once, not at the handshake timeout.
    const over = await attacker.context.openLink(victim.peerId, protocolOf(victim))
    expect(await within(secs(5), over.closed)).toEqual({
      code: CloseCode.TooManyStreams,
      reason: 'too many handshakes in progress',
      remote: true,
    })
    expect(held.some((l) => l.isClosed)).toBe(false)

    // Another peer subscribes while the attacker's handshakes are still held.
    const c = good.streams.consumer(Text)
    await within(secs(5), p.when.subscribed().wait(), 'the honest consumer subscribes')
    expect(held.some((l) => l.isClosed)).toBe(false)
    await p.send('still serving')
    expect(await take(c, 1)).toEqual(['still serving'])

    // The held links time out, and their slots are free again.
    for (const link of held) {
      expect(await within(secs(5), link.closed)).toMatchObject({ code: CloseCode.Timeout, remote: true })
    }
    expect(victim.streams.stats.refused).toEqual({ TooManyStreams: 1, Timeout: HANDSHAKES_PER_PEER })
    await subscribe(attacker, victim, Text.streamId)
    expect(p.consumers().map((ch) => ch.consumerId)).toEqual(
      expect.arrayContaining([good.peerId, attacker.peerId]),
    )
  })
})

const external = externalAddress()
const noExternal = NO_EXTERNAL_ADDRESS
if (!external) console.warn(`[streams limits.test] per-host test skipped: ${noExternal}`)

describe.skipIf(!external)(
  `a producer bounds subscriptions and handshakes per remote host${external ? '' : ` (skipped: ${noExternal})`}`,
  () => {
    const nodes = new Nodes('tcp')
    afterEach(() => nodes.closeAll())

    it('refuses peers of one host over maxSubscriptionsPerHost with 429; another host still subscribes', async () => {
      // The victim listens on both; the attackers only on the external address, so every connection
      // between them (whoever dials) has it as the attackers' address.
      const victim = await nodes.create({ listen: [`${external}/tcp/0`, '/ip4/127.0.0.1/tcp/0'] })
      const viaExternal = victim.addresses.filter((a) => a.startsWith(`${external}/`))
      const attackers = await Promise.all(
        [1, 2, 3].map(() => nodes.create({ listen: [`${external}/tcp/0`], bootstrap: viaExternal })),
      )
      const good = await nodes.create({
        bootstrap: victim.addresses.filter((a) => a.startsWith('/ip4/127.')),
      })
      await within(secs(10), victim.discovery.when.peers(4), 'victim knows everyone')
      const p = victim.streams.producer(Text, { maxSubscriptionsPerHost: 2 })
      const [a1, a2, a3] = attackers as [Network, Network, Network]

      // Three identities, one host: the third is refused though it holds no subscription itself.
      const first = await subscribe(a1, victim, Text.streamId)
      const second = await subscribe(a2, victim, Text.streamId)
      const rejected = producerEvent(p, 'consumer:rejected')
      expect(await refused(a3, victim, Text.streamId)).toEqual({
        code: CloseCode.TooManyStreams,
        reason: 'too many subscriptions from this host',
        remote: true,
      })
      expect(await rejected).toMatchObject({ peerId: a3.peerId, code: CloseCode.TooManyStreams })
      expect(victim.streams.stats.refused).toEqual({ TooManyStreams: 1 })

      // A consumer from another host (loopback) subscribes, and everyone admitted receives.
      const c = good.streams.consumer(Text)
      await within(secs(5), p.when.subscribed().minimumOf(3).wait(), 'the honest consumer subscribes')
      await p.send('to all')
      expect(await take(c, 1)).toEqual(['to all'])
      const signal = AbortSignal.timeout(secs(5))
      const [a, b] = await Promise.all([first.recvBytes({ signal }), second.recvBytes({ signal })])
      expect(a).toEqual(b)

      // A slot of the host frees once one of its links has closed.
      const gone = producerEvent(p, 'consumer:disconnected')
      await first.close()
      await within(secs(5), gone)
      await subscribe(a3, victim, Text.streamId)
      expect(
        p
          .consumers()
          .map((ch) => ch.consumerId)
          .sort(),
      ).toEqual([a2.peerId, a3.peerId, good.peerId].sort())
    })

    it(`refuses a host's handshakes past ${HANDSHAKES_PER_HOST} in progress with 429, whatever its identities; loopback still subscribes`, async () => {
      const handshakeTimeoutMs = ms(3000)
      const { victim, holders, late, good } = await hostCrowd(
        nodes,
        external!,
        HANDSHAKES_PER_HOST / HANDSHAKES_PER_PEER,
        { streams: { handshakeTimeoutMs } },
      )
      const p = victim.streams.producer(Text)
      await sees(good, victim, (peer) => peer.streams.has(Text.streamId), 'the stream in the catalog')

      // Links that never send their handshake, HANDSHAKES_PER_PEER per identity: no peer is over its
      // own cap, but together they hold every slot of their host until the timeout.
      const held: Link[] = []
      for (const attacker of holders) {
        for (let i = 0; i < HANDSHAKES_PER_PEER; i++) {
          held.push(await attacker.context.openLink(victim.peerId, protocolOf(victim)))
        }
      }
      // A fresh identity of that host is refused at once, though it holds no handshake itself.
      const over = await late.context.openLink(victim.peerId, protocolOf(victim))
      expect(await within(secs(5), over.closed)).toEqual({
        code: CloseCode.TooManyStreams,
        reason: 'too many handshakes from this host',
        remote: true,
      })
      expect(held.some((l) => l.isClosed)).toBe(false)

      // A consumer on loopback (not counted per host) subscribes while the host's handshakes are held.
      const c = good.streams.consumer(Text)
      await within(secs(5), p.when.subscribed().wait(), 'the honest consumer subscribes')
      expect(held.some((l) => l.isClosed)).toBe(false)
      await p.send('still serving')
      expect(await take(c, 1)).toEqual(['still serving'])

      // The held links time out, and the host's slots are free again.
      for (const link of held) {
        expect(await within(secs(5), link.closed)).toMatchObject({ code: CloseCode.Timeout, remote: true })
      }
      expect(victim.streams.stats.refused).toEqual({ TooManyStreams: 1, Timeout: HANDSHAKES_PER_HOST })
      await subscribe(late, victim, Text.streamId)
    })
  },
)

describe('SubscriptionLimits', () => {
  /** A stand-in for a Link from `address` (all the limits read of it), and a way to close it. */
  function linkFrom(address: string): { link: Link; close: () => void } {
    let close = () => {}
    const closed = new Promise<void>((resolve) => {
      close = resolve
    })
    return { link: { connection: { remoteAddr: multiaddr(address) }, closed } as unknown as Link, close }
  }

  function limits(perPeer: number, perHost: number) {
    const time = new ManualTime()
    const refusals: { peerId: string; code: number; reason: string }[] = []
    const subject = new SubscriptionLimits(
      {
        perPeer,
        perHost,
        probation: new Probation(500),
        handshakeTimeoutMs: 1000,
        now: () => time.now(),
        timers: time,
      },
      (_link, peerId, code, reason) => refusals.push({ peerId, code, reason }),
    )
    return { subject, refusals }
  }

  it('counts each IPv4 host and IPv6 /64 apart, never loopback, and frees a slot when its link closes', async () => {
    const { subject, refusals } = limits(8, 2)
    const admit = (address: string, peer: string) => subject.count(linkFrom(address).link, peer)
    const first = linkFrom('/ip4/203.0.113.1/tcp/1')
    expect(subject.count(first.link, 'a1')).toBe(true)
    expect(admit('/ip4/203.0.113.1/tcp/2', 'a2')).toBe(true)
    expect(admit('/ip4/203.0.113.1/tcp/3', 'a3')).toBe(false)
    // Another host has its own quota; so does another /64, while one /64 is one host.
    expect(admit('/ip4/203.0.113.2/tcp/1', 'b1')).toBe(true)
    expect(admit('/ip4/203.0.113.2/tcp/1', 'b2')).toBe(true)
    expect(admit('/ip6/2001:db8:1:2::5/tcp/1', 'c1')).toBe(true)
    expect(admit('/ip6/2001:db8:1:2::6/tcp/1', 'c2')).toBe(true)
    expect(admit('/ip6/2001:db8:1:2:ffff::7/tcp/1', 'c3')).toBe(false)
    expect(admit('/ip6/2001:db8:1:3::5/tcp/1', 'd1')).toBe(true)
    // Loopback is not counted per host.
    for (const peer of ['l1', 'l2', 'l3']) expect(admit('/ip4/127.0.0.1/tcp/1', peer)).toBe(true)
    expect(refusals).toEqual([
      { peerId: 'a3', code: CloseCode.TooManyStreams, reason: 'too many subscriptions from this host' },
      { peerId: 'c3', code: CloseCode.TooManyStreams, reason: 'too many subscriptions from this host' },
    ])

    first.close()
    // The release runs on the link's close, before this await resumes.
    await first.link.closed
    expect(admit('/ip4/203.0.113.1/tcp/3', 'a3')).toBe(true)
  })

  it('a refusal by host gives back the peer slot it took', () => {
    const { subject } = limits(1, 1)
    expect(subject.count(linkFrom('/ip4/203.0.113.1/tcp/1').link, 'a')).toBe(true)
    expect(subject.count(linkFrom('/ip4/203.0.113.1/tcp/2').link, 'b')).toBe(false)
    // Had the refusal kept b's one peer slot, b would be refused here as a peer.
    expect(subject.count(linkFrom('/ip4/203.0.113.2/tcp/1').link, 'b')).toBe(true)
  })
})
