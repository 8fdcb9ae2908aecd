/**
 * The relay's own caps. `--max-bytes-per-second`: relayed traffic slows down to it, nothing is lost,
 * and the relayed connection survives being held back. `--max-circuits`: a relayed connection over
 * the cap is refused, even among requests arriving together, and a slot frees when a circuit closes.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import type { Connection, Libp2p } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
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

describe('mosaik-relay --max-circuits', () => {
  let capped: RelayProcess
  const clients: Libp2p[] = []

  beforeAll(async () => {
    capped = await within(
      secs(40),
      RelayProcess.start([
        '--network',
        network,
        '--identity',
        join(dir, 'capped.key'),
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--http-port',
        '0',
        '--max-circuits',
        '1',
      ]),
      'capped relay ready',
    )
  })

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.stop()))
    await capped?.terminate()
  })

  /** A bare libp2p node that relays through circuit-relay-v2 (listening on `listen`, if given). */
  async function client(listen: string[] = []): Promise<Libp2p> {
    const c = await createLibp2p({
      addresses: { listen },
      transports: [tcp(), circuitRelayTransport()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify() },
    })
    clients.push(c)
    return c
  }

  async function circuits(): Promise<{ active: number; refused: number }> {
    const text = await (await fetch(`${capped.http}/metrics`)).text()
    const value = (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1])
    return {
      active: value('mosaik_relay_circuits_active'),
      refused: value('mosaik_relay_circuits_refused_total'),
    }
  }

  /** Resolves once `check` holds: the relay's counts change in another process, with no event here. */
  async function until(what: string, check: () => Promise<boolean>): Promise<void> {
    await within(
      secs(10),
      (async () => {
        while (!(await check())) await new Promise((r) => setTimeout(r, 20))
      })(),
      what,
    )
  }

  it('refuses a relayed connection over the cap, even among ones asked for together, until one closes', async () => {
    const tcpAddress = capped.address('tcp')
    const target = await client([`${tcpAddress}/p2p-circuit`])
    const through = multiaddr(`${tcpAddress}/p2p-circuit/p2p/${target.peerId}`)
    const [a, b] = await Promise.all([client(), client()])
    // Both ask at once: one slot, so exactly one circuit opens.
    const dials = await Promise.allSettled([a!.dial(through), b!.dial(through)])
    expect(dials.map((d) => d.status).sort()).toEqual(['fulfilled', 'rejected'])
    const winner = dials[0]!.status === 'fulfilled' ? 0 : 1
    const open = (dials[winner] as PromiseFulfilledResult<Connection>).value
    const loser = winner === 0 ? b! : a!
    expect(await circuits()).toEqual({ active: 1, refused: 1 })
    // Asked again while the circuit is open: refused again.
    await expect(loser.dial(through)).rejects.toThrow()
    expect(await circuits()).toEqual({ active: 1, refused: 2 })
    // The circuit closes: its slot frees, and the one refused gets through.
    await open.close()
    await until('the circuit closed at the relay', async () => (await circuits()).active === 0)
    const second = await within(secs(10), loser.dial(through), 'relayed dial after a slot freed')
    expect(second.remotePeer.equals(target.peerId)).toBe(true)
    expect(await circuits()).toEqual({ active: 1, refused: 2 })
  })
})
