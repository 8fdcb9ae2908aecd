import { afterEach, describe, expect, it } from 'vitest'
import { CloseCode, codecs, defineStream, type Network } from '../../platform/node/index.ts'
import { INITIAL_CREDIT, Link } from '../../src/transport/link.ts'
import { Nodes, type Transport } from '../support/nodes.ts'
import { ms, secs, within } from '../support/time.ts'
import { consumerEvent, FAST_BACKOFF, producerEvent, take } from './support.ts'

const Bytes = defineStream<Uint8Array>('bytes', { codec: codecs.raw })

/** A datum carrying its sequence number in its first 4 bytes. */
function datum(i: number, size: number): Uint8Array {
  const d = new Uint8Array(size)
  new DataView(d.buffer).setUint32(0, i)
  return d
}
const seq = (d: Uint8Array) => new DataView(d.buffer, d.byteOffset).getUint32(0)

/** Reads `n` datums and checks they are 0..n-1 in order; resolves with the receive times. */
async function readInOrder(c: { recv(o?: { signal?: AbortSignal }): Promise<Uint8Array> }, n: number) {
  const signal = AbortSignal.timeout(secs(30))
  const times: number[] = []
  for (let i = 0; i < n; i++) {
    const d = await c.recv({ signal })
    if (seq(d) !== i) throw new Error(`expected datum ${i}, got ${seq(d)}`)
    times.push(performance.now())
  }
  return times
}

