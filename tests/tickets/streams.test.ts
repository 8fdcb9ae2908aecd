import { afterEach, describe, expect, it } from 'vitest'
import {
  CloseCode,
  type Consumer,
  defineStream,
  EntryLimitError,
  Jwt,
  JwtSigningKey,
  JwtTicketBuilder,
  type Network,
  Ticket,
} from '../../platform/node/index.ts'
import { consumerEvent, FAST_BACKOFF, take } from '../streams/support.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { giveTicket, jwtBuilder, jwtValidator, sees } from './support.ts'

const Data1 = defineStream<string>('Data1')

/** Producer ids a consumer is connected to. */
const connectedTo = (c: Consumer<string>) =>
  c
    .producers()
    .filter((p) => p.state === 'connected')
    .map((p) => p.producerId)

describe('tickets on streams (mosaik tickets::jwt)', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  /** A producer node of Data1 bootstrapped from `n0`, holding the given tickets (built for it). */
  async function producerNode(n0: Network, builders: JwtTicketBuilder[]): Promise<Network> {
    const n = await nodes.create({ bootstrap: n0.addresses })
    for (const b of builders) await giveTicket(n, b)
    n.streams.getOrCreateProducer(Data1)
    await sees([n0], n, (p) => p.streams.has(Data1.streamId) && p.tickets.length === builders.length)
    return n
  }

  it('discovery: add, replace and remove tickets re-sign the entry only when it changes', async () => {
    const n0 = await nodes.create()
    const version = () => n0.discovery.me().entry.version.update
    const first = await jwtBuilder().build(n0.peerId)
    await n0.discovery.addTicket(first)
    const v1 = version()
    await n0.discovery.addTicket(first)
    expect(version()).toBe(v1)
    const renewed = await jwtBuilder().tokenId('renewed').build(n0.peerId)
    await n0.discovery.replaceTicket(renewed)
    expect(n0.discovery.me().entry.tickets.map((t) => Ticket.id(t).toString())).toEqual([
      Ticket.id(renewed).toString(),
    ])
    expect(version()).toBeGreaterThan(v1)
    await n0.discovery.removeTicket(Ticket.id(renewed))
    expect(n0.discovery.me().entry.tickets).toHaveLength(0)
    const many = Array.from({ length: 17 }, (_, i) => Ticket.create('many', new Uint8Array([i])))
    for (const t of many.slice(0, 16)) await n0.discovery.addTicket(t)
    await expect(n0.discovery.addTicket(many[16]!)).rejects.toBeInstanceOf(EntryLimitError)
    await n0.discovery.removeTicketsOf('many')
    expect(n0.discovery.me().entry.tickets).toHaveLength(0)
  })

  it('stream_consumer: only the producer with a valid JWT is used, and data flows', async () => {
    const n0 = await nodes.create()
    const c = n0.streams.consumer(Data1, { requireTicket: jwtValidator() })
    const connected: string[] = []
    c.on('producer:connected', (info) => connected.push(info.producerId))
    // The refused producers come first: by the time the valid one is subscribed, they were judged.
    await producerNode(n0, [jwtBuilder().expiresAt(Date.now() - 60_000)])
    await producerNode(n0, [])
    const valid = await producerNode(n0, [jwtBuilder()])
    await within(secs(10), c.when.subscribed().wait(), 'subscribed to the valid producer')
    await valid.streams.getOrCreateProducer(Data1).send('hello')
    expect(await take(c, 1)).toEqual(['hello'])
    expect(connectedTo(c)).toEqual([valid.peerId])
    expect(connected).toEqual([valid.peerId])
  })

  it('stream_consumer_ticket_expiry: the consumer drops the producer when its ticket expires', async () => {
    const n0 = await nodes.create()
    const c = n0.streams.consumer(Data1, { requireTicket: jwtValidator() })
    const expiresAt = Date.now() + 3000
    const p1 = await producerNode(n0, [jwtBuilder().expiresAt(expiresAt)])
    await within(secs(10), c.when.subscribed().wait())
    await p1.streams.getOrCreateProducer(Data1).send('before expiry')
    expect(await take(c, 1)).toEqual(['before expiry'])
    await within(secs(8), c.when.unsubscribed().wait(), 'dropped at expiry')
    // The token's exp is in whole seconds: the drop comes at expiresAt rounded to the nearest second.
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt - 500)
    expect(c.producers()).toHaveLength(0)
  })

  it('stream_producer: only the consumer with a valid JWT is accepted; others get NotAllowed', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.producer(Data1, { requireTicket: jwtValidator() })
    async function consumerNode(builders: JwtTicketBuilder[]) {
      const n = await nodes.create({ bootstrap: n0.addresses })
      for (const b of builders) await giveTicket(n, b, [n0])
      return n.streams.consumer(Data1, { backoff: FAST_BACKOFF })
    }
    const expired = await consumerNode([jwtBuilder().expiresAt(Date.now() - 60_000)])
    const missing = await consumerNode([])
    const refusals = [expired, missing].map((c) =>
      consumerEvent(c, 'producer:disconnected', (e) => e.close.code === CloseCode.StreamNotAllowed),
    )
    const valid = await consumerNode([jwtBuilder()])
    await within(secs(10), Promise.all(refusals), 'NotAllowed for the consumers without valid tickets')
    await within(secs(10), valid.when.subscribed().wait())
    await p.send('only for you')
    expect(await take(valid, 1)).toEqual(['only for you'])
    expect(p.consumers().map((s) => s.consumerId)).toHaveLength(1)
    expect(expired.producers().every((s) => s.state === 'terminated')).toBe(true)
  })

  it('stream_consumer_multiple_validators: only the producer holding both tickets is used', async () => {
    const n0 = await nodes.create()
    const [va, vb] = [jwtValidator('issuer-a', 'secret-a'), jwtValidator('issuer-b', 'secret-b')]
    const c = n0.streams.consumer(Data1, { requireTicket: [va, vb] })
    const connected: string[] = []
    c.on('producer:connected', (info) => connected.push(info.producerId))
    await producerNode(n0, [jwtBuilder('issuer-a', 'secret-a')])
    await producerNode(n0, [jwtBuilder('issuer-b', 'secret-b')])
    const both = await producerNode(n0, [
      jwtBuilder('issuer-a', 'secret-a'),
      jwtBuilder('issuer-b', 'secret-b'),
    ])
    await within(secs(10), c.when.subscribed().wait())
    expect(connected).toEqual([both.peerId])
  })

  it('stream_producer_multiple_validators: a consumer with one of two tickets gets NotAllowed', async () => {
    const n0 = await nodes.create()
    const validators = [jwtValidator('issuer-a', 'secret-a'), jwtValidator('issuer-b', 'secret-b')]
    n0.streams.producer(Data1, { requireTicket: validators })
    const n1 = await nodes.create({ bootstrap: n0.addresses })
    const n2 = await nodes.create({ bootstrap: n0.addresses })
    await giveTicket(n1, jwtBuilder('issuer-a', 'secret-a'), [n0])
    await giveTicket(n1, jwtBuilder('issuer-b', 'secret-b'), [n0])
    await giveTicket(n2, jwtBuilder('issuer-a', 'secret-a'), [n0])
    const c2 = n2.streams.consumer(Data1)
    const refused = consumerEvent(
      c2,
      'producer:disconnected',
      (e) => e.close.code === CloseCode.StreamNotAllowed,
    )
    const c1 = n1.streams.consumer(Data1)
    await within(secs(10), c1.when.subscribed().wait())
    await within(secs(10), refused)
  })

  it('a consumer that subscribes right after adding its ticket is judged with that ticket', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.producer(Data1, { requireTicket: jwtValidator() })
    const n1 = await nodes.create({ bootstrap: n0.addresses })
    await within(secs(10), n0.discovery.when.peer(n1.peerId))
    // No wait for n0 to see the ticket: the handshake names the entry that carries it.
    await n1.discovery.addTicket(await jwtBuilder().build(n1.peerId))
    n1.streams.consumer(Data1)
    await within(secs(10), p.when.subscribed().wait())
  })

  it('stream_producer_ticket_expiry: the producer closes the consumer with NotAllowed at expiry', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.producer(Data1, { requireTicket: jwtValidator() })
    const n1 = await nodes.create({ bootstrap: n0.addresses })
    await giveTicket(n1, jwtBuilder().expiresIn(3000), [n0])
    const c = n1.streams.consumer(Data1)
    await within(secs(10), p.when.subscribed().wait())
    const closed = consumerEvent(
      c,
      'producer:disconnected',
      (e) => e.close.code === CloseCode.StreamNotAllowed,
    )
    await within(secs(8), p.when.unsubscribed().wait(), 'consumer dropped at expiry')
    await within(secs(5), closed)
    // A renewed ticket changes the consumer's entry, so it subscribes again.
    await n1.discovery.replaceTicket(await jwtBuilder().build(n1.peerId))
    await within(secs(10), p.when.subscribed().wait(), 'resubscribed with a renewed ticket')
  })

  it('a consumer that removes its ticket is closed with NotAllowed when its entry updates', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.producer(Data1, { requireTicket: jwtValidator() })
    const n1 = await nodes.create({ bootstrap: n0.addresses })
    const ticket = await giveTicket(n1, jwtBuilder(), [n0])
    const c = n1.streams.consumer(Data1)
    await within(secs(10), p.when.subscribed().wait())
    const closed = consumerEvent(
      c,
      'producer:disconnected',
      (e) => e.close.code === CloseCode.StreamNotAllowed,
    )
    await n1.discovery.removeTicket(ticket.class.derive(ticket.data))
    await within(secs(10), closed, 'closed after the revocation')
    expect(p.consumers()).toHaveLength(0)
  })

  it('es256_asymmetric_tickets: a public key validates; a producer without a ticket is excluded', async () => {
    const key = await JwtSigningKey.generate('ES256')
    const n0 = await nodes.create()
    const validator = Jwt.with(key.verifyingKey)
      .allowIssuer('es-issuer')
      .allowAudience(n0.networkId.toString())
    const c = n0.streams.consumer(Data1, { requireTicket: validator })
    const connected: string[] = []
    c.on('producer:connected', (info) => connected.push(info.producerId))
    await producerNode(n0, [])
    const builder = new JwtTicketBuilder(key)
      .issuer('es-issuer')
      .audience(n0.networkId.toString())
      .expiresIn(60_000)
    const holder = await producerNode(n0, [builder])
    await within(secs(10), c.when.subscribed().wait())
    expect(connected).toEqual([holder.peerId])
  })
})
