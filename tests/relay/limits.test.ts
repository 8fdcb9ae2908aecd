/**
 * The relay's own rate cap (`--max-bytes-per-second`): relayed traffic slows down to it, nothing is
 * lost, and the relayed connection survives being held back.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineStream, Network } from '../../platform/node/index.ts'
import { uniqueNetwork } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { killAll, RelayProcess } from './support.ts'

const network = uniqueNetwork('relay-limits')
const RATE = 256 * 1024
let dir: string
let relay: RelayProcess
const nets: Network[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mosaik-relay-limits-'))
  relay = await within(
    secs(40),
    RelayProcess.start([
      '--network',
      network,
      '--identity',
      join(dir, 'relay.key'),
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--http-port',
      '0',
      '--max-bytes-per-second',
      String(RATE),
    ]),
    'relay ready',
  )
})

afterAll(async () => {
  killAll()
  await Promise.all(nets.map((n) => n.close()))
  await rm(dir, { recursive: true, force: true })
})

describe('mosaik-relay limits', () => {
  it('holds relayed traffic to --max-bytes-per-second without losing any of it', async () => {
    const tcp = relay.address('tcp')
    const [a, b] = await Promise.all(
      [0, 1].map(async () => {
        const net = await Network.create({
          network,
          bootstrap: [tcp],
          listen: [`${tcp}/p2p-circuit`],
        })
        nets.push(net)
        return net
      }),
    )
    const Blobs = defineStream<Uint8Array>('relay/limited')
    const producer = a!.streams.producer(Blobs)
    const consumer = b!.streams.consumer(Blobs)
    await within(secs(30), producer.when.subscribed().minimumOf(1).wait(), 'subscribed through the relay')
    const blob = new Uint8Array(5 * RATE).map((_, i) => i % 253)
    const start = Date.now()
    await producer.send(blob)
    expect(await within(secs(30), consumer.recv(), 'datum through the throttled relay')).toEqual(blob)
    // One second of burst, then the rate: 4 s for 5 s worth of bytes.
    const elapsed = Date.now() - start
    expect(elapsed).toBeGreaterThan(3500)
    // The held pipe was released: the connection still carries data.
    await producer.send(blob.subarray(0, 16))
    expect(await within(secs(20), consumer.recv(), 'datum after throttling')).toEqual(blob.subarray(0, 16))
    const text = await (await fetch(`${relay.http}/metrics`)).text()
    expect(Number(/^mosaik_relay_throttled_total (\d+)/m.exec(text)?.[1])).toBeGreaterThanOrEqual(1)
    await producer.close()
    await consumer.close()
  })
})