describe.each<Transport>(['memory', 'quic'])('flow control over %s', (transport) => {
  const nodes = new Nodes(transport)
  afterEach(() => nodes.closeAll())

  async function consumersOf(n0: Network, count: number): Promise<Network[]> {
    return Promise.all(Array.from({ length: count }, () => nodes.create({ bootstrap: n0.addresses })))
  }

  it('fans out to 10 consumers, each receiving every datum in order', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.producer(Bytes)
    const cs = (await consumersOf(n0, 10)).map((n) => n.streams.consumer(Bytes))
    await within(secs(20), p.when.subscribed().minimumOf(10).wait(), 'ten subscribers')
    const N = 3000
    const reads = cs.map((c) => readInOrder(c, N))
    for (let i = 0; i < N; i++) await p.send(datum(i, 64))
    await within(secs(30), Promise.all(reads))
    for (const c of cs) expect(c.stats.datums).toBe(N)
    expect(p.stats).toMatchObject({ datums: N, dropped: 0, lagging: 0 })
  })

  it('batches a send() loop: many datums per frame, not one write each', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.producer(Bytes)
    const n1 = await nodes.create({ bootstrap: n0.addresses })
    const c = n1.streams.consumer(Bytes)
    await within(secs(10), p.when.subscribed().wait())
    const N = 5000
    const read = readInOrder(c, N)
    let frames = 0
    const sendBytes = Link.prototype.sendBytes
    Link.prototype.sendBytes = function (this: Link, ...args: Parameters<Link['sendBytes']>) {
      frames++
      return sendBytes.apply(this, args)
    }
    try {
      for (let i = 0; i < N; i++) await p.send(datum(i, 64))
      await within(secs(20), read)
    } finally {
      Link.prototype.sendBytes = sendBytes
    }
    // Every frame written in the run (discovery's too) counts; a frame per datum would be 5000.
    expect(frames).toBeLessThan(N / 20)
  })

  it('drops a slow consumer with TooSlow while fast ones keep their rate and lose nothing', async () => {
    const n0 = await nodes.create()
    const lagTimeoutMs = ms(300)
    const p = n0.streams.producer(Bytes, { bufferSize: 64, lagTimeoutMs })
    const [f1, f2, s] = await consumersOf(n0, 3)
    const fast = [f1!, f2!].map((n) => n.streams.consumer(Bytes))
    // The slow consumer never reads: its buffer, then its link window, then its producer queue fill.
    const slow = s!.streams.consumer(Bytes, { bufferSize: 16, backoff: { initialMs: secs(30) } })
    await within(secs(10), p.when.subscribed().minimumOf(3).wait())
    const tooSlow = producerEvent(p, 'consumer:disconnected', (e) => e.info.consumerId === s!.peerId)
    const told = consumerEvent(slow, 'producer:disconnected', () => true)

    const N = 4000
    const reads = fast.map((c) => readInOrder(c, N))
    const started = performance.now()
    for (let i = 0; i < N; i++) await p.send(datum(i, 1024))
    const times = await within(secs(30), Promise.all(reads))
    const elapsed = performance.now() - started

    expect((await within(secs(5), tooSlow)).close.code).toBe(CloseCode.StreamTooSlow)
    const seen = await within(secs(5), told)
    expect(seen.close).toMatchObject({ code: CloseCode.StreamTooSlow, remote: true })
    expect(seen.retry).toBe('backoff')
    expect(p.stats.lagging).toBe(1)
    expect(p.stats.dropped).toBe(0)
    for (const c of fast) expect(c.stats.datums).toBe(N)
    // The slow consumer held the fast ones back once, for about the lag timeout, and never again.
    const gaps = times[0]!.slice(1).map((t, i) => t - times[0]![i]!)
    expect(Math.max(...gaps)).toBeLessThan(lagTimeoutMs + ms(1500))
    expect(elapsed).toBeLessThan(lagTimeoutMs + secs(10))
    // It received no more than its buffer (and one batch) holds, all of it unread.
    expect(slow.stats.datums).toBe(slow.buffered)
    expect(slow.buffered).toBeLessThanOrEqual(16 + 32)
  })

  it('times a lagging consumer on the monotonic clock: a wall clock that stands still does not keep it', async () => {
    // The producer's node reads a wall clock that never moves (a VM paused and resumed, a clock set
    // back): the lag timeout must still run out, on the clock that measures durations.
    const frozen = Date.now()
    const n0 = await nodes.create({ clock: () => frozen })
    const lagTimeoutMs = ms(300)
    const p = n0.streams.producer(Bytes, { bufferSize: 64, lagTimeoutMs })
    const [f, s] = await consumersOf(n0, 2)
    const fast = f!.streams.consumer(Bytes)
    const slow = s!.streams.consumer(Bytes, { bufferSize: 16, backoff: { initialMs: secs(30) } })
    await within(secs(10), p.when.subscribed().minimumOf(2).wait(), 'two subscribers')
    const tooSlow = producerEvent(p, 'consumer:disconnected', (e) => e.info.consumerId === s!.peerId)

    const N = 2000
    const read = readInOrder(fast, N)
    const sent = (async () => {
      for (let i = 0; i < N; i++) await p.send(datum(i, 1024))
    })()
    await within(secs(10), Promise.all([sent, read]), 'the fast consumer read all, past the slow one')
    expect((await within(secs(5), tooSlow, 'the slow consumer dropped')).close.code).toBe(
      CloseCode.StreamTooSlow,
    )
    expect(p.stats.lagging).toBe(1)
    expect(slow.stats.datums).toBe(slow.buffered)
  })

  it('with disconnectLagging off, a lagging consumer stays subscribed and its drops are counted', async () => {
    const n0 = await nodes.create()
    const p = n0.streams.producer(Bytes, { bufferSize: 64, lagTimeoutMs: ms(200), disconnectLagging: false })
    const [f1, s] = await consumersOf(n0, 2)
    const fast = f1!.streams.consumer(Bytes)
    const slow = s!.streams.consumer(Bytes, { bufferSize: 16 })
    await within(secs(10), p.when.subscribed().minimumOf(2).wait())
    let disconnects = 0
    p.on('consumer:disconnected', () => disconnects++)

    const N = 3000
    const read = readInOrder(fast, N)
    for (let i = 0; i < N; i++) await p.send(datum(i, 1024))
    await within(secs(30), read)
    expect(p.stats.lagging).toBeGreaterThanOrEqual(1)
    expect(p.stats.dropped).toBeGreaterThan(0)
    expect(disconnects).toBe(0)
    expect(p.consumers()).toHaveLength(2)

    // What the slow consumer does get is in order, with a gap where its copies were dropped.
    const got = await take(slow, 16)
    expect(got.map(seq)).toEqual(Array.from({ length: 16 }, (_, i) => i))
    expect(fast.stats.datums).toBe(N)
  })

  it("bounds what a consumer that stops reading buffers by its link's credit window", async () => {
    const n0 = await nodes.create()
    const bufferSize = 32
    const p = n0.streams.producer(Bytes, { bufferSize })
    const n1 = await nodes.create({ bootstrap: n0.addresses })
    const c = n1.streams.consumer(Bytes, { bufferSize: 16, backoff: FAST_BACKOFF })
    await within(secs(10), p.when.subscribed().wait())
    const size = 1024
    let accepted = 0
    try {
      while (true)
        await p.send(datum(accepted, size), { signal: AbortSignal.timeout(ms(400)) }).then(() => accepted++)
    } catch (err) {
      expect((err as Error).name).toBe('TimeoutError')
    }
    // Queued at the producer + in flight within the credit window (plus one batch of overshoot) +
    // the consumer's buffer (plus one batch): nothing grows past that. The window started at
    // INITIAL_CREDIT and grew by what the consumer read before it stopped: its buffer and a batch.
    const batch = Math.ceil((32 * 1024) / (size + 2))
    const window = INITIAL_CREDIT + (16 + batch) * (size + 2)
    const bound = bufferSize + Math.ceil(window / (size + 2)) + batch + 16 + batch
    expect(accepted).toBeGreaterThan(bufferSize)
    expect(accepted).toBeLessThanOrEqual(bound)
    expect(c.buffered).toBeLessThanOrEqual(16 + batch)
    expect(p.consumers()[0]?.state).toBe('connected')
    // A lone consumer is never lagging: once it reads, everything arrives.
    await within(secs(20), readInOrder(c, accepted))
    expect(p.stats.lagging).toBe(0)
  })
})
