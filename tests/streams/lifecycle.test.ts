import { generateKeyPair } from '@libp2p/crypto/keys'
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { CloseCode, codecs, defineStream, encodeCanonical } from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { ms, secs, within } from '../support/time.ts'
import { consumerEvent, FAST_BACKOFF, producerEvent, sees, settle, take } from './support.ts'

const Data1 = defineStream<string>('Data1')

describe('stream lifecycle', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  it('closing the last producer handle withdraws the stream id and shuts its consumers down', async () => {
    const [n0, n1] = await nodes.star(2)
    const p = n0!.streams.producer(Data1)
    const shared = n0!.streams.getOrCreateProducer(Data1)
    const c = n1!.streams.consumer(Data1)
    await within(secs(10), p.when.subscribed().wait())
    await sees(n1!, n0!, (peer) => peer.streams.has(Data1.streamId), 'stream advertised')

    await p.close()
    expect(n0!.discovery.me().entry.streams.has(Data1.streamId)).toBe(true)
    expect(shared.isOnline).toBe(true)
    const shutdown = consumerEvent(c, 'producer:disconnected')
    await shared.close()
    expect(n0!.discovery.me().entry.streams.has(Data1.streamId)).toBe(false)
    const e = await within(secs(5), shutdown)
    expect(e.close).toMatchObject({ code: CloseCode.GracefulShutdown, remote: true })
    expect(e.retry).toBe('none')
    await sees(n1!, n0!, (peer) => !peer.streams.has(Data1.streamId), 'stream withdrawn')
    await settle()
    expect(c.producers()).toHaveLength(0)
  })

  it('consumers come back to a producer re-created on the same node', async () => {
    const [n0, n1, n2] = await nodes.star(3)
    const cs = [n1!, n2!].map((n) => n.streams.consumer(Data1, { backoff: FAST_BACKOFF }))
    let p = n0!.streams.getOrCreateProducer(Data1)
    await within(secs(10), p.when.subscribed().minimumOf(2).wait())
    await p.send('first run')
    for (const c of cs) expect(await take(c, 1)).toEqual(['first run'])
    await p.close()
    await within(secs(10), Promise.all(cs.map((c) => c.when.unsubscribed().wait())))
    p = n0!.streams.getOrCreateProducer(Data1)
    await within(secs(10), p.when.subscribed().minimumOf(2).wait(), 'consumers return')
    await p.send('second run')
    for (const c of cs) expect(await take(c, 1)).toEqual(['second run'])
  })

  it('consumers reconnect to a producer node restarted with the same identity', async () => {
    const privateKey = await generateKeyPair('Ed25519')
    const hub = await nodes.create()
    const first = await nodes.create({ privateKey, bootstrap: hub.addresses })
    first.streams.getOrCreateProducer(Data1)
    const consumerNodes = await Promise.all([1, 2].map(() => nodes.create({ bootstrap: hub.addresses })))
    const cs = consumerNodes.map((n) => n.streams.consumer(Data1, { backoff: FAST_BACKOFF }))
    await within(secs(10), Promise.all(cs.map((c) => c.when.subscribed().wait())))
    await first.close()
    await within(secs(10), Promise.all(cs.map((c) => c.when.unsubscribed().wait())))

    const second = await nodes.create({ privateKey, bootstrap: hub.addresses })
    expect(second.peerId).toBe(first.peerId)
    const p = second.streams.getOrCreateProducer(Data1)
    await within(secs(15), p.when.subscribed().minimumOf(2).wait(), 'consumers reconnect')
    await p.send('after restart')
    for (const c of cs) expect(await take(c, 1)).toEqual(['after restart'])
  })

  it('require follows tags added and removed at run time', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.producer(Data1, { require: (peer) => peer.tags.has('vip') })
    const n1 = await nodes.create({ bootstrap: n0.addresses })
    const c = n1.streams.consumer(Data1, { backoff: FAST_BACKOFF })
    const refused = await within(secs(10), consumerEvent(c, 'producer:disconnected'))
    expect(refused.close.code).toBe(CloseCode.StreamNotAllowed)
    expect(refused.retry).toBe('none')

    // Our own entry changed: the refused pair is retried (after a sync, so the producer judges the new entry).
    await n1.discovery.addTags('vip')
    await within(secs(10), c.when.subscribed().wait(), 'admitted once tagged')
    await p.send('vip only')
    expect(await take(c, 1)).toEqual(['vip only'])

    const dropped = producerEvent(p, 'consumer:rejected')
    await n1.discovery.removeTags('vip')
    expect((await within(secs(10), dropped)).code).toBe(CloseCode.StreamNotAllowed)
    await within(secs(10), c.when.unsubscribed().wait())
  })

  it('does not retry a refused producer on every catalog change, only when an entry changes in content', async () => {
    const discovery = { announceIntervalMs: ms(100), announceJitter: 0.1 }
    const n0 = await nodes.create({ discovery })
    const p = n0.streams.producer(Data1, { require: (peer) => peer.tags.has('vip') })
    const n1 = await nodes.create({ bootstrap: n0.addresses, discovery })
    const c = n1.streams.consumer(Data1, { backoff: FAST_BACKOFF })
    await within(secs(10), consumerEvent(c, 'producer:disconnected'))
    // Periodic re-announcements bump both entries' versions: several catalog changes on each side.
    const ownBefore = n1.discovery.me().entry.version.update
    let updates = 0
    await within(
      secs(10),
      new Promise<void>((resolve) => {
        const off = n1.discovery.on('peer:updated', (peer) => {
          if (peer.id === n0.peerId && ++updates >= 4) {
            off()
            resolve()
          }
        })
      }),
      "the producer's re-announcements",
    )
    expect(n1.discovery.me().entry.version.update).toBeGreaterThan(ownBefore)
    await settle()
    expect(p.stats.rejected).toBe(1)
    expect(c.producers()).toHaveLength(0)
  })

  it('schema validation and codec failures drop datums, count them, and keep the channel', async () => {
    const Price = z.object({ symbol: z.string(), price: z.number().positive() })
    type Price = z.infer<typeof Price>
    const Prices = defineStream<Price>('prices', { schema: Price })
    // A producer that does not validate: same stream, raw bytes.
    const Untyped = defineStream<Uint8Array>('prices', { codec: codecs.raw })
    const [n0, n1] = await nodes.star(2)
    const p = n0!.streams.producer(Untyped)
    const c = n1!.streams.consumer(Prices)
    const invalid: string[] = []
    c.on('invalid', (e) => invalid.push(e.error.message))
    await within(secs(10), p.when.subscribed().wait())
    await p.send(encodeCanonical({ symbol: 'ETH', price: 3000 }))
    await p.send(encodeCanonical({ symbol: 'BTC', price: -1 }))
    await p.send(new Uint8Array([0xff, 0x00, 0x13]))
    await p.send(encodeCanonical({ symbol: 'SOL', price: 150, extra: true }))
    expect(await take(c, 2)).toEqual([
      { symbol: 'ETH', price: 3000 },
      { symbol: 'SOL', price: 150 },
    ])
    expect(c.stats).toMatchObject({ datums: 2, invalid: 2 })
    expect(invalid).toHaveLength(2)
    expect(c.producers()[0]?.state).toBe('connected')
  })

  it('asynchronous schemas keep the order of datums', async () => {
    const evenOnly: StandardSchemaV1<unknown, number> = {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: async (value) => {
          await new Promise((r) => setTimeout(r, Number(value) % 3))
          return typeof value === 'number' && value % 2 === 0 ? { value } : { issues: [{ message: 'odd' }] }
        },
      },
    }
    const Evens = defineStream<number>('evens', { schema: evenOnly })
    const [n0, n1] = await nodes.star(2)
    const p = n0!.streams.producer(defineStream<number>('evens'))
    const c = n1!.streams.consumer(Evens)
    await within(secs(10), p.when.subscribed().wait())
    for (let i = 0; i <= 40; i++) await p.send(i)
    // The last datum is even, so every odd one before it has been judged when it arrives.
    expect(await take(c, 21)).toEqual(Array.from({ length: 21 }, (_, i) => i * 2))
    expect(c.stats.invalid).toBe(20)
  })

  it('refuses oversized datums and encoding failures at send, and keeps sending', async () => {
    const n0 = await nodes.create({ maxFrameSize: 1024 })
    const n1 = await nodes.create({ bootstrap: n0.addresses, maxFrameSize: 1024 })
    const Raw = defineStream<Uint8Array>('raw', { codec: codecs.raw })
    const p = n0.streams.producer(Raw)
    const c = n1.streams.consumer(Raw)
    await within(secs(10), p.when.subscribed().wait())
    await expect(p.send(new Uint8Array(2000))).rejects.toMatchObject({ code: 'FRAME_TOO_LARGE' })
    expect(() => p.trySend(new Uint8Array(1020))).toThrow(/exceeds the limit/)
    const Bad = defineStream<bigint>('bad', {
      codec: {
        encode: () => {
          throw new Error('no')
        },
        decode: () => 0n,
      },
    })
    await expect(
      n0.streams.producer(Bad, { onlineWhen: (x) => x.minimumOf(0) }).send(1n),
    ).rejects.toMatchObject({
      code: 'ENCODE',
    })
    await p.send(new Uint8Array([1, 2, 3]))
    expect(await take(c, 1)).toEqual([new Uint8Array([1, 2, 3])])
  })

  it('onUndelivered gets what is sent while nobody is subscribed', async () => {
    const n0 = await nodes.create()
    const undelivered: string[] = []
    const p = n0.streams.producer(Data1, {
      onlineWhen: (c) => c.minimumOf(0),
      onUndelivered: (d) => undelivered.push(d),
    })
    expect(p.isOnline).toBe(true)
    await p.send('nobody')
    p.trySend('listens')
    expect(undelivered).toEqual(['nobody', 'listens'])
    expect(p.stats).toMatchObject({ undelivered: 2, datums: 0 })
  })

  it('await using closes producers and consumers at the end of the scope', async () => {
    const [n0, n1] = await nodes.star(2)
    {
      await using p = n0!.streams.getOrCreateProducer(Data1)
      await using c = n1!.streams.consumer(Data1)
      await within(secs(10), p.when.subscribed().wait())
      await p.send('scoped')
      expect(await take(c, 1)).toEqual(['scoped'])
    }
    expect(n0!.discovery.me().entry.streams.has(Data1.streamId)).toBe(false)
    const again = n0!.streams.producer(Data1)
    expect(again.isClosed).toBe(false)
  })

  it('a closed network refuses new producers and consumers and closes the old ones', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.getOrCreateProducer(Data1)
    const c = n0.streams.consumer(Data1)
    await n0.close()
    expect(p.isClosed).toBe(true)
    expect(c.isClosed).toBe(true)
    expect(() => n0.streams.getOrCreateProducer(Data1)).toThrow(/closed/)
    await expect(p.send('late')).rejects.toMatchObject({ code: 'CLOSED' })
  })
})
