import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  collections,
  defineStream,
  InvalidArgumentError,
  MosaikError,
  Network,
} from '../../platform/node/index.ts'
import { FAST_CONSENSUS } from '../support/consensus.ts'
import { listenOn, Nodes, uniqueNetwork } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'

/** Counts of live handles by kind (timers, sockets, ...), as Node reports them. */
function handles(): Map<string, number> {
  const counts = new Map<string, number>()
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1)
  return counts
}

/** Resolves once no kind of handle outnumbers the baseline (handles close asynchronously). */
async function backTo(baseline: Map<string, number>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const excess = [...handles()].filter(([kind, n]) => n > (baseline.get(kind) ?? 0))
    if (excess.length === 0) return
    if (Date.now() > deadline) throw new Error(`handles left behind: ${JSON.stringify(excess)}`)
    await new Promise((r) => setImmediate(r))
  }
}

describe('network lifecycle', () => {
  it('requires a network name', async () => {
    await expect(Network.create({ network: '' })).rejects.toBeInstanceOf(InvalidArgumentError)
  })

  it.each(['memory', 'quic', 'tcp'] as const)(
    '50 nodes over %s created and closed leave no handle behind',
    async (transport) => {
      const baseline = handles()
      const nodes = new Nodes(transport)
      try {
        const nets = await nodes.star(50)
        await within(secs(20), Promise.all(nets.map((n) => n.discovery.when.peers(1))))
      } finally {
        // Closed on failure too, so one failure does not leave sockets that fail the next test.
        await nodes.closeAll()
      }
      await backTo(baseline, secs(10))
    },
  )

  it('nodes using every primitive release everything when closed', async () => {
    const baseline = handles()
    const nodes = new Nodes('quic')
    try {
      const nets = await nodes.star(5)
      await within(secs(20), Promise.all(nets.map((n) => n.discovery.when.peers(4))))
      const consensus = FAST_CONSENSUS
      const Ticks = defineStream<number>('lifecycle/ticks')
      const producer = nets[0]!.streams.producer(Ticks)
      const consumers = nets.slice(1).map((n) => n.streams.consumer(Ticks))
      const maps = nets.map((n) => collections.Map.writer<string, number>(n, 'lifecycle/map', { consensus }))
      await within(secs(20), producer.when.subscribed().minimumOf(4).wait())
      await producer.send(1)
      await within(secs(10), Promise.all(consumers.map((c) => c.recv())))
      await within(secs(20), Promise.all(maps.map((m) => m.when.online())))
      const v = await maps[1]!.set('k', 1)
      await within(secs(10), Promise.all(maps.map((m) => m.when.reaches(v))))
    } finally {
      await nodes.closeAll()
    }
    await backTo(baseline, secs(10))
  })

  it('refuses the libp2p service names it runs itself, and frees its data directory', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mosaik-reserved-'))
    try {
      const network = uniqueNetwork()
      for (const name of ['identify', 'pubsub']) {
        const create = Network.create({
          network,
          dataDir,
          listen: listenOn('memory'),
          libp2p: { services: { [name]: () => ({}) } },
        })
        await expect(create).rejects.toBeInstanceOf(InvalidArgumentError)
        await expect(create).rejects.toThrow(`'${name}' is reserved`)
      }
      // The failed starts released the directory's lock: a node can still use it.
      const net = await Network.create({ network, dataDir, listen: listenOn('memory') })
      await net.close()
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('rejects with code BIND when it cannot listen, and frees its data directory', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mosaik-bind-'))
    const first = await Network.create({ network: uniqueNetwork(), listen: listenOn('tcp') })
    try {
      const taken = first.addresses.find((a) => a.includes('/tcp/'))!.replace(/\/p2p\/.*$/, '')
      const network = uniqueNetwork()
      const create = Network.create({ network, dataDir, listen: [taken] })
      await expect(create).rejects.toBeInstanceOf(MosaikError)
      await expect(create).rejects.toMatchObject({ code: 'BIND' })
      const net = await Network.create({ network, dataDir, listen: listenOn('tcp') })
      await net.close()
    } finally {
      await first.close()
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('abandons start-up when its signal aborts, and frees its data directory', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mosaik-abort-'))
    const network = uniqueNetwork()
    try {
      // Aborted before the call: nothing starts.
      const early = Network.create({
        network,
        dataDir,
        listen: listenOn('memory'),
        signal: AbortSignal.abort(),
      })
      await expect(early).rejects.toMatchObject({ name: 'AbortError' })
      // Aborted once the directory is locked: the lock is given back.
      const controller = new AbortController()
      const late = Network.create({ network, dataDir, listen: listenOn('tcp'), signal: controller.signal })
      controller.abort(new Error('shutting down'))
      await expect(late).rejects.toThrow('shutting down')
      const net = await Network.create({ network, dataDir, listen: listenOn('tcp') })
      await net.close()
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('close is idempotent and await using closes the node', async () => {
    let escaped: Network | undefined
    {
      await using net = await Network.create({ network: uniqueNetwork(), listen: listenOn('memory') })
      escaped = net
      expect(net.isClosed).toBe(false)
    }
    expect(escaped.isClosed).toBe(true)
    await escaped.close()
  })

  it('keeps its peer id across restarts when given a data directory', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mosaik-id-'))
    try {
      const network = uniqueNetwork()
      const first = await Network.create({ network, dataDir, listen: listenOn('memory') })
      const id = first.peerId
      await first.close()
      const second = await Network.create({ network, dataDir, listen: listenOn('memory') })
      expect(second.peerId).toBe(id)
      await second.close()
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('advertises its listen addresses in its entry, ready to bootstrap from', async () => {
    const net = await Network.create({ network: uniqueNetwork(), listen: listenOn('quic') })
    try {
      expect(net.addresses.length).toBeGreaterThan(0)
      expect(net.addresses.every((a) => a.endsWith(`/p2p/${net.peerId}`))).toBe(true)
      expect(net.discovery.me().entry.addresses).toEqual([...net.addresses].sort())
    } finally {
      await net.close()
    }
  })
})
