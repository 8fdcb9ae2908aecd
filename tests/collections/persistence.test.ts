/**
 * A reader that persists its group log (Network `dataDir`, a FileLogStore per group) and restarts: it
 * shows its last state as soon as it has joined, before it hears from anyone, then catches up.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { collections, type Network } from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { within } from '../support/time.ts'
import { consensus, online, reach, reachWithin, stats, T } from './support.ts'

describe('collections restarted from disk', () => {
  it('a reader restarted from its data directory shows its last state at once, then catches up', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mosaik-collections-'))
    const nodes = new Nodes('memory')
    try {
      const dataDir = join(dir, 'reader')
      // Compact every 50 entries: the restart restores a snapshot and replays the log after it.
      const c = { ...consensus, snapshotEvery: 50 }
      const open = (net: Network) => ({
        map: collections.Map.reader<number, string>(net, 'persisted-map', { consensus: c }),
        pq: collections.PriorityQueue.reader<number, string, number>(net, 'persisted-pq', { consensus: c }),
      })
      const n0 = await nodes.create()
      const n1 = await nodes.create({ dataDir, bootstrap: n0.addresses })
      await within(T, n1.discovery.when.peers(1), 'discovery')
      const w = collections.Map.writer<number, string>(n0, 'persisted-map', { consensus: c })
      const wq = collections.PriorityQueue.writer<number, string, number>(n0, 'persisted-pq', {
        consensus: c,
      })
      const r = open(n1)
      await online(w, wq, r.map, r.pq)

      let v1 = 0
      for (let i = 0; i < 120; i++) v1 = await w.set(i, `v${i}`)
      v1 = await w.delete(7)
      const q1 = await wq.extend(Array.from({ length: 30 }, (_, i) => [i % 5, `k${i}`, i] as const))
      await reach(v1, r.map)
      await reach(q1, r.pq)
      expect(stats(r.map).compactions).toBeGreaterThan(0)
      const before = [...r.map]
      const queueBefore = [...r.pq.ascending()]
      // The versions it shows (the log may hold entries of the group's own after the last write).
      const [mapVersion, queueVersion] = [r.map.version, r.pq.version]
      expect(before).toHaveLength(119)

      // The reader's node crashes; the writer goes on.
      await nodes.crash(n1)
      let v2 = v1
      for (let i = 120; i < 150; i++) v2 = await w.set(i, `v${i}`)
      const q2 = await wq.updatePriority('k0', 100)

      // Back with the same data directory and no bootstrap address: it cannot reach anyone yet.
      const n1b = await nodes.create({ dataDir })
      expect(n1b.peerId).toBe(n1.peerId)
      const again = open(n1b)
      await Promise.all([again.map.when.reaches(0), again.pq.when.reaches(0)]) // joined
      expect(again.map.version).toBe(mapVersion)
      expect([...again.map]).toEqual(before)
      expect(again.pq.version).toBe(queueVersion)
      expect([...again.pq.ascending()]).toEqual(queueBefore)
      expect(stats(again.map).snapshotsInstalled).toBe(0) // from its own disk, not from a peer

      // Once it can reach the writer, it catches up with what it missed.
      n1b.discovery.dial(n0.addresses[0]!)
      await reachWithin(T, v2, again.map)
      await reachWithin(T, q2, again.pq)
      expect([...again.map]).toEqual([...w])
      expect(again.map.get(149)).toBe('v149')
      expect(again.pq.getPriority('k0')).toBe(100)
      expect([...again.pq.ascending()]).toEqual([...wq.ascending()])
      await Promise.all([w, wq, again.map, again.pq].map((h) => h.close()))
    } finally {
      await nodes.closeAll()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
