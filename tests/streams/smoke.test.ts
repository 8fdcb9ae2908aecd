import { afterEach, describe, expect, it } from 'vitest'
import { type Codec, Digest, defineStream, PeerEntry } from '../../platform/node/index.ts'
import { fromUtf8, utf8 } from '../../src/primitives/bytes.ts'
import { Nodes, type Transport } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { converge, take } from './support.ts'

// mosaik's tests share two datum types; here a stream is declared by name.
const Data1 = defineStream<string>('Data1')

describe.each<Transport>(['memory', 'quic'])('streams smoke over %s', (transport) => {
  const nodes = new Nodes(transport)
  afterEach(() => nodes.closeAll())

  it('send_recv: two consumers receive the same 100 datums in order', async () => {
    const [n0, n1, n2] = await nodes.star(3)
    const p = n0!.streams.getOrCreateProducer(Data1)
    const c1 = n1!.streams.consumer(Data1)
    const c2 = n2!.streams.consumer(Data1)
    await within(secs(10), p.when.subscribed().minimumOf(2).wait(), 'two subscribers')
    const sent = Array.from({ length: 100 }, (_, i) => `message ${i}`)
    for (const d of sent) await p.send(d)
    expect(await take(c1, 100)).toEqual(sent)
    expect(await take(c2, 100)).toEqual(sent)
    expect(c1.stats.datums).toBe(100)
    expect(c2.stats.datums).toBe(100)
    expect(p.stats.datums).toBe(100)
  })

  it('a burst under the default codec, queued in one turn across many encode buffers, arrives intact', async () => {
    const [n0, n1] = await nodes.star(2)
    const Records = defineStream<{ id: number; body: string }>('Records')
    const p = n0!.streams.producer(Records, { bufferSize: 4096 })
    const c = n1!.streams.consumer(Records, { bufferSize: 4096 })
    await within(secs(10), p.when.subscribed().wait(), 'subscribed')
    // 3 000 datums of ~120 bytes, all encoded before the first flush: more than any one slab holds.
    const sent = Array.from({ length: 3000 }, (_, id) => ({ id, body: `${id}:`.padEnd(100, 'x') }))
    for (const d of sent) p.trySend(d)
    expect(await take(c, sent.length)).toEqual(sent)
  })

  it('subscription_triggers_catalog_sync: a producer known only unsigned is synced, then subscribed', async () => {
    const n0 = await nodes.create({ tags: ['tag1', 'tag2', 'tag3'] })
    const n1 = await nodes.create()
    const p = n0.streams.getOrCreateProducer(Data1)
    await within(
      secs(5),
      n0.discovery.when.catalog((c) => c.local.streams.has(p.streamId)),
    )
    // n1 learns n0 out of band, unsigned; n0 has never heard of n1, so it answers UnknownPeer first.
    const entry = n0.discovery.me().entry
    expect(n1.discovery.insert(new PeerEntry({ ...entryFields(entry) }))).toBe(true)
    expect(n1.discovery.catalog().signedCount).toBe(0)
    const c1 = n1.streams.consumer(Data1)
    await within(secs(10), c1.when.subscribed().wait(), 'subscribed')
    // Whichever sync brings n0's signed entry (the one after UnknownPeer, or discovery's first-contact
    // sync racing it on the new connection), n1 ends up holding it.
    const known = await within(
      secs(10),
      n1.discovery.when.catalog((c) => c.getSigned(n0.peerId) !== undefined),
      'signed entry',
    ).then((c) => c.get(n0.peerId))
    expect(known?.tags.hasAll(['tag1', 'tag2', 'tag3'])).toBe(true)
    await p.send('hello')
    expect(await take(c1, 1)).toEqual(['hello'])
  })

  it('custom_stream_id: two producers of one definition under different ids stay apart', async () => {
    const [n0, n1] = await nodes.star(2)
    const p1 = n0!.streams.producer(Data1, { streamId: 'stream1234' })
    const p2 = n0!.streams.producer(Data1, { streamId: 'stream5678' })
    const c1 = n1!.streams.consumer(Data1, { streamId: 'stream1234' })
    const c2 = n1!.streams.consumer(Data1, { streamId: 'stream5678' })
    expect(p1.streamId.equals(Digest.from('stream1234'))).toBe(true)
    await within(secs(10), Promise.all([p1.when.subscribed().wait(), p2.when.subscribed().wait()]))
    await p1.send('one')
    await p2.send('two')
    expect(await take(c1, 1)).toEqual(['one'])
    expect(await take(c2, 1)).toEqual(['two'])
    expect(c1.tryRecv()).toBeUndefined()
    expect(c2.tryRecv()).toBeUndefined()
  })

  it('custom_datum_encoding: a hand-written codec is used on both ends', async () => {
    const custom: Codec<string> = {
      encode: (s) => utf8(s),
      decode: (b) => `${fromUtf8(b)}-custom-decode`,
    }
    const Custom = defineStream<string>('custom', { codec: custom })
    const [n0, n1] = await nodes.star(2)
    const p = n0!.streams.getOrCreateProducer(Custom)
    const c = n1!.streams.consumer(Custom)
    await within(secs(10), p.when.subscribed().wait())
    await p.send('payload')
    expect(await take(c, 1)).toEqual(['payload-custom-decode'])
    expect(c.stats.bytes).toBe(7)
  })

  it('stream_def: an explicit stream id names the stream on both sides', async () => {
    const Def = defineStream<string>('whatever', { streamId: 'my-stream1' })
    expect(Def.streamId.equals(Digest.from('my-stream1'))).toBe(true)
    const [n0, n1] = await nodes.star(2)
    const p = n0!.streams.producer(Def)
    const c = n1!.streams.consumer(Def)
    expect(c.streamId.equals(p.streamId)).toBe(true)
    await within(secs(10), p.when.subscribed().wait())
    await p.send('x')
    expect(await take(c, 1)).toEqual(['x'])
    await converge([n0!, n1!])
    expect(n1!.discovery.catalog().get(n0!.peerId)?.streams.has('my-stream1')).toBe(true)
  })
})

function entryFields(e: PeerEntry) {
  return {
    peerId: e.peerId,
    network: e.network,
    version: e.version,
    addresses: e.addresses,
    tags: e.tags,
    streams: e.streams,
    groups: e.groups,
  }
}
