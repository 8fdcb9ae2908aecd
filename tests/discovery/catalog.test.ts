import { isPeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import { type Network, PeerEntry } from '../../platform/node/index.ts'
import { DIAL_STAGGER_MS } from '../../src/discovery/neighbours.ts'
import { Nodes, type Transport, uniqueNetwork } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'

/** mosaik's test helper: every node syncs catalogs with every other node. */
async function discoverAll(nets: readonly Network[]): Promise<void> {
  await Promise.all(
    nets.flatMap((a) =>
      nets.filter((b) => b !== a).map((b) => a.discovery.syncWith(b.addresses[0]!).catch(() => {})),
    ),
  )
}

/** Resolves once `net` holds at least `k` connections (followed through libp2p's events). */
function connectedAtLeast(net: Network, k: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (net.libp2p.getConnections().length < k) return
      net.libp2p.removeEventListener('connection:open', check)
      resolve()
    }
    net.libp2p.addEventListener('connection:open', check)
    check()
  })
}

type Dial = Network['libp2p']['dial']

/**
 * Routes each dial of `net` that opens a new connection through `intercept` (opening a protocol
 * stream also dials, on the connection held: those pass straight through).
 */
function interceptNewDials(
  net: Network,
  intercept: (dial: Dial, ...args: Parameters<Dial>) => ReturnType<Dial>,
): void {
  const dial = net.libp2p.dial.bind(net.libp2p)
  net.libp2p.dial = ((...args: Parameters<Dial>) => {
    const [target] = args
    if (!isPeerId(target) || net.libp2p.getConnections(target).length > 0) return dial(...args)
    return intercept(dial, ...args)
  }) as Dial
}

