/**
 * The relay binary as operators run it: a child process started from source, on loopback. One relay
 * is restarted once (identity), then serves the rest of the suite, and is stopped last (departure).
 */
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineStream, Network } from '../../platform/node/index.ts'
import { uniqueNetwork } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { killAll, LOOPBACK_LISTEN, RelayProcess, runRelay } from './support.ts'

const network = uniqueNetwork('relay')
let dir: string
let relay: RelayProcess | undefined
const nets: Network[] = []

function relayArgs(): string[] {
  return ['--network', network, '--identity', join(dir, 'relay.key'), '--listen', LOOPBACK_LISTEN]
}

async function node(options: Partial<Parameters<typeof Network.create>[0]> = {}): Promise<Network> {
  const net = await Network.create({ network, listen: ['/ip4/127.0.0.1/tcp/0'], ...options })
  nets.push(net)
  return net
}

/** A node with no address of its own: it is reachable only through a reservation on the relay. */
function relayedNode(relayAddress: string): Promise<Network> {
  return node({
    bootstrap: [relayAddress],
    listen: [`${relayAddress}/p2p-circuit`],
  })
}

async function metrics(): Promise<Map<string, number>> {
  const text = await (await fetch(`${relay!.http}/metrics`)).text()
  const values = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const [name, value] = line.split(' ')
    values.set(name!, Number(value))
  }
  return values
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mosaik-relay-'))
})

afterAll(async () => {
  killAll()
  await Promise.all(nets.map((n) => n.close()))
  await rm(dir, { recursive: true, force: true })
})

