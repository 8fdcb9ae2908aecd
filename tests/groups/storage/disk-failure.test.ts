/**
 * A member whose disk starts failing writes, on real nodes: it stops taking part at once (fail-stop),
 * tells its callers with the store's StorageError, and the others go on without it; restarted on the
 * repaired disk, it rejoins from what its store holds, and no acknowledged write is lost.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  CommitUnknownError,
  CorruptLogError,
  decodeCanonical,
  encodeCanonical,
  FileLogStore,
  type Group,
  GroupKey,
  type LogStore,
  type Network,
  OfflineError,
  type StateMachine,
  StorageError,
} from '../../../platform/node/index.ts'
import { Nodes } from '../../support/nodes.ts'
import { intercept } from '../../support/stores.ts'
import { secs, within } from '../../support/time.ts'
import { fastConsensus } from '../support.ts'

const T = secs(10)

/** Every value added, in commit order: a lost or doubled write shows. */
class Journal implements StateMachine<{ add: number }, 'values', number[]> {
  readonly signature = 'mosaik-tests/journal/v1'
  values: number[] = []
  apply(command: { add: number }): void {
    this.values.push(command.add)
  }
  query(): number[] {
    return [...this.values]
  }
  snapshot(): Uint8Array {
    return encodeCanonical(this.values)
  }
  restore(snapshot: Uint8Array): void {
    this.values = snapshot.length === 0 ? [] : (decodeCanonical(snapshot) as number[])
  }
}

const MUTATIONS = new Set<PropertyKey>([
  'write',
  'append',
  'truncateFrom',
  'saveHardState',
  'saveSnapshot',
  'installSnapshot',
  'compact',
  'reset',
])

/** A FileLogStore whose disk can start failing every write, as a full or broken disk does. */
function failable(store: FileLogStore): { store: LogStore; fail(): void; refused: () => number } {
  let failing = false
  let refused = 0
  const proxy = intercept(store, (name) =>
    failing && MUTATIONS.has(name)
      ? () => {
          refused++
          return Promise.reject(new StorageError('EIO: i/o error, write'))
        }
      : undefined,
  )
  return { store: proxy, fail: () => (failing = true), refused: () => refused }
}

describe('a member whose disk fails writes', () => {
  const nodes = new Nodes('memory')
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mosaik-disk-failure-'))
  })
  afterEach(async () => {
    await nodes.closeAll()
    await rm(dir, { recursive: true, force: true })
  })

  const key = GroupKey.fromSecret('disk-failure')
  const joinWith = (net: Network, storage: LogStore) =>
    net.groups.join({ key, stateMachine: new Journal(), consensus: fastConsensus, storage })

  async function threeMembers() {
    const nets = await nodes.star(3)
    const disks = await Promise.all(
      nets.map(async (_, i) => failable(await FileLogStore.open(join(dir, `n${i}`)))),
    )
    const groups = await Promise.all(nets.map((n, i) => joinWith(n, disks[i]!.store)))
    await within(T, Promise.all(groups.map((g) => g.when.voters(3))), 'three voters')
    await within(T, Promise.all(groups.map((g) => g.when.online())), 'all online')
    return { nets, disks, groups }
  }

  for (const who of ['the leader', 'a follower'] as const) {
    it(`${who}: stops with StorageError, fails what waits on it, the others go on; restarted, it rejoins with every acknowledged write`, async () => {
      const { nets, disks, groups } = await threeMembers()
      const acked: number[] = []
      let next = 0
      const write = async (g: Group<Journal>) => {
        const v = ++next
        await g.execute({ add: v })
        acked.push(v)
      }
      for (let i = 0; i < 30; i++) await write(groups[i % 3]!)

      const victim = groups.findIndex((g) => (who === 'the leader' ? g.isLeader : !g.isLeader))
      const g = groups[victim]!
      const others = groups.filter((_, i) => i !== victim)
      disks[victim]!.fail()
      // A write through the victim needs its disk: the victim's own log (as leader) or the entry its
      // leader sends it (as follower).
      const through = g.execute({ add: 1000 })
      const settled = through.then(
        () => 'acked' as const,
        (err: unknown) => err,
      )
      // Writes through the others meanwhile: a leader's failure may leave their outcome open.
      for (let i = 0; i < 5; i++) {
        await write(others[i % 2]!).catch((err: unknown) => {
          if (who === 'a follower' || !(err instanceof CommitUnknownError || err instanceof OfflineError)) {
            throw err
          }
        })
      }

      const halted = await within(T, g.when.halted(), 'the victim halts')
      expect(halted).toBeInstanceOf(StorageError)
      expect(halted.code).toBe('STORAGE')
      expect(disks[victim]!.refused()).toBeGreaterThan(0)
      expect(g.status.halted).toBe(true)
      expect(g.isOnline).toBe(false)
      expect(g.isLeader).toBe(false)
      // What waited on it settled: acknowledged if the others committed it before the disk failed,
      // or failed with the outcome left open (a leader may have taken it).
      const outcome = await within(T, settled, 'the pending write settles')
      if (outcome === 'acked') acked.push(1000)
      else {
        expect(outcome).toBeInstanceOf(CommitUnknownError)
        expect((outcome as CommitUnknownError).cause).toBe(halted)
      }
      // New writes and strong reads fail at once with the store's error; weak reads show the replica.
      await expect(g.execute({ add: 2000 })).rejects.toBe(halted)
      await expect(g.query('values', 'strong')).rejects.toBe(halted)
      const weak = await g.query('values')
      expect(weak.at).toBe(g.applied)
      expect(weak.result.length).toBeGreaterThan(0)

      // The others elect (if they must) and commit without it.
      await within(T, Promise.all(others.map((o) => o.when.online())), 'the others online')
      for (let i = 0; i < 10; i++) await write(others[i % 2]!)

      // The operator repairs the disk and restarts the member: it rejoins from its store.
      await g.close()
      await disks[victim]!.store.close()
      const again = await joinWith(nets[victim]!, await FileLogStore.open(join(dir, `n${victim}`)))
      await within(T, again.when.online(), 'the restarted member is online')
      await write(again)
      const last = Math.max(...others.map((o) => o.applied))
      await within(T, again.when.applied().reaches(last), 'it catches up')
      const values = (await again.query('values', 'strong')).result
      for (const v of acked) expect(values).toContain(v)
      expect(new Set(values).size).toBe(values.length)
      for (const o of others) expect((await o.query('values', 'strong')).result).toEqual(values)
    })
  }

  it('a store that cannot be loaded: the join fails with its error and releases it; repaired, the node joins', async () => {
    const net = await nodes.create()
    const path = join(dir, 'n0')
    const written = await FileLogStore.open(path)
    const g = await joinWith(net, written)
    await within(T, g.when.isLeader(), 'a lone leader')
    const first = await g.execute({ add: 1 })
    await g.close()
    // The store's recovery refuses what it reads (as it does on damage a torn write cannot explain).
    const store = await FileLogStore.open(path)
    const damaged = intercept(store, (name) =>
      name === 'load'
        ? () => Promise.reject(new CorruptLogError('segment 1: bad checksum at byte 20'))
        : undefined,
    )
    await expect(joinWith(net, damaged)).rejects.toBeInstanceOf(CorruptLogError)
    // Released: the directory opens again (a store still open would hold its lock), and the group joins.
    const repaired = await FileLogStore.open(path)
    const again = await joinWith(net, repaired)
    await within(T, again.when.isLeader(), 'leads again')
    await within(T, again.when.applied().reaches(first))
    expect((await again.query('values')).result).toEqual([1])
  })
})
