/**
 * The relay binary as operators run it: a child process started from source, on loopback. One relay
 * is restarted once (identity), then serves the rest of the suite, and is stopped last (departure).
 */
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineStream, Network } from '../../platform/node/index.ts'
import { CertificateFileError, loadOrCreateWebRTCCertificate } from '../../relay/certificate.ts'
import { IdentityFileError, loadOrCreateIdentity } from '../../relay/identity.ts'
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

describe('mosaik-relay with a damaged identity or certificate file', () => {
  let files: string
  const key = () => join(files, 'relay.key')
  const pem = () => join(files, 'relay.webrtc.pem')

  beforeAll(async () => {
    files = await mkdtemp(join(tmpdir(), 'mosaik-relay-files-'))
  })

  afterAll(async () => {
    await rm(files, { recursive: true, force: true })
  })

  /** Every file in the directory with its bytes: a refused start must leave them as they were. */
  async function contents(): Promise<Map<string, string>> {
    const out = new Map<string, string>()
    for (const name of (await readdir(files)).sort()) {
      out.set(name, (await readFile(join(files, name))).toString('hex'))
    }
    return out
  }

  /** `load` fails with `type` naming `file`, telling the operator what to do, and changes no file. */
  async function expectRefused(
    load: () => Promise<unknown>,
    type: typeof IdentityFileError | typeof CertificateFileError,
    file: string,
    problem: RegExp,
  ): Promise<void> {
    const before = await contents()
    const err = await load().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err, 'loaded').toBeInstanceOf(type)
    expect((err as IdentityFileError).file).toBe(file)
    expect((err as Error).message).toContain(file)
    expect((err as Error).message).toMatch(problem)
    expect((err as Error).message).toContain('move it away')
    expect(await contents()).toEqual(before)
  }

  it('an identity file that is empty, cut short or not a key is refused and kept, not replaced', async () => {
    const good = (await loadOrCreateIdentity(key())).key
    const bytes = await readFile(key())
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(0), /is empty/],
      [bytes.subarray(0, bytes.length - 10), /does not hold a libp2p private key/],
      [new Uint8Array(bytes.length).fill(0xff), /does not hold a libp2p private key/],
      [Buffer.from('-----BEGIN PRIVATE KEY-----\n'), /does not hold a libp2p private key/],
    ]
    for (const [damaged, problem] of cases) {
      await writeFile(key(), damaged, { mode: 0o600 })
      await expectRefused(() => loadOrCreateIdentity(key()), IdentityFileError, key(), problem)
    }
    await writeFile(key(), bytes)
    const again = await loadOrCreateIdentity(key())
    expect(again.created).toBe(false)
    expect(again.key.equals(good)).toBe(true)
  })

  it("a certificate file that is damaged, or whose key is not its certificate's, is refused and kept", async () => {
    const { certificate } = await loadOrCreateWebRTCCertificate(pem())
    const text = await readFile(pem(), 'utf8')
    const other = await loadOrCreateWebRTCCertificate(join(files, 'other.pem'))
    await rm(join(files, 'other.pem'))
    const body = (block: string) => block.split('\n').slice(1, -1).join('\n')
    const cases: [string, RegExp][] = [
      ['', /does not hold a PEM private key and certificate/],
      [certificate.pem, /does not hold a PEM private key and certificate/],
      [text.slice(0, text.length - 200), /does not hold a PEM private key and certificate/],
      [
        text.replace(body(certificate.pem), body(certificate.pem).slice(40)),
        /holds an unreadable certificate/,
      ],
      [
        text.replace(body(certificate.privateKey), body(certificate.privateKey).slice(0, 60)),
        /holds an unreadable private key/,
      ],
      [
        text.replace(certificate.privateKey, other.certificate.privateKey),
        /holds a private key that is not its certificate's/,
      ],
    ]
    for (const [damaged, problem] of cases) {
      await writeFile(pem(), damaged, { mode: 0o600 })
      await expectRefused(() => loadOrCreateWebRTCCertificate(pem()), CertificateFileError, pem(), problem)
    }
    await writeFile(pem(), text)
    const again = await loadOrCreateWebRTCCertificate(pem())
    expect(again.created).toBe(false)
    expect(again.certificate.certhash).toBe(certificate.certhash)
  })

  it('the binary exits 1 naming the damaged file, and leaves it as it is', async () => {
    const args = ['--network', network, '--identity', key(), '--listen', '/ip4/127.0.0.1/tcp/0']
    /** Runs the relay, which must refuse to start with `code` naming `file` and change no file. */
    const expectNoStart = async (file: string, code: string) => {
      const before = await contents()
      const run = await within(secs(30), runRelay([...args, '--http-port', 'off']), 'relay exit')
      expect(run.code).toBe(1)
      const error = run.stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string; error?: { code: string; message: string } })
        .find((l) => l.msg === 'cannot start')?.error
      expect(error?.code).toBe(code)
      expect(error?.message).toContain(file)
      expect(await contents()).toEqual(before)
    }
    await writeFile(key(), new Uint8Array(0), { mode: 0o600 })
    await expectNoStart(key(), 'RELAY_IDENTITY')
    await rm(key())
    await loadOrCreateIdentity(key())
    await writeFile(pem(), 'not a certificate', { mode: 0o600 })
    await expectNoStart(pem(), 'RELAY_CERTIFICATE')
  })
})
