/**
 * mosaik declares streams with the `stream!` macro (ids from Rust type names, config bundled in the
 * declaration). Here a stream is declared with `defineStream(name, { streamId, codec, schema })` and the
 * per-side options travel with the producer() / consumer() calls; these tests port each macro test's
 * intent to that shape.
 */
import { afterEach, describe, expect, it } from 'vitest'
import {
  CloseCode,
  type ConsumerOptions,
  Digest,
  defineStream,
  type Network,
  type ProducerOptions,
} from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { consumerEvent, giveJwt, hasValidJwt, settle, take } from './support.ts'

const trusted = (peer: { tags: { has(t: string): boolean } }) => peer.tags.has('trusted')

describe('stream declarations', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  /** Sends one datum from `p` and expects `c` to get it. */
  async function flows(producer: Network, consumer: Network, name: string, pOpts = {}, cOpts = {}) {
    const def = defineStream<string>(name)
    const p = producer.streams.producer(def, pOpts)
    const c = consumer.streams.consumer(def, cOpts)
    await within(secs(10), p.when.subscribed().wait())
    await p.send(`${name}!`)
    expect(await take(c, 1)).toEqual([`${name}!`])
    return { p, c }
  }

  /** A consumer of `name` that must be refused with NotAllowed by its producer. */
  async function refused(net: Network, name: string, options: ConsumerOptions = {}) {
    const c = net.streams.consumer(defineStream<string>(name), options)
    const e = await within(
      secs(10),
      consumerEvent(c, 'producer:disconnected', () => true),
      'refusal',
    )
    expect(e.close.code).toBe(CloseCode.StreamNotAllowed)
    expect(e.retry).toBe('none')
    return c
  }

  it('stream_macro_simple: one definition serves producer and consumer', async () => {
    const [n0, n1] = await nodes.star(2)
    const Simple = defineStream<string>('SimpleStream')
    expect(Simple.streamId.equals(Digest.from('SimpleStream'))).toBe(true)
    await flows(n0!, n1!, 'SimpleStream')
  })

  it('stream_macro_named: an explicit id is the digest of its literal', async () => {
    const Named = defineStream<string>('Named', { streamId: 'named.stream' })
    expect(Named.streamId.equals(Digest.from('named.stream'))).toBe(true)
    const [n0, n1] = await nodes.star(2)
    const p = n0!.streams.producer(Named)
    const c = n1!.streams.consumer(Named)
    await within(secs(10), p.when.subscribed().wait())
    await p.send('named')
    expect(await take(c, 1)).toEqual(['named'])
  })

  it('stream_macro_const_id: an id given as a Digest constant', async () => {
    const ID = Digest.from('const.stream')
    const Const = defineStream<string>('Const', { streamId: ID })
    expect(Const.streamId).toBe(ID)
    const [n0, n1] = await nodes.star(2)
    const p = n0!.streams.producer(Const)
    const c = n1!.streams.consumer(Const)
    await within(secs(10), p.when.subscribed().wait())
    await p.send('const')
    expect(await take(c, 1)).toEqual(['const'])
  })

  it('stream_macro_configured: producer onlineWhen and require travel with the producer', async () => {
    const n0 = await nodes.create()
    const options: ProducerOptions<string> = {
      require: trusted,
      onlineWhen: (c) => c.minimumOf(1).withTags('trusted'),
    }
    const p = n0.streams.producer(defineStream<string>('Configured'), options)
    const plain = await nodes.create({ bootstrap: n0.addresses })
    await refused(plain, 'Configured')
    expect(p.isOnline).toBe(false)
    const good = await nodes.create({ bootstrap: n0.addresses, tags: ['trusted'] })
    good.streams.consumer(defineStream<string>('Configured'))
    await within(secs(10), p.when.online().wait())
  })

  it('stream_macro_producer_only: a producer-only declaration and a consumer built from the id', async () => {
    const [n0, n1] = await nodes.star(2)
    const ProducerSide = defineStream<string>('producer.only')
    const ConsumerSide = defineStream<string>('some other name', { streamId: ProducerSide.streamId })
    const p = n0!.streams.producer(ProducerSide)
    const c = n1!.streams.consumer(ConsumerSide)
    await within(secs(10), p.when.subscribed().wait())
    await p.send('p-only')
    expect(await take(c, 1)).toEqual(['p-only'])
  })

  it('stream_macro_producer_require: a producer-only stream admits trusted consumers only', async () => {
    const n0 = await nodes.create()
    n0.streams.producer(defineStream<string>('p.require'), { require: trusted })
    const good = await nodes.create({ bootstrap: n0.addresses, tags: ['trusted'] })
    const plain = await nodes.create({ bootstrap: n0.addresses })
    await refused(plain, 'p.require')
    const c = good.streams.consumer(defineStream<string>('p.require'))
    await within(secs(10), c.when.subscribed().wait())
  })

  it('stream_macro_consumer_require: a consumer-only stream uses trusted producers only', async () => {
    const n0 = await nodes.create()
    const def = defineStream<string>('c.require')
    const c = n0.streams.consumer(def, { require: trusted })
    const good = await nodes.create({ bootstrap: n0.addresses, tags: ['trusted'] })
    const plain = await nodes.create({ bootstrap: n0.addresses })
    good.streams.producer(def)
    plain.streams.producer(def)
    await within(secs(10), c.when.subscribed().wait())
    await within(secs(10), n0.discovery.when.peers(2))
    await settle()
    expect(c.producers().map((ch) => ch.producerId)).toEqual([good.peerId])
  })

  it('stream_macro_require_ticket: tickets required on both sides', async () => {
    const secret = 'both-sides'
    const n0 = await nodes.create()
    await giveJwt(n0, secret)
    const valid = await nodes.create({ bootstrap: n0.addresses })
    const expired = await nodes.create({ bootstrap: n0.addresses })
    const missing = await nodes.create({ bootstrap: n0.addresses })
    await giveJwt(valid, secret)
    await giveJwt(expired, secret, true)
    const both = { require: hasValidJwt(secret) }
    await flows(n0, valid, 'ticketed', both, both)
    await refused(expired, 'ticketed', both)
    await refused(missing, 'ticketed', both)
  })

  it('stream_macro_producer_require_ticket: a consumer without a ticket is refused', async () => {
    const secret = 'producer-side'
    const n0 = await nodes.create()
    const holder = await nodes.create({ bootstrap: n0.addresses })
    const without = await nodes.create({ bootstrap: n0.addresses })
    await giveJwt(holder, secret)
    await flows(n0, holder, 'p.ticket', { require: hasValidJwt(secret) })
    await refused(without, 'p.ticket')
  })

  it('stream_macro_consumer_require_ticket: subscribes only to the producer with a ticket', async () => {
    const secret = 'consumer-side'
    const n0 = await nodes.create()
    const def = defineStream<string>('c.ticket')
    const c = n0.streams.consumer(def, { require: hasValidJwt(secret) })
    const holder = await nodes.create({ bootstrap: n0.addresses })
    const without = await nodes.create({ bootstrap: n0.addresses })
    await giveJwt(holder, secret)
    holder.streams.producer(def)
    without.streams.producer(def)
    await within(secs(10), c.when.subscribed().wait())
    await within(secs(10), n0.discovery.when.peers(2))
    await settle()
    expect(c.producers().map((ch) => ch.producerId)).toEqual([holder.peerId])
  })

  it('stream_macro_multiple_require_ticket: every validator must pass, on both sides', async () => {
    const [s1, s2] = ['first-secret', 'second-secret']
    const require = [hasValidJwt(s1), hasValidJwt(s2)]
    const n0 = await nodes.create()
    await giveJwt(n0, s1)
    await giveJwt(n0, s2)
    const full = await nodes.create({ bootstrap: n0.addresses })
    const half = await nodes.create({ bootstrap: n0.addresses })
    await giveJwt(full, s1)
    await giveJwt(full, s2)
    await giveJwt(half, s1)
    await flows(n0, full, 'two.tickets', { require }, { require })
    await refused(half, 'two.tickets', { require })
  })
})
