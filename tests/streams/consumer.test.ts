import { afterEach, describe, expect, it } from 'vitest'
import { defineStream, rttBelow } from '../../platform/node/index.ts'
import { Nodes, type Transport } from '../support/nodes.ts'
import { ms, secs, within } from '../support/time.ts'
import { consumerEvent, giveJwt, hasValidJwt, sees, settle, take } from './support.ts'

const Data1 = defineStream<string>('Data1')

describe.each<Transport>(['memory', 'quic'])('consumers over %s', (transport) => {
  const nodes = new Nodes(transport)
  afterEach(() => nodes.closeAll())

  /** A producer of Data1 on a new node bootstrapped from `from`. */
  async function producerNode(from: string[], tags: string[] = []) {
    const n = await nodes.create({ bootstrap: from, tags })
    n.streams.getOrCreateProducer(Data1)
    return n
  }

  it('when smoke: conditions follow 0, 1, 2, 1, 2 producers', async () => {
    const n0 = await nodes.create()
    const c = n0.streams.consumer(Data1)
    const subscribed = c.when.subscribed()
    const two = c.when.subscribed().minimumOf(2)
    expect(subscribed.isMet).toBe(false)
    expect(c.when.unsubscribed().isMet).toBe(true)
    const first = subscribed.wait()
    const p1 = await producerNode(n0.addresses)
    await within(secs(10), first)
    expect(two.isMet).toBe(false)
    const rearmed = subscribed.wait()
    let fired = false
    // Still pending when the node closes: waits reject with ClosedError then.
    rearmed.then(
      () => {
        fired = true
      },
      () => {},
    )
    const p2 = await producerNode(n0.addresses)
    await within(secs(10), two.wait())
    await p1.close()
    await within(secs(10), two.unmet().wait())
    expect(subscribed.isMet).toBe(true)
    await settle()
    expect(fired).toBe(false)
    await producerNode(n0.addresses)
    await within(secs(10), two.wait(), 'two producers again')
    expect(c.producers()).toHaveLength(2)
    await p2.close()
    await within(secs(10), c.when.subscribed().minimumOf(1).wait())
  })

  it('online_when: minimumOf(2).withTags(t1, t2) takes two tagged producers', async () => {
    const n0 = await nodes.create()
    const c = n0.streams.consumer(Data1, { onlineWhen: (s) => s.minimumOf(2).withTags('t1', 't2') })
    expect(c.isOnline).toBe(false)
    await producerNode(n0.addresses, ['t1', 't2'])
    await producerNode(n0.addresses, ['t1'])
    await within(secs(10), c.when.subscribed().minimumOf(2).wait())
    expect(c.isOnline).toBe(false)
    const p3 = await producerNode(n0.addresses, ['t1', 't2'])
    await within(secs(10), c.when.online().wait(), 'online with two tagged producers')
    await p3.close()
    await within(secs(10), c.when.offline().wait(), 'offline when one leaves')
  })

  it('online_when_catalog_removal: a producer losing a required tag drops the consumer offline', async () => {
    const n0 = await nodes.create()
    const c = n0.streams.consumer(Data1, {
      require: (peer) => peer.tags.has('trusted'),
      onlineWhen: (s) => s.minimumOf(2),
    })
    const n1 = await producerNode(n0.addresses, ['trusted'])
    await producerNode(n0.addresses, ['trusted'])
    await within(secs(10), c.when.online().wait())
    const dropped = consumerEvent(c, 'producer:disconnected', (e) => e.info.producerId === n1.peerId)
    await n1.discovery.removeTags('trusted')
    await within(secs(10), c.when.offline().wait(), 'offline through the catalog')
    const e = await within(secs(5), dropped)
    expect(e.retry).toBe('none')
    expect(e.close.remote).toBe(false)
  })

  it('online_when_default_is_immediate', async () => {
    const n0 = await nodes.create()
    const c = n0.streams.consumer(Data1)
    expect(c.isOnline).toBe(true)
    await within(ms(100), c.when.online().wait())
  })

  it('require_chaining: a consumer subscribes only to the producer with both tags', async () => {
    const n0 = await nodes.create()
    const c = n0.streams.consumer(Data1, {
      require: [(peer) => peer.tags.has('tag1'), (peer) => peer.tags.has('tag2')],
    })
    await producerNode(n0.addresses, ['tag1'])
    await producerNode(n0.addresses, ['tag2'])
    const both = await producerNode(n0.addresses, ['tag1', 'tag2'])
    await within(secs(10), c.when.subscribed().wait())
    await within(secs(10), n0.discovery.when.peers(3))
    await settle()
    expect(c.producers().map((ch) => ch.producerId)).toEqual([both.peerId])
  })

  it('by_tag: a restricted and an unrestricted consumer on one node', async () => {
    const n0 = await nodes.create()
    const restricted = n0.streams.consumer(Data1, { require: (peer) => peer.tags.has('tag2') })
    const open = n0.streams.consumer(Data1)
    await producerNode(n0.addresses, ['tag1'])
    const n2 = await producerNode(n0.addresses, ['tag2'])
    await within(secs(10), open.when.subscribed().minimumOf(2).wait())
    await within(secs(10), restricted.when.subscribed().wait())
    expect(restricted.producers().map((ch) => ch.producerId)).toEqual([n2.peerId])
  })

  it('by_ticket: a consumer uses only producers holding a valid JWT', async () => {
    const secret = 'producers-secret'
    const n0 = await nodes.create()
    const c = n0.streams.consumer(Data1, { require: hasValidJwt(secret) })
    const valid = await producerNode(n0.addresses)
    const expired = await producerNode(n0.addresses)
    await producerNode(n0.addresses)
    await giveJwt(valid, secret)
    await giveJwt(expired, secret, true)
    await within(secs(10), c.when.subscribed().wait())
    await sees(n0, expired, (p) => p.tickets.length === 1, 'expired ticket seen')
    await settle()
    expect(c.producers().map((ch) => ch.producerId)).toEqual([valid.peerId])
  })

  it('dynamic_tag_reevaluation: subscriptions follow a required tag as it moves', async () => {
    const n0 = await nodes.create()
    const c = n0.streams.consumer(Data1, { require: (peer) => peer.tags.has('leader') })
    const n1 = await producerNode(n0.addresses, ['leader'])
    const n2 = await producerNode(n0.addresses)
    await within(secs(10), c.when.subscribed().wait())
    expect(c.producers().map((ch) => ch.producerId)).toEqual([n1.peerId])
    const gone = c.when.unsubscribed().wait()
    await n1.discovery.removeTags('leader')
    await within(secs(10), gone, 'unsubscribed from the old leader')
    await n2.discovery.addTags('leader')
    await within(secs(10), c.when.subscribed().wait(), 'subscribed to the new leader')
    expect(c.producers().map((ch) => ch.producerId)).toEqual([n2.peerId])
  })

  it('rtt: the consumer pings before subscribing; rttBelow(5 s) accepts', async () => {
    const n0 = await nodes.create()
    const c = n0.streams.consumer(Data1, { require: (peer) => rttBelow(peer, 5000) })
    const n1 = await producerNode(n0.addresses)
    await within(secs(10), c.when.subscribed().wait())
    expect(n0.discovery.rtt(n1.peerId)).toBeDefined()
    n1.streams.getOrCreateProducer(Data1).trySend('hi')
    expect(await take(c, 1)).toEqual(['hi'])
  })

  it('rtt: rttBelow(1 ns) never subscribes', async () => {
    const n0 = await nodes.create()
    const c = n0.streams.consumer(Data1, { require: (peer) => rttBelow(peer, 1e-6) })
    const n1 = await producerNode(n0.addresses)
    await within(
      secs(10),
      n0.discovery.when.catalog((cat) => cat.get(n1.peerId)?.rtt !== undefined),
      'producer measured',
    )
    await settle()
    expect(c.producers()).toHaveLength(0)
    expect(n1.streams.getOrCreateProducer(Data1).consumers()).toHaveLength(0)
  })

  it('close: pending recv rejects with ClosedError, iteration ends, tryRecv throws', async () => {
    const [n0, n1] = await nodes.star(2)
    const p = n0!.streams.getOrCreateProducer(Data1)
    const c = n1!.streams.consumer(Data1)
    await within(secs(10), p.when.subscribed().wait())
    const pending = c.recv()
    const loop = (async () => {
      const seen: string[] = []
      for await (const d of c) seen.push(d)
      return seen
    })()
    await p.send('one')
    expect(await pending).toBe('one')
    await c.close()
    expect(await within(secs(5), loop)).toEqual([])
    await expect(c.recv()).rejects.toMatchObject({ code: 'CLOSED' })
    expect(() => c.tryRecv()).toThrow()
    await within(secs(10), p.when.unsubscribed().wait())
    expect(c.producers()).toHaveLength(0)
  })
})
