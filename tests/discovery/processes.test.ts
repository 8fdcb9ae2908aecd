import { afterEach, describe, expect, it } from 'vitest'
import { nextEvent } from '../support/events.ts'
import { Nodes } from '../support/nodes.ts'
import { NodeProcess } from '../support/processes.ts'
import { ms, secs, within } from '../support/time.ts'

describe('discovery between OS processes over QUIC', () => {
  const nodes = new Nodes('quic')
  const procs: NodeProcess[] = []
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill()))
    await nodes.closeAll()
  })

  it('processes converge, see a graceful departure, and purge a killed peer', async () => {
    const discovery = { purgeAfterMs: ms(3000), announceIntervalMs: ms(800), announceJitter: 0.2 }
    const local = await nodes.create({ discovery })
    const network = nodes.network
    for (let i = 0; i < 3; i++) {
      procs.push(
        await NodeProcess.start({ network, bootstrap: local.addresses, discovery, tags: [`proc-${i}`] }),
      )
    }
    await within(secs(20), local.discovery.when.peers(3), 'local sees three processes')
    const views = await Promise.all(procs.map((p) => p.call<string[]>('awaitPeers', { n: 3 })))
    for (const [i, view] of views.entries()) {
      expect(new Set(view)).toEqual(
        new Set([local.peerId, ...procs.filter((_, j) => j !== i).map((p) => p.peerId)]),
      )
    }
    expect(local.discovery.catalog().get(procs[1]!.peerId)?.tags.has('proc-1')).toBe(true)

    // graceful: SIGTERM closes the node, which announces its departure
    const departed = nextEvent(local.discovery, 'peer:departed', (d) => d.id === procs[0]!.peerId)
    await procs[0]!.terminate()
    expect((await within(secs(10), departed)).reason).toBe('departed')
    await procs[1]!.call('awaitGone', { peer: procs[0]!.peerId })

    // crash: SIGKILL leaves no goodbye; the peer is purged once silent for the purge window
    const purged = nextEvent(local.discovery, 'peer:departed', (d) => d.id === procs[2]!.peerId)
    await procs[2]!.kill()
    expect((await within(secs(15), purged)).reason).toBe('purged')
    await procs[1]!.call('awaitGone', { peer: procs[2]!.peerId })
    expect(
      local.discovery
        .catalog()
        .peers()
        .map((p) => p.id),
    ).toEqual([procs[1]!.peerId])
  })
})