describe('mosaik-relay', () => {
  it('--help prints its flags and exits 0; a bad flag exits 2', async () => {
    const help = await runRelay(['--help'])
    expect(help.code).toBe(0)
    for (const flag of ['--network', '--listen', '--identity', '--http-port', '--max-reservations']) {
      expect(help.stdout).toContain(flag)
    }
    expect(help.stdout).toContain('MOSAIK_RELAY_NETWORK')
    const bad = await runRelay(['--network', 'x', '--max-circuits', 'many'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--max-circuits')
  })

  it('without a QUIC binding it starts on the other transports and logs one warning', async () => {
    const noBinding = fileURLToPath(new URL('../network/fixtures/no-quic-binding.ts', import.meta.url))
    const r = await within(
      secs(40),
      RelayProcess.start(
        [
          '--network',
          network,
          '--identity',
          join(dir, 'other.key'),
          '--listen',
          LOOPBACK_LISTEN,
          '--http-port',
          'off',
        ],
        { NODE_OPTIONS: `--import ${noBinding}` },
      ),
      'relay ready',
    )
    expect(r.addresses.some((a) => a.includes('quic'))).toBe(false)
    expect(r.address('tcp')).toBeTruthy()
    expect(r.address('webrtc-direct')).toBeTruthy()
    expect(r.logs.filter((l) => l.code === 'MOSAIK_QUIC_UNAVAILABLE')).toHaveLength(1)
    expect(await within(secs(20), r.terminate(), 'relay exit')).toBe(0)
  })

  it('creates its identity and WebRTC certificate (mode 0600) on first run and keeps its peer id and certhash across restarts', async () => {
    const first = await within(
      secs(40),
      RelayProcess.start([...relayArgs(), '--http-port', '0']),
      'relay ready',
    )
    expect((await stat(join(dir, 'relay.key'))).mode & 0o777).toBe(0o600)
    expect((await stat(join(dir, 'relay.webrtc.pem'))).mode & 0o777).toBe(0o600)
    expect(first.logs.some((l) => l.msg === 'created identity')).toBe(true)
    expect(first.logs.some((l) => l.msg === 'created WebRTC-direct certificate')).toBe(true)
    // It listens on every transport and tells browsers where to dial.
    for (const transport of ['quic-v1', 'tcp', 'ws', 'webrtc-direct'])
      expect(first.address(transport)).toBeTruthy()
    expect(first.browserAddresses).toHaveLength(2)
    expect(first.browserAddresses.some((a) => a.includes('/ws/'))).toBe(true)
    expect(first.browserAddresses.some((a) => a.includes('/webrtc-direct/certhash/'))).toBe(true)
    await within(secs(10), first.printed('browsers dial:'), 'the summary on stdout')
    expect(await within(secs(20), first.terminate(), 'relay exit')).toBe(0)

    // Configured through the environment this time.
    relay = await within(
      secs(40),
      RelayProcess.start(['--listen', LOOPBACK_LISTEN], {
        MOSAIK_RELAY_NETWORK: network,
        MOSAIK_RELAY_IDENTITY: join(dir, 'relay.key'),
        MOSAIK_RELAY_HTTP_PORT: '0',
      }),
      'relay ready again',
    )
    expect(relay.peerId).toBe(first.peerId)
    expect(relay.logs.some((l) => l.msg === 'created identity')).toBe(false)
    // Browsers keep the WebRTC-direct address they were given: its certhash did not change.
    const certhash = (r: RelayProcess) => /\/certhash\/([^/]+)/.exec(r.address('webrtc-direct'))?.[1]
    expect(certhash(relay)).toBe(certhash(first))
    expect(certhash(first)).toMatch(/^uEi/)
  })

  it('--announce advertises the given addresses instead of the listen addresses', async () => {
    const announced = '/dns4/relay.example.com/tcp/443/wss'
    const other = await within(
      secs(40),
      RelayProcess.start([
        '--network',
        network,
        '--identity',
        join(dir, 'announce.key'),
        '--listen',
        '/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/tcp/0/ws',
        '--announce',
        announced,
        '--http-port',
        'off',
      ]),
      'relay ready',
    )
    try {
      expect(other.addresses).toEqual([`${announced}/p2p/${other.peerId}`])
      expect(other.browserAddresses).toEqual([`${announced}/p2p/${other.peerId}`])
    } finally {
      await other.terminate()
    }
  })

  it('serves /healthz and Prometheus /metrics', async () => {
    const health = await fetch(`${relay!.http}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({ status: 'ok', peerId: relay!.peerId })
    const m = await metrics()
    for (const name of [
      'mosaik_relay_catalog_peers',
      'mosaik_relay_reservations',
      'mosaik_relay_relayed_bytes_total',
      'process_resident_memory_bytes',
    ]) {
      expect(m.has(name), name).toBe(true)
    }
    expect(m.get('process_resident_memory_bytes')).toBeGreaterThan(0)
    expect((await fetch(`${relay!.http}/nope`)).status).toBe(404)
  })

  it('a Node peer bootstraps through it and sees it in the catalog', async () => {
    const peer = await node({ bootstrap: [relay!.address('tcp')] })
    await within(
      secs(20),
      peer.discovery.when.peers(1, (p) => p.id === relay!.peerId),
      'relay in the catalog',
    )
    const info = peer.discovery
      .catalog()
      .peers()
      .find((p) => p.id === relay!.peerId)!
    expect(info.addresses.some((a) => a.includes('/webrtc-direct/'))).toBe(true)
    expect((await metrics()).get('mosaik_relay_catalog_peers')).toBeGreaterThanOrEqual(1)
  })

  it('two peers reachable only through the relay exchange a datum larger than 128 KiB', async () => {
    const tcp = relay!.address('tcp')
    const [a, b] = await Promise.all([relayedNode(tcp), relayedNode(tcp)])
    for (const n of [a!, b!]) {
      expect(n.addresses.length).toBeGreaterThan(0)
      for (const address of n.addresses) expect(address).toContain('/p2p-circuit/')
    }
    const Blobs = defineStream<Uint8Array>('relay/blobs')
    const producer = a!.streams.producer(Blobs)
    const consumer = b!.streams.consumer(Blobs)
    await within(secs(30), producer.when.subscribed().minimumOf(1).wait(), 'subscribed through the relay')
    // libp2p's default relay limit would cut the connection at 128 KiB.
    const blob = new Uint8Array(300 * 1024).map((_, i) => i % 251)
    await producer.send(blob)
    await producer.send(blob.subarray(0, 8))
    const first = await within(secs(20), consumer.recv(), 'first datum')
    expect(first).toEqual(blob)
    expect(await within(secs(20), consumer.recv(), 'second datum')).toEqual(blob.subarray(0, 8))
    const connections = a!.libp2p.getConnections(b!.libp2p.peerId).map((c) => c.remoteAddr.toString())
    expect(connections.length).toBeGreaterThan(0)
    for (const address of connections) expect(address).toContain(`/p2p/${relay!.peerId}/p2p-circuit`)
    const m = await metrics()
    expect(m.get('mosaik_relay_reservations')).toBeGreaterThanOrEqual(2)
    expect(m.get('mosaik_relay_circuits_opened_total')).toBeGreaterThanOrEqual(1)
    expect(m.get('mosaik_relay_relayed_bytes_total')).toBeGreaterThan(blob.length)
    await producer.close()
    await consumer.close()
  })

  it('on SIGTERM it announces its departure and exits 0', async () => {
    const watcher = nets[0]!
    const departed = new Promise<string>((resolve) =>
      watcher.discovery.on('peer:departed', (e) => {
        if (e.id === relay!.peerId) resolve(e.reason)
      }),
    )
    const code = relay!.terminate()
    expect(await within(secs(20), departed, 'relay departure')).toBe('departed')
    expect(await within(secs(20), code, 'relay exit')).toBe(0)
    expect(relay!.logs.map((l) => l.msg)).toContain('stopped')
  })
})
