import { identify } from '@libp2p/identify'
import { memory } from '@libp2p/memory'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import * as varint from 'uint8-varint'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  CloseCode,
  Digest,
  defineStream,
  encodeCanonical,
  type LinkClose,
  type Network,
} from '../../platform/node/index.ts'
import { handshakeMessage, packBatch } from '../../src/streams/wire.ts'
import { Link } from '../../src/transport/link.ts'
import { Nodes } from '../support/nodes.ts'
import { ms, secs, within } from '../support/time.ts'
import { consumerEvent, FAST_BACKOFF, take } from './support.ts'

const Data1 = defineStream<string>('Data1')
const protocolOf = (net: Network) => net.context.protocol('streams/1')

describe('a producer refuses bad subscriptions and keeps serving', () => {
  const nodes = new Nodes('memory')
  let victim: Network
  let good: Network
  let attacker: Network
  afterEach(() => nodes.closeAll())

  beforeEach(async () => {
    victim = await nodes.create({ streams: { handshakeTimeoutMs: ms(300) } })
    good = await nodes.create({ bootstrap: victim.addresses })
    attacker = await nodes.create({ bootstrap: victim.addresses })
    await within(secs(10), victim.discovery.when.peers(2), 'victim knows both')
  })

  /** Opens a streams link from the attacker, lets `act` misbehave on it, returns how it closed. */
  async function attack(act: (link: Link) => Promise<void> | void): Promise<LinkClose> {
    const link = await attacker.context.openLink(victim.peerId, protocolOf(victim))
    await act(link)
    return within(secs(5), link.closed, 'the producer closes the link')
  }

  const handshake = (network: Digest, stream: Digest, version = 1) => [
    version,
    network.bytes,
    stream.bytes,
    new Map(),
  ]

  it('answers each malformed or foreign handshake with its close code', async () => {
    const p = victim.streams.producer(Data1)
    const c = good.streams.consumer(Data1)
    await within(secs(10), p.when.subscribed().wait())

    const cases: [string, (link: Link) => Promise<void> | void, number][] = [
      ['not CBOR', (l) => l.sendBytes(new Uint8Array([0xff, 0xfe, 0xfd])), CloseCode.ProtocolViolation],
      ['not an array', (l) => l.send('hello'), CloseCode.ProtocolViolation],
      ['wrong shape', (l) => l.send([1, 'network', 'stream', {}]), CloseCode.ProtocolViolation],
      [
        'short ids',
        (l) => l.send([1, new Uint8Array(3), new Uint8Array(3), {}]),
        CloseCode.ProtocolViolation,
      ],
      [
        'unknown version',
        (l) => l.send(handshake(victim.networkId, Data1.streamId, 2)),
        CloseCode.UnsupportedVersion,
      ],
      [
        'another network',
        (l) => l.send(handshake(Digest.from('elsewhere'), Data1.streamId)),
        CloseCode.DifferentNetwork,
      ],
      [
        'unknown stream',
        (l) => l.send(handshake(victim.networkId, Digest.from('nope'))),
        CloseCode.StreamNotFound,
      ],
      ['no handshake at all', () => {}, CloseCode.Timeout],
      [
        'a frame over the size limit',
        (l) => void l.stream.send(varint.encode(64 * 1024 * 1024)),
        CloseCode.FrameTooLarge,
      ],
    ]
    for (const [what, act, code] of cases) {
      const close = await attack(act)
      expect({ what, code: close.code, remote: close.remote }).toEqual({ what, code, remote: true })
    }

    // A consumer that talks after its handshake is cut off.
    const cut = await attack(async (l) => {
      await l.send(handshake(victim.networkId, Data1.streamId))
      expect(await l.recv()).toEqual([victim.networkId.bytes, Data1.streamId.bytes])
      await l.sendBytes(new Uint8Array([1, 2, 3]))
    })
    expect(cut.code).toBe(CloseCode.ProtocolViolation)

    expect(victim.streams.stats.refused).toMatchObject({
      ProtocolViolation: 4,
      Timeout: 1,
      UnsupportedVersion: 1,
      DifferentNetwork: 1,
      StreamNotFound: 1,
    })
    // The honest consumer never noticed.
    await p.send('still serving')
    expect(await take(c, 1)).toEqual(['still serving'])
    expect(p.consumers().map((ch) => ch.consumerId)).toEqual([good.peerId])
  })

  it('answers UnknownPeer to a node missing from its catalog', async () => {
    victim.streams.producer(Data1)
    const stranger = await createLibp2p({
      addresses: { listen: [`/memory/stranger-${Math.random().toString(16).slice(2)}`] },
      transports: [memory()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify() },
    })
    try {
      const connection = await stranger.dial(multiaddr(victim.addresses[0]!))
      const link = new Link(await connection.newStream(protocolOf(victim)), connection)
      await link.send(handshake(victim.networkId, Data1.streamId))
      const close = await within(secs(5), link.closed)
      expect(close.code).toBe(CloseCode.UnknownPeer)
    } finally {
      await stranger.stop()
    }
  })

  it('answers UnknownPeer to a consumer whose entry is newer than the one it holds', async () => {
    victim.streams.producer(Data1)
    const held = victim.discovery.catalog().get(attacker.peerId)!.entry.version
    const subscribe = async (entry: { start: number; update: number }) => {
      const link = await attacker.context.openLink(victim.peerId, protocolOf(victim))
      await link.send(handshakeMessage(victim.networkId, Data1.streamId, entry))
      return { link, answer: await Promise.race([link.recv(), link.closed]) }
    }
    // A ticket added just before subscribing: tickets and `require` must not judge the entry before it.
    const ahead = await subscribe({ start: held.start, update: held.update + 1 })
    expect(ahead.answer).toMatchObject({ code: CloseCode.UnknownPeer, remote: true })
    // The entry the producer holds, or an older one, is judged as it is.
    for (const entry of [held, { start: held.start - 1, update: held.update + 5 }]) {
      const { link, answer } = await subscribe(entry)
      expect(answer).toEqual([victim.networkId.bytes, Data1.streamId.bytes])
      await link.close()
    }
  })
})

