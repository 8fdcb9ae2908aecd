import { createServer } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import { InvalidArgumentError, Network } from '../../platform/node/index.ts'
import { Nodes, uniqueNetwork } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'

const nodes = new Nodes('memory')
afterEach(() => nodes.closeAll())

/** A loopback TCP port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function somePeerId(): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

describe('bootstrap addresses', () => {
  it('Network.create refuses malformed bootstrap addresses, naming the address and the reason', async () => {
    const id = await somePeerId()
    const cases: [string, RegExp][] = [
      ['foo', /bootstrap address 'foo' is not a multiaddr/],
      ['/ip4/127.0.0.1/tcp/4001', /'\/ip4\/127\.0\.0\.1\/tcp\/4001' does not end with \/p2p\/<peer id>/],
      ['/ip4/127.0.0.1/tcp/4001/p2p/nope', /has an invalid peer id 'nope'/],
      [`/ip4/999.0.0.1/tcp/4001/p2p/${id}`, /is not a multiaddr: .*999\.0\.0\.1/],
      [`/ip4/127.0.0.1/tcp/4001/p2p/${id}/p2p-circuit`, /does not end with \/p2p\/<peer id>/],
    ]
    for (const [address, reason] of cases) {
      const created = Network.create({ network: uniqueNetwork(), bootstrap: [address] })
      await expect(created).rejects.toBeInstanceOf(InvalidArgumentError)
      await expect(created).rejects.toThrow(reason)
    }
  })

  it('discovery.dial and syncWith refuse malformed addresses; peer ids and full addresses pass', async () => {
    const [a, b] = await nodes.star(2)
    expect(() => a!.discovery.dial('foo')).toThrow(InvalidArgumentError)
    expect(() => a!.discovery.dial(b!.addresses[0]!, '/ip4/127.0.0.1/tcp/1')).toThrow(
      /does not end with \/p2p/,
    )
    await expect(a!.discovery.syncWith('foo')).rejects.toThrow(
      /'foo' is neither a multiaddr .* nor a peer id/,
    )
    await expect(a!.discovery.syncWith('/memory/x')).rejects.toBeInstanceOf(InvalidArgumentError)
    await within(secs(10), a!.discovery.syncWith(b!.addresses[0]!))
    await within(secs(10), a!.discovery.syncWith(b!.peerId))
  })

  it('reports a dead bootstrap peer (bootstrap:unreachable, bootstrapStatus) and keeps retrying', async () => {
    const dead = `/ip4/127.0.0.1/tcp/${await closedPort()}/p2p/${await somePeerId()}`
    const seed = await nodes.create()
    const net = await nodes.create({ bootstrap: [dead, seed.addresses[0]!] })
    const unreachable = new Promise<{ address: string; error: Error; failures: number }>((resolve) =>
      net.discovery.once('bootstrap:unreachable', resolve),
    )
    const event = await within(secs(5), unreachable, 'bootstrap:unreachable')
    expect(event.address).toBe(dead)
    expect(event.error).toBeInstanceOf(Error)
    expect(event.failures).toBeGreaterThanOrEqual(3)

    const status = () => net.discovery.bootstrapStatus()
    expect(status()).toEqual([
      expect.objectContaining({ address: dead, state: 'unreachable', lastError: expect.any(String) }),
      { address: seed.addresses[0]!, state: 'synced', failures: 0 },
    ])
    // The live address bootstrapped the node; the dead one is still retried.
    expect(net.discovery.bootstrapped.value).toBe(true)
    const failures = status()[0]!.failures
    await within(
      secs(10),
      (async () => {
        while (status()[0]!.failures <= failures) await new Promise((r) => setTimeout(r, 100))
      })(),
      'another bootstrap attempt',
    )
  })

  it('a node whose only bootstrap peer is dead is not bootstrapped and says why', async () => {
    const dead = `/ip4/127.0.0.1/tcp/${await closedPort()}/p2p/${await somePeerId()}`
    const net = await nodes.create({ bootstrap: [dead] })
    await within(
      secs(5),
      new Promise((resolve) => net.discovery.once('bootstrap:unreachable', resolve)),
      'bootstrap:unreachable',
    )
    expect(net.discovery.bootstrapped.value).toBe(false)
    expect(net.discovery.bootstrapStatus()[0]).toMatchObject({ state: 'unreachable', address: dead })
  })
})
