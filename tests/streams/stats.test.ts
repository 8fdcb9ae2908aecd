import { afterEach, describe, expect, it } from 'vitest'
import { defineStream } from '../../platform/node/index.ts'
import { Nodes, type Transport } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { take } from './support.ts'

const Data1 = defineStream<string>('Data1')

// Sizes are of canonical CBOR: a text string of n < 24 bytes encodes to n + 1 bytes.
describe.each<Transport>(['memory', 'quic'])('streams stats over %s', (transport) => {
  const nodes = new Nodes(transport)
  afterEach(() => nodes.closeAll())

  it('producer: per-subscription datums and bytes, matched by the consumers', async () => {
    const [n0, n1, n2] = await nodes.star(3)
    const p = n0!.streams.getOrCreateProducer(Data1)
    const c1 = n1!.streams.consumer(Data1)
    await within(secs(10), p.when.subscribed().wait())
    await p.send('test')
    expect(await take(c1, 1)).toEqual(['test'])

    const c2 = n2!.streams.consumer(Data1)
    await within(secs(10), p.when.subscribed().minimumOf(2).wait())
    await p.send('data2')
    expect(await take(c1, 1)).toEqual(['data2'])
    expect(await take(c2, 1)).toEqual(['data2'])

    const byConsumer = new Map(p.consumers().map((ch) => [ch.consumerId, ch]))
    expect(byConsumer.get(n1!.peerId)?.stats).toMatchObject({ datums: 2, bytes: 11 })
    expect(byConsumer.get(n2!.peerId)?.stats).toMatchObject({ datums: 1, bytes: 6 })
    for (const ch of byConsumer.values()) {
      expect(ch.state).toBe('connected')
      expect(ch.stats.uptime).toBeGreaterThanOrEqual(0)
      expect(ch.producerId).toBe(n0!.peerId)
    }
    expect(c1.producers()[0]?.stats).toMatchObject({ datums: 2, bytes: 11 })
    expect(c2.producers()[0]?.stats).toMatchObject({ datums: 1, bytes: 6 })
    expect(p.stats).toMatchObject({ datums: 2, bytes: 11, undelivered: 0, dropped: 0 })
  })

  it('consumer: per-producer stats and the aggregate', async () => {
    const [n0, n1, n2] = await nodes.star(3)
    const c = n0!.streams.consumer(Data1)
    const p1 = n1!.streams.getOrCreateProducer(Data1)
    await within(secs(10), c.when.subscribed().wait())
    await p1.send('data1')
    expect(await take(c, 1)).toEqual(['data1'])

    const p2 = n2!.streams.getOrCreateProducer(Data1)
    await within(secs(10), c.when.subscribed().minimumOf(2).wait())
    await p2.send('data2')
    await p2.send('data3')
    expect(await take(c, 2)).toEqual(['data2', 'data3'])

    const byProducer = new Map(c.producers().map((ch) => [ch.producerId, ch]))
    expect(byProducer.get(n1!.peerId)?.stats).toMatchObject({ datums: 1, bytes: 6 })
    expect(byProducer.get(n2!.peerId)?.stats).toMatchObject({ datums: 2, bytes: 12 })
    expect(c.stats).toMatchObject({ datums: 3, bytes: 18, invalid: 0 })
    expect(c.stats.uptime).toBeGreaterThanOrEqual(0)
  })
})