describe('a consumer survives rogue producers', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  type Mode = 'bad-start' | 'bad-batch' | 'bad-datums' | 'huge-frame' | 'unknown-once'

  /** A node that advertises Data1 and answers subscriptions as `mode` says. */
  async function rogue(bootstrap: string[], mode: Mode): Promise<Network> {
    const net = await nodes.create({ bootstrap })
    const protocol = protocolOf(net)
    await net.libp2p.unhandle(protocol)
    let attempts = 0
    await net.context.handle(protocol, async (link) => {
      await link.recv()
      if (mode === 'unknown-once' && attempts++ === 0) {
        link.beginClose(CloseCode.UnknownPeer, 'who are you?')
        return
      }
      const start = [net.networkId.bytes, Data1.streamId.bytes]
      if (mode === 'bad-start') await link.send([net.networkId.bytes, Digest.from('other').bytes])
      else await link.send(start)
      if (mode === 'bad-batch') await link.sendBytes(new Uint8Array([0x05, 0x01, 0x02]))
      if (mode === 'bad-datums') {
        const datums = [new Uint8Array([0xff]), encodeCanonical(42), encodeCanonical('fine')]
        await link.sendBytes(
          packBatch(
            datums,
            0,
            3,
            datums.reduce((n, d) => n + 1 + d.length, 0),
          ),
        )
      }
      if (mode === 'huge-frame') link.stream.send(varint.encode(64 * 1024 * 1024))
      if (mode === 'unknown-once') await link.sendBytes(packBatch([encodeCanonical('welcome')], 0, 1, 9))
      await link.closed
    })
    await net.discovery.updateLocal((e) => ({ streams: e.streams.with([Data1.streamId]) }))
    return net
  }

  it.each<[Mode, number, string]>([
    ['bad-start', CloseCode.ProtocolViolation, 'none'],
    ['bad-batch', CloseCode.ProtocolViolation, 'none'],
    ['huge-frame', CloseCode.FrameTooLarge, 'backoff'],
  ])('%s: closes the channel with its code and keeps the honest producer', async (mode, code, retry) => {
    const n0 = await nodes.create()
    const honest = await nodes.create({ bootstrap: n0.addresses })
    const p = honest.streams.getOrCreateProducer(Data1)
    const c = n0.streams.consumer(Data1, { backoff: FAST_BACKOFF })
    await within(secs(10), c.when.subscribed().wait())
    const bad = await rogue(n0.addresses, mode)
    const e = await within(
      secs(10),
      consumerEvent(c, 'producer:disconnected', (x) => x.info.producerId === bad.peerId),
    )
    expect(e.close).toMatchObject({ code })
    expect(e.retry).toBe(retry)
    await p.send('honest')
    expect(await take(c, 1)).toEqual(['honest'])
    expect(c.stats.invalid).toBe(0)
  })

  it('unknown-once: UnknownPeer makes the consumer sync catalogs and retry at once', async () => {
    const n0 = await nodes.create()
    // A backoff of a minute: only the UnknownPeer path (sync, then retry without waiting) can pass.
    const c = n0.streams.consumer(Data1, { backoff: { initialMs: 60_000 } })
    const syncsBefore = n0.discovery.stats.syncsInitiated
    const bad = await rogue(n0.addresses, 'unknown-once')
    const e = await within(
      secs(10),
      consumerEvent(c, 'producer:disconnected', (x) => x.info.producerId === bad.peerId),
    )
    expect(e.close.code).toBe(CloseCode.UnknownPeer)
    expect(e.retry).toBe('sync')
    expect(await take(c, 1)).toEqual(['welcome'])
    expect(n0.discovery.stats.syncsInitiated).toBeGreaterThan(syncsBefore)
  })

  it('bad-datums: undecodable and schema-failing datums are counted, the rest delivered', async () => {
    const n0 = await nodes.create()
    const Strings = defineStream<string>('Data1', {
      schema: {
        '~standard': {
          version: 1,
          vendor: 'test',
          validate: (v) => (typeof v === 'string' ? { value: v } : { issues: [{ message: 'not a string' }] }),
        },
      },
    })
    const c = n0.streams.consumer(Strings)
    await rogue(n0.addresses, 'bad-datums')
    expect(await take(c, 1)).toEqual(['fine'])
    expect(c.stats).toMatchObject({ datums: 1, invalid: 2 })
    expect(c.producers()[0]?.state).toBe('connected')
  })
})
