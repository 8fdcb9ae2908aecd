import { afterEach, describe, expect, it } from 'vitest'
import { collections, defineStream, type Network } from '../../platform/node/index.ts'
import { nextEvent } from '../support/events.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'

type Tick = { seq: number }
const Ticks = defineStream<Tick>('depart/ticks')
const MAP = 'depart/map'
const ROUNDS = 4
const LEAVING_PER_ROUND = 3

/**
 * The soak's churn, compressed: nodes with a producer, a consumer and a Map reader open join and close
 * in rounds while the stable nodes stream and write. Every stable node, the bootstrap included, must
 * see each one depart at once. All nodes share one IP (loopback), and by the last round the stable
 * nodes have seen more than a dozen peers from it: a gossip layer that penalizes peers per IP drops
 * their departures, and the bootstrap node, which sees every peer, keeps them until the purge.
 */
describe('departure of busy nodes over quic', () => {
  const nodes = new Nodes('quic')
  afterEach(() => nodes.closeAll())

  it(
    'every remaining node drops a node that closes with streams and a Map reader open',
    async () => {
      const stable = await nodes.star(4)
      const [n0, n1, n2, n3] = stable as [Network, Network, Network, Network]
      await within(secs(10), Promise.all(stable.map((n) => n.discovery.when.peers(3))), 'stable nodes meet')
      const producers = [n0, n1].map((n) => n.streams.producer(Ticks))
      const consumers = [n2, n3].map((n) => n.streams.consumer(Ticks))
      const writers = [n0, n1, n2].map((n) => collections.Map.writer<string, number>(n, MAP))
      const reader = collections.Map.reader<string, number>(n3, MAP)
      await within(secs(20), Promise.all([...writers, reader].map((h) => h.when.online())), 'Map online')

      const halt = new AbortController()
      const load = [
        ...producers.map((p) =>
          (async () => {
            for (let seq = 0; !halt.signal.aborted; seq++) {
              await p.send({ seq }, { signal: halt.signal }).catch(() => {})
              if (seq % 10 === 0) await new Promise((r) => setImmediate(r))
            }
          })(),
        ),
        ...consumers.map((c) =>
          (async () => {
            for await (const _ of c) if (halt.signal.aborted) break
          })().catch(() => {}),
        ),
        (async () => {
          for (let n = 0; !halt.signal.aborted; n++) {
            await writers[n % 3]!.set(`k${n % 20}`, n, { signal: halt.signal }).catch(() => {})
          }
        })(),
      ]

      try {
        for (let round = 0; round < ROUNDS; round++) {
          const leaving = await Promise.all(
            Array.from({ length: LEAVING_PER_ROUND }, async () => {
              const net = await nodes.create({ bootstrap: n0.addresses })
              const p = net.streams.producer(Ticks)
              const c = net.streams.consumer(Ticks)
              const r = collections.Map.reader<string, number>(net, MAP)
              await within(secs(20), r.when.online(), `round ${round}: reader online`)
              await within(secs(20), c.recv(), `round ${round}: consumer receives`)
              await p.send({ seq: -1 })
              return net
            }),
          )
          await within(
            secs(10),
            Promise.all(stable.flatMap((n) => leaving.map((l) => n.discovery.when.peer(l.peerId)))),
            `round ${round}: stable nodes see the newcomers`,
          )
          const departed = stable.flatMap((n, i) =>
            leaving.map((l) =>
              within(
                secs(10),
                Promise.all([
                  nextEvent(n.discovery, 'peer:departed', (d) => d.id === l.peerId),
                  n.discovery.when.gone(l.peerId),
                ]),
                `round ${round}: n${i} drops ${l.peerId}`,
              ),
            ),
          )
          await Promise.all(leaving.map((l) => l.close()))
          const results = await Promise.allSettled(departed)
          const missed = results.flatMap((r) =>
            r.status === 'rejected' ? [(r.reason as Error).message] : [],
          )
          expect(missed).toEqual([])
          for (const r of results) {
            if (r.status === 'fulfilled') expect(r.value[0].reason).toBe('departed')
          }
        }
      } finally {
        halt.abort()
        await Promise.all(load)
      }
    },
    secs(180),
  )
})
