import { afterEach, describe, expect, it } from 'vitest'
import {
  CloseCode,
  ClosedError,
  defineStream,
  type Network,
  OfflineError,
  rttBelow,
  StreamAlreadyExistsError,
} from '../../platform/node/index.ts'
import { Nodes, type Transport } from '../support/nodes.ts'
import { ms, secs, within } from '../support/time.ts'
import { consumerEvent, FAST_BACKOFF, giveJwt, hasValidJwt, producerEvent, settle, take } from './support.ts'

const Data1 = defineStream<string>('Data1')
const Data2 = defineStream<string>('Data2')

describe.each<Transport>(['memory', 'quic'])('producers over %s', (transport) => {
  const nodes = new Nodes(transport)
  afterEach(() => nodes.closeAll())

  it('multiple_producers_one_stream: a second producer() fails with the existing one; getOrCreateProducer() shares it', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.producer(Data1)
    let caught: unknown
    try {
      n0.streams.producer(Data1, { bufferSize: 8 })
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(StreamAlreadyExistsError)
    const err = caught as StreamAlreadyExistsError<typeof p>
    expect(err.code).toBe('ALREADY_EXISTS')
    expect(err.existing.streamId.equals(p.streamId)).toBe(true)
    const shared = n0.streams.getOrCreateProducer(Data1)
    expect(shared.streamId.equals(p.streamId)).toBe(true)
    expect(shared.when).toBe(p.when)
    await err.existing.close()
    await shared.close()
    expect(p.isClosed).toBe(false)
  })

  it('max_subs: only maxConsumers subscribe; a freed slot goes to a waiting consumer', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.producer(Data1, { maxConsumers: 3 })
    const consumers = await Promise.all(
      Array.from({ length: 7 }, () => nodes.create({ bootstrap: n0.addresses })),
    )
    let refusals = 0
    p.on('consumer:rejected', (r) => {
      if (r.code === CloseCode.StreamNoCapacity) refusals++
    })
    const cs = consumers.map((n) => n.streams.consumer(Data1, { backoff: FAST_BACKOFF }))
    await within(secs(10), p.when.subscribed().minimumOf(3).wait(), 'three subscribers')
    // The other four keep retrying with backoff and keep being refused: wait for a few rounds of it.
    await within(
      secs(10),
      new Promise<void>((resolve) => {
        const off = p.on('consumer:rejected', () => {
          if (refusals >= 8) {
            off()
            resolve()
          }
        })
      }),
      'refusals',
    )
    expect(p.consumers()).toHaveLength(3)
    expect(p.when.subscribed().minimumOf(3).isMet).toBe(true)
    expect(p.when.subscribed().minimumOf(3).unmet().isMet).toBe(false)

    const subscribed = new Set(p.consumers().map((ch) => ch.consumerId))
    const dropped = consumers.find((n) => subscribed.has(n.peerId))!
    // Armed before the drop: a waiting consumer takes the freed slot within milliseconds.
    const freed = p.when.subscribed().minimumOf(3).unmet().wait()
    await dropped.close()
    await within(secs(10), freed, 'a slot frees')
    await within(secs(10), p.when.subscribed().minimumOf(3).wait(), 'the slot is taken again')
    const now = new Set(p.consumers().map((ch) => ch.consumerId))
    expect(now.size).toBe(3)
    expect([...now].filter((id) => subscribed.has(id))).toHaveLength(2)
    expect(now.has(dropped.peerId)).toBe(false)
    void cs
  })

  it('online_when: online conditions with minimums and tags follow consumers as they come and go', async () => {
    const [n0, n1] = await nodes.star(2)
    const p01 = n0!.streams.producer(Data1, { onlineWhen: (c) => c.minimumOf(2) })
    const p02 = n0!.streams.producer(Data2)
    const Data3 = defineStream<string>('Data3')
    const p11 = n1!.streams.producer(Data3, { onlineWhen: (c) => c.withTags('tag2').minimumOf(2) })
    const join = async (tags: string[] = []) => {
      const n = await nodes.create({ bootstrap: n0!.addresses, tags })
      for (const def of [Data1, Data2, Data3]) n.streams.consumer(def)
      return n
    }
    expect([p01.isOnline, p02.isOnline, p11.isOnline]).toEqual([false, false, false])
    await join()
    await within(secs(10), p02.when.online().wait(), 'p02 online with one consumer')
    await within(secs(10), p11.when.subscribed().wait())
    expect([p01.isOnline, p11.isOnline]).toEqual([false, false])
    await join()
    await within(secs(10), p01.when.online().wait(), 'p01 online with two')
    await within(secs(10), p11.when.subscribed().minimumOf(2).wait())
    expect(p11.isOnline).toBe(false)
    await join(['tag2'])
    await within(secs(10), p11.when.subscribed().minimumOf(3).wait())
    expect(p11.isOnline).toBe(false)
    const n5 = await join(['tag2'])
    await within(secs(10), p11.when.online().wait(), 'p11 online with two tagged')
    await n5.close()
    await within(secs(10), p11.when.offline().wait(), 'p11 offline again')
    expect([p01.isOnline, p02.isOnline]).toEqual([true, true])
  })

  it('when smoke: subscribed / minimumOf / unmet / unsubscribed, edge-triggered and re-armable', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.getOrCreateProducer(Data1)
    const subscribed = p.when.subscribed()
    const two = p.when.subscribed().minimumOf(2)
    expect(subscribed.isMet).toBe(false)
    expect(p.when.unsubscribed().isMet).toBe(true)
    await within(ms(100), p.when.unsubscribed().wait(), 'met at once on first await')

    let resolved = false
    const first = subscribed.wait().then(() => {
      resolved = true
    })
    await settle()
    expect(resolved).toBe(false)

    const consume = async () => {
      const n = await nodes.create({ bootstrap: n0.addresses })
      n.streams.consumer(Data1)
      return n
    }
    const n1 = await consume()
    await within(secs(10), first)
    expect(two.isMet).toBe(false)
    expect(two.unmet().isMet).toBe(true)

    // Re-armed: the same object now waits for the next not-met → met transition, even though it holds.
    let again = false
    const rearmed = subscribed.wait().then(() => {
      again = true
    })
    const n2 = await consume()
    await within(secs(10), two.wait(), 'two subscribers')
    expect(again).toBe(false)
    await n1.close()
    await within(secs(10), two.unmet().wait(), 'back to one')
    expect(subscribed.isMet).toBe(true)
    expect(again).toBe(false)
    await n2.close()
    await within(secs(10), p.when.unsubscribed().wait(), 'none')
    await consume()
    await within(secs(10), rearmed, 're-armed condition fires on the new transition')
    // A fresh builder starts over: met now, so it resolves at once.
    await within(ms(100), p.when.subscribed().wait())
  })

  it('send_fails_if_offline: send waits and trySend throws Offline until a consumer subscribes', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.getOrCreateProducer(Data1)
    await expect(p.send('early', { signal: AbortSignal.timeout(ms(200)) })).rejects.toMatchObject({
      name: 'TimeoutError',
    })
    let offline: unknown
    try {
      p.trySend('early')
    } catch (err) {
      offline = err
    }
    expect(offline).toBeInstanceOf(OfflineError)
    expect((offline as OfflineError<string>).value).toBe('early')
    expect(p.consumers()).toHaveLength(0)

    const n1 = await nodes.create({ bootstrap: n0.addresses })
    const c = n1.streams.consumer(Data1)
    const pending = p.send('waited')
    await within(secs(10), pending, 'send resolves once online')
    expect(await take(c, 1)).toEqual(['waited'])
    expect(p.consumers().map((ch) => ch.consumerId)).toEqual([n1.peerId])
    expect(c.producers().map((ch) => ch.producerId)).toEqual([n0.peerId])

    await c.close()
    await within(secs(10), p.when.offline().wait(), 'offline again')
    expect(p.consumers()).toHaveLength(0)
    expect(() => p.trySend('late')).toThrow(OfflineError)
    await p.close()
    await expect(p.send('closed')).rejects.toBeInstanceOf(ClosedError)
  })

  it('require_chaining: chained predicates are AND-ed', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.producer(Data1, {
      require: [(peer) => peer.tags.has('tag1'), (peer) => peer.tags.has('tag2')],
    })
    const both = await nodes.create({ bootstrap: n0.addresses, tags: ['tag1', 'tag2'] })
    const one = await nodes.create({ bootstrap: n0.addresses, tags: ['tag1'] })
    const other = await nodes.create({ bootstrap: n0.addresses, tags: ['tag2'] })
    const refused = [one, other].map((n) => {
      const c = n.streams.consumer(Data1)
      return consumerEvent(c, 'producer:disconnected', (e) => e.close.code === CloseCode.StreamNotAllowed)
    })
    const cBoth = both.streams.consumer(Data1)
    await within(secs(10), cBoth.when.subscribed().wait())
    for (const r of await within(secs(10), Promise.all(refused))) expect(r.retry).toBe('none')
    expect(p.consumers().map((ch) => ch.consumerId)).toEqual([both.peerId])
  })

  it('by_tag: a restricted and an unrestricted producer of one stream', async () => {
    const restricted = await nodes.create()
    const open = await nodes.create({ bootstrap: restricted.addresses })
    restricted.streams.producer(Data1, { require: (peer) => peer.tags.has('tag2') })
    open.streams.producer(Data1)
    const tagged = await nodes.create({ bootstrap: restricted.addresses, tags: ['tag1', 'tag2'] })
    const untagged = await nodes.create({ bootstrap: restricted.addresses, tags: ['tag3', 'tag4'] })
    const cTagged = tagged.streams.consumer(Data1)
    const cUntagged = untagged.streams.consumer(Data1)
    const refused = consumerEvent(
      cUntagged,
      'producer:disconnected',
      (e) => e.info.producerId === restricted.peerId,
    )
    await within(secs(10), cTagged.when.subscribed().minimumOf(2).wait())
    await within(secs(10), cUntagged.when.subscribed().wait())
    expect((await within(secs(10), refused)).close.code).toBe(CloseCode.StreamNotAllowed)
    expect(cUntagged.producers().map((ch) => ch.producerId)).toEqual([open.peerId])
  })

  it('by_ticket: require verifies a JWT the consumer carries in its entry', async () => {
    const secret = 'streams-secret'
    const n0 = await nodes.create()
    const p = n0.streams.producer(Data1, { require: hasValidJwt(secret) })
    const valid = await nodes.create({ bootstrap: n0.addresses })
    const expired = await nodes.create({ bootstrap: n0.addresses })
    const missing = await nodes.create({ bootstrap: n0.addresses })
    await giveJwt(valid, secret)
    await giveJwt(expired, secret, true)
    const refusals = [expired, missing].map((n) =>
      consumerEvent(
        n.streams.consumer(Data1),
        'producer:disconnected',
        (e) => e.close.code === CloseCode.StreamNotAllowed,
      ),
    )
    const c = valid.streams.consumer(Data1)
    await within(secs(10), p.when.subscribed().wait())
    await within(secs(10), Promise.all(refusals), 'expired and missing tickets refused')
    await p.send('for ticket holders')
    expect(await take(c, 1)).toEqual(['for ticket holders'])
    expect(p.consumers().map((ch) => ch.consumerId)).toEqual([valid.peerId])
  })

  it('rtt: require(rttBelow(5 s)) accepts a local consumer', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.producer(Data1, { require: (peer) => rttBelow(peer, 5000) })
    const n1 = await nodes.create({ bootstrap: n0.addresses })
    const c = n1.streams.consumer(Data1)
    await within(secs(10), p.when.subscribed().wait())
    expect(n0.discovery.rtt(n1.peerId)).toBeDefined()
    await p.send('fast')
    expect(await take(c, 1)).toEqual(['fast'])
  })

  it('rtt: require(rttBelow(1 ns)) refuses every consumer, measured at admission', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.producer(Data1, { require: (peer) => rttBelow(peer, 1e-6) })
    const n1: Network = await nodes.create({ bootstrap: n0.addresses })
    const refused = producerEvent(p, 'consumer:rejected')
    n1.streams.consumer(Data1)
    expect((await within(secs(10), refused)).code).toBe(CloseCode.StreamNotAllowed)
    expect(n0.discovery.rtt(n1.peerId)).toBeDefined()
    expect(p.consumers()).toHaveLength(0)
  })
})