describe.each<Transport>(['memory', 'quic'])('discovery catalog over %s', (transport) => {
  const nodes = new Nodes(transport)
  afterEach(() => nodes.closeAll())

  // mosaik: discovery::catalog::converge_with_bootstrap
  it('ten nodes bootstrapped from one all converge on the full catalog', async () => {
    const [n0, ...rest] = await nodes.star(11)
    await within(
      secs(10),
      Promise.all([n0!, ...rest].map((n) => n.discovery.when.peers(10))),
      'every node knows 10 peers',
    )
    for (const n of [n0!, ...rest]) expect(n.discovery.catalog().peers()).toHaveLength(10)
  })

  it('thirty nodes joining at once converge with a few announcements each, not one per neighbour', async () => {
    const nets = await nodes.star(30)
    await within(
      secs(20),
      Promise.all(nets.map((n) => n.discovery.when.peers(29))),
      'every node knows 29 peers',
    )
    // A new neighbour gets our entry in the catalog sync its connection runs; a node announces again
    // only until an announcement went out over a few mesh links (gossipsub's mesh degree is 6).
    // Re-announcing to every new subscriber made a burst of n nodes flood about n² announcements
    // (237 here before).
    const sent = nets.reduce((sum, n) => sum + n.discovery.stats.announcementsSent, 0)
    expect(sent).toBeLessThanOrEqual(6 * nets.length)
  })

  it('a joining node dials its missing neighbours one at a time, not all at once', async () => {
    const nets = await nodes.star(10)
    await within(secs(20), Promise.all(nets.map((n) => n.discovery.when.peers(9))), 'ten nodes meet')
    const late = await nodes.create({ bootstrap: nets[0]!.addresses })
    // Every new connection the node dials, and how many of its dials were in flight then and started less
    // than DIAL_STAGGER_MS before.
    const inFlight = new Set<number>()
    const crowded: number[] = []
    let dials = 0
    interceptNewDials(late, (dial, ...args) => {
      const startedAt = performance.now()
      const recent = [...inFlight].filter((t) => startedAt - t < DIAL_STAGGER_MS - 100).length
      if (recent > 0) crowded.push(recent)
      dials++
      inFlight.add(startedAt)
      return dial(...args).finally(() => inFlight.delete(startedAt))
    })
    await within(secs(20), late.discovery.when.peers(10), 'the late node knows everyone')
    await within(secs(20), connectedAtLeast(late, 6), 'the late node has six neighbours')
    // Dialing all five missing neighbours at once ran five handshakes together; on a busy host a burst
    // of joining nodes then finished them all late and overshot the target.
    expect(dials).toBeGreaterThan(0)
    expect(crowded).toEqual([])
  })

  it('a neighbour dial that hangs holds the next one back for DIAL_STAGGER_MS only', async () => {
    const nets = await nodes.star(8)
    await within(secs(20), Promise.all(nets.map((n) => n.discovery.when.peers(7))), 'eight nodes meet')
    const requestTimeoutMs = secs(10)
    // Two neighbours: the bootstrap node and one more, so the hanging dial is for the last place, as it
    // is when inbound connections have filled the others.
    const late = await nodes.create({
      bootstrap: nets[0]!.addresses,
      discovery: { requestTimeoutMs, targetNeighbors: 2 },
    })
    const starts: number[] = []
    interceptNewDials(late, (dial, ...args) => {
      const [, options] = args
      starts.push(performance.now())
      if (starts.length > 1) return dial(...args)
      // The first new connection never answers (a blackholed address): it ends at its deadline.
      return new Promise((_, reject) =>
        options?.signal?.addEventListener('abort', () => reject(options.signal!.reason)),
      )
    })
    await within(secs(20), connectedAtLeast(late, 2), 'the late node has two neighbours')
    const reached = performance.now()
    // The hanging dial ends at the request timeout; the node reaches its target long before it (the
    // hanging dial held the last place for the whole timeout before).
    expect(starts.length).toBeGreaterThan(0)
    expect(reached - starts[0]!).toBeLessThan(DIAL_STAGGER_MS + secs(3))
    expect(DIAL_STAGGER_MS + secs(3)).toBeLessThan(requestTimeoutMs)
  })

  it("libp2p learns a peer's addresses when a dial needs them, not with every entry", async () => {
    const hub = await nodes.create()
    const one = { discovery: { targetNeighbors: 1 } }
    const b = await nodes.create({ ...one, bootstrap: hub.addresses })
    const c = await nodes.create({ ...one, bootstrap: hub.addresses })
    await within(secs(10), b.discovery.when.peer(c.peerId))
    const cId = peerIdFromString(c.peerId)
    // b holds c's signed entry, and has not dialed it: libp2p's peer store has no record of c.
    expect(b.libp2p.getConnections(cId)).toHaveLength(0)
    expect(await b.libp2p.peerStore.has(cId)).toBe(false)
    // A link by peer id finds c's addresses in the catalog.
    await within(secs(10), b.discovery.syncWith(c.peerId))
    expect(b.libp2p.getConnections(cId).length).toBeGreaterThan(0)
    const taught = (await b.libp2p.peerStore.get(cId)).addresses.map((a) => a.multiaddr.toString())
    expect(taught).toEqual(expect.arrayContaining([...c.addresses].map((a) => a.split('/p2p/')[0])))
  })

  // mosaik: discovery::catalog::manual_sync_trigger
  it('an unsigned insert is replaced by the signed entry after a manual sync', async () => {
    const n0 = await nodes.create({ tags: ['tag1', 'tag2', 'tag3'] })
    await n0.discovery.updateLocal(() => ({ streams: ['a-stream'] }))
    const n1 = await nodes.create()
    expect(n0.discovery.catalog().size).toBe(0)
    expect(n1.discovery.catalog().size).toBe(0)

    const me = n0.discovery.me().entry
    const unsigned = new PeerEntry({
      peerId: me.peerId,
      network: me.network,
      version: me.version,
      addresses: me.addresses,
    })
    expect(n1.discovery.insert(unsigned)).toBe(true)
    expect(n1.discovery.catalog().size).toBe(1)
    expect(n1.discovery.catalog().signedCount).toBe(0)

    await n1.discovery.syncWith(n0.peerId)
    const c1 = n1.discovery.catalog()
    expect(c1.size).toBe(1)
    expect(c1.signedCount).toBe(1)
    expect(c1.unsignedPeers()).toHaveLength(0)
    const seen = c1.getSigned(n0.peerId)!
    expect(['tag1', 'tag2', 'tag3'].every((t) => seen.tags.has(t))).toBe(true)
    expect(seen.streams.has('a-stream')).toBe(true)
    expect(n0.discovery.catalog().size).toBe(1)
  })

  // mosaik: discovery::catalog::different_networks_are_isolated
  it('nodes of different networks never mix catalogs', async () => {
    const other = new Nodes(transport, uniqueNetwork('other'))
    try {
      const a = [await nodes.create(), await nodes.create()]
      const b = [await other.create(), await other.create(), await other.create()]
      await discoverAll([...a, ...b])
      await within(secs(5), Promise.all(a.map((n) => n.discovery.when.peers(1))))
      await within(secs(5), Promise.all(b.map((n) => n.discovery.when.peers(2))))
      for (const n of a)
        expect(
          n.discovery
            .catalog()
            .peers()
            .map((p) => p.id),
        ).not.toContain(b[0]!.peerId)
      for (const n of a) expect(n.discovery.catalog().size).toBe(1)
      for (const n of b) expect(n.discovery.catalog().size).toBe(2)
    } finally {
      await other.closeAll()
    }
  })

  it('twenty nodes bootstrapped in a chain converge on the full catalog', async () => {
    const chain: Network[] = [await nodes.create()]
    for (let i = 1; i < 20; i++) chain.push(await nodes.create({ bootstrap: chain[i - 1]!.addresses }))
    await within(secs(20), Promise.all(chain.map((n) => n.discovery.when.peers(19))), 'chain converges')
  })

  it('tag changes propagate to every peer', async () => {
    const nets = await nodes.star(4)
    await within(secs(10), Promise.all(nets.map((n) => n.discovery.when.peers(3))))
    const changer = nets[2]!
    await changer.discovery.addTags('role:indexer')
    await within(
      secs(10),
      Promise.all(
        nets
          .filter((n) => n !== changer)
          .map((n) =>
            n.discovery.when.catalog((c) => c.get(changer.peerId)?.tags.has('role:indexer') === true),
          ),
      ),
      'tag added everywhere',
    )
    await changer.discovery.removeTags('role:indexer')
    await within(
      secs(10),
      Promise.all(
        nets
          .filter((n) => n !== changer)
          .map((n) =>
            n.discovery.when.catalog((c) => c.get(changer.peerId)?.tags.has('role:indexer') === false),
          ),
      ),
      'tag removed everywhere',
    )
  })

  it('ping measures an RTT that feeds the maxRtt filter', async () => {
    const [a, b] = await nodes.star(2, { discovery: { maxRttMs: 10_000 } })
    await within(secs(5), a!.discovery.when.peers(1))
    const rtt = await a!.discovery.ping(b!.peerId)
    expect(rtt).toBeGreaterThan(0)
    expect(a!.discovery.rtt(b!.peerId)).toBe(rtt)
    expect(a!.discovery.catalog().get(b!.peerId)?.rtt).toBe(rtt)
  })

  it('ping times the round trip on the monotonic clock, whatever the wall clock does', async () => {
    const frozen = Date.now()
    const [a, b] = await nodes.star(2, { clock: () => frozen })
    await within(secs(5), a!.discovery.when.peers(1))
    const rtt = await a!.discovery.ping(b!.peerId)
    expect(rtt).toBeGreaterThan(0)
    expect(rtt).toBeLessThan(secs(5))
  })
})

describe('maxRtt filter', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  it('hides peers measured slower than maxRttMs and admits unknown ones', async () => {
    const [a, b] = await nodes.star(2, { discovery: { maxRttMs: 0.000001 } })
    await within(secs(5), a!.discovery.when.peers(1))
    expect(a!.discovery.catalog().get(b!.peerId)?.rtt).toBeUndefined()
    await a!.discovery.ping(b!.peerId)
    expect(a!.discovery.catalog().get(b!.peerId)).toBeUndefined()
    expect(a!.discovery.catalog().peers()).toHaveLength(0)
  })
})
