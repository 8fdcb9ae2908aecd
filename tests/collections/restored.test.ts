/**
 * A replica restored from its data directory (Network `dataDir`, a FileLogStore per group) while no
 * writer runs: it serves what it kept at once, says that it is restored and not confirmed
 * (`restored`, `when.restored()`, one `updated` with `restored: true`, the first item of `updates()`),
 * stays offline, and catches up when a writer comes back.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { collections, type Network } from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { consensus, groupOf, online, reach, reachWithin, T } from './support.ts'

describe('a replica restored from its data directory', () => {
  let dir: string
  let nodes: Nodes

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mosaik-restored-'))
    nodes = new Nodes('memory')
  })

  afterEach(async () => {
    await nodes.closeAll()
    await rm(dir, { recursive: true, force: true })
  })

  const writerDir = () => join(dir, 'writer')
  const readerDir = () => join(dir, 'reader')
  const writer = (net: Network) => collections.Map.writer<string, number>(net, 'restored-map', { consensus })
  const reader = (net: Network) => collections.Map.reader<string, number>(net, 'restored-map', { consensus })

  it('serves its last state at once with no writer online, says so, and catches up later', async () => {
    // A writer and a reader, each with its own data directory.
    const n0 = await nodes.create({ dataDir: writerDir() })
    const n1 = await nodes.create({ dataDir: readerDir(), bootstrap: n0.addresses })
    await within(T, n1.discovery.when.peers(1), 'discovery')
    const w = writer(n0)
    const r = reader(n1)
    await online(w, r)
    await within(T, r.when.restored(), 'restored') // resolves for a fresh store too
    expect(r.restored).toBe(false) // nothing restored
    expect(groupOf(r).restoredIndex).toBe(0)
    let v = 0
    for (let i = 0; i < 20; i++) v = await w.set(`k${i}`, i)
    v = await w.delete('k3')
    await reach(v, r)
    const before = [...r.entries()]
    const version = r.version
    expect(before).toHaveLength(19)

    // Everything closes: no writer, no leader anywhere.
    await w.close()
    await r.close()
    await nodes.closeAll()

    // The reader comes back from its data directory alone.
    const n1b = await nodes.create({ dataDir: readerDir() })
    const events: { version: number; restored?: boolean }[] = []
    const again = reader(n1b)
    const off = again.on('updated', (e) => events.push(e))
    expect(await within(secs(5), again.when.restored(), 'restored')).toBe(version)
    // It reads the values at once, and says they are restored and unconfirmed.
    expect(again.version).toBe(version)
    expect([...again.entries()]).toEqual(before)
    expect(again.get('k7')).toBe(7)
    expect(again.has('k3')).toBe(false)
    expect(again.restored).toBe(true)
    expect(groupOf(again).restored).toBe(true)
    expect(groupOf(again).restoredIndex).toBe(version)
    expect(groupOf(again).isOnline).toBe(false)
    expect(events).toEqual([{ version, restored: true }])
    // A UI driven by updates() renders the restored state first, even when it starts iterating late.
    const updates = again.updates()[Symbol.asyncIterator]()
    expect(await within(secs(5), updates.next(), 'first update')).toEqual({ value: version, done: false })

    // A writer comes back (from its own data directory) and writes: the reader catches up.
    const n0b = await nodes.create({ dataDir: writerDir(), bootstrap: n1b.addresses })
    const w2 = writer(n0b)
    await online(w2)
    expect(w2.get('k7')).toBe(7)
    const v2 = await w2.set('k20', 20)
    await reachWithin(T, v2, again)
    await within(T, again.when.online(), 'reader online')
    expect(again.restored).toBe(false)
    expect(groupOf(again).restored).toBe(false)
    expect(again.get('k20')).toBe(20)
    expect([...again.entries()]).toEqual([...w2.entries()])
    // The iterator moves on to live versions, and live events carry no `restored` flag.
    const next = await within(T, updates.next(), 'next update')
    expect(next.value).toBeGreaterThan(version)
    expect(events.at(-1)?.restored).toBeUndefined()
    expect(events.at(-1)?.version).toBe(again.version)
    // An iterator started now does not replay the restored version.
    const late = again.updates()[Symbol.asyncIterator]()
    const v3 = await w2.set('k21', 21)
    expect((await within(T, late.next(), 'late iterator')).value).toBe(v3)
    off()
    await updates.return?.(undefined)
    await late.return?.(undefined)
    await Promise.all([w2.close(), again.close()])
  })
})
