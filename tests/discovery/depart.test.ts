import { afterEach, describe, expect, it } from 'vitest'
import type { Network } from '../../platform/node/index.ts'
import { nextEvent, record } from '../support/events.ts'
import { Nodes, type Transport } from '../support/nodes.ts'
import { Partition } from '../support/partition.ts'
import { ms, secs, within } from '../support/time.ts'

describe.each<Transport>(['memory', 'quic'])('departure and purge over %s', (transport) => {
  const nodes = new Nodes(transport)
  afterEach(() => nodes.closeAll())

  // mosaik: discovery::depart::graceful_departure
  it('a closed node is seen departing by every peer', async () => {
    const nets = await nodes.star(3)
    const discovered = nets.map((n) => record(n.discovery, 'peer:discovered'))
    await within(secs(10), Promise.all(nets.map((n) => n.discovery.when.peers(2))))
    for (const [i, n] of nets.entries()) {
      const ids = new Set(discovered[i]!.items.map((p) => p.id))
      expect(ids).toEqual(
        new Set(
          n.discovery
            .catalog()
            .peers()
            .map((p) => p.id),
        ),
      )
    }
    const leaving = nets[1]!
    const [n0, n2] = [nets[0]!, nets[2]!]
    const departures = [n0, n2].map((n) =>
      nextEvent(n.discovery, 'peer:departed', (d) => d.id === leaving.peerId),
    )
    await leaving.close()
    const seen = await within(secs(15), Promise.all(departures), 'departure seen')
    expect(seen.every((d) => d.reason === 'departed')).toBe(true)
    expect(n0.discovery.catalog().has(leaving.peerId)).toBe(false)
    expect(n2.discovery.catalog().has(leaving.peerId)).toBe(false)
  })

  it('a departure reaches all of ten peers', async () => {
    const nets = await nodes.star(10)
    await within(secs(10), Promise.all(nets.map((n) => n.discovery.when.peers(9))))
    const leaving = nets[5]!
    const stay = nets.filter((n) => n !== leaving)
    const departures = stay.map((n) => n.discovery.when.gone(leaving.peerId))
    await leaving.close()
    await within(secs(10), Promise.all(departures), 'all saw the departure')
  })

  it('a peer gossip cannot reach learns a departure from a neighbour that got it', async () => {
    // l and x are never connected; x hears nothing by gossip (as a node whose gossip streams are not
    // up yet): it can only learn that l left from a, which got the departure from l.
    const partition = new Partition()
    const a = await nodes.create()
    const [l, x] = await Promise.all([0, 1].map(() => nodes.create({ bootstrap: a.addresses, partition })))
    await partition.split([l!], [x!])
    await within(secs(10), Promise.all([a, l!, x!].map((n) => n.discovery.when.peers(2))), 'all know all')
    const pubsub = (n: Network) => n.libp2p.services.pubsub
    const [topic] = pubsub(x!).getTopics()
    const unsubscribed = new Promise<void>((resolve) => {
      const onChange = (
        evt: CustomEvent<{
          peerId: { toString(): string }
          subscriptions: { topic: string; subscribe: boolean }[]
        }>,
      ) => {
        if (evt.detail.peerId.toString() !== x!.peerId) return
        if (!evt.detail.subscriptions.some((s) => s.topic === topic && !s.subscribe)) return
        pubsub(a).removeEventListener('subscription-change', onChange)
        resolve()
      }
      pubsub(a).addEventListener('subscription-change', onChange)
    })
    pubsub(x!).unsubscribe(topic!)
    await within(secs(5), unsubscribed, 'a sees x leave the gossip topic')

    const gone = x!.discovery.when.gone(l!.peerId)
    await l!.close()
    // well inside the purge window and the next anti-entropy sync (30 s)
    await within(secs(5), gone, 'x learns l departed')
  })

  it('a node that missed a departure learns it from the next catalog sync', async () => {
    const [a, b] = (await nodes.star(2)) as [Network, Network]
    await within(secs(5), a.discovery.when.peers(1), 'a sees b')
    const lastEntry = b.discovery.me()
    await b.close()
    await within(secs(5), a.discovery.when.gone(b.peerId), 'a sees b depart')
    // x never heard the departure: it still holds b's last entry
    const x = await nodes.create()
    expect(await x.discovery.insertSigned(lastEntry)).toBe(true)
    expect(x.discovery.catalog().has(b.peerId)).toBe(true)
    const departed = nextEvent(x.discovery, 'peer:departed', (d) => d.id === b.peerId)
    const refused = nextEvent(a.discovery, 'rejected', (r) => r.peer === b.peerId && r.reason === 'departed')
    await x.discovery.syncWith(a.addresses[0]!)
    expect((await within(secs(5), departed, 'x learns the departure')).reason).toBe('departed')
    await within(secs(5), refused, 'a refuses the replay')
    expect(x.discovery.catalog().has(b.peerId)).toBe(false)
    expect(a.discovery.catalog().has(b.peerId)).toBe(false)
  })

  // mosaik: discovery::depart::stale_peers_are_purged
  it('a silent peer is purged, and rediscovered when it announces again', async () => {
    const quick = await nodes.create({
      discovery: { purgeAfterMs: ms(1500), announceIntervalMs: ms(500), announceJitter: 0 },
    })
    const slow = await nodes.create({
      discovery: { purgeAfterMs: 180_000, announceIntervalMs: ms(4000), announceJitter: 0 },
    })
    const found = nextEvent(quick.discovery, 'peer:discovered', (p) => p.id === slow.peerId)
    await slow.discovery.syncWith(quick.addresses[0]!)
    await within(secs(5), found)

    const purged = nextEvent(quick.discovery, 'peer:departed', (d) => d.id === slow.peerId)
    const departed = await within(secs(10), purged, 'slow purged by quick')
    expect(departed.reason).toBe('purged')
    expect(quick.discovery.catalog().size).toBe(0)
    // the slow node keeps the quick one: quick re-announces well within slow's window
    expect(slow.discovery.catalog().has(quick.peerId)).toBe(true)

    const back = nextEvent(quick.discovery, 'peer:discovered', (p) => p.id === slow.peerId)
    await within(secs(10), back, 'slow rediscovered after its periodic announcement')
    expect(quick.discovery.catalog().size).toBe(1)
    expect(slow.discovery.catalog().size).toBe(1)
  })

  it('purge removes a crashed peer that never said goodbye', async () => {
    const opts = { discovery: { purgeAfterMs: ms(1500), announceIntervalMs: ms(300), announceJitter: 0 } }
    const [a, b] = (await nodes.star(2, opts)) as [Network, Network]
    await within(secs(5), a.discovery.when.peers(1))
    const gone = nextEvent(a.discovery, 'peer:departed', (d) => d.id === b.peerId)
    // Stop b's libp2p without its discovery saying goodbye: a crash, as seen from a.
    await b.libp2p.stop()
    expect((await within(secs(10), gone)).reason).toBe('purged')
  })
})
