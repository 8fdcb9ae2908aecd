/**
 * Shared fixtures of the collection tests. Every file starts a few in-memory nodes once (`useNodes`),
 * and every test opens its collections under its own store id (each store is an independent group),
 * so tests never see each other's state and no test pays for starting nodes.
 *
 * Not ported from mosaik's tests/collections: the `collection!` macro tests (`construct_from_macro` in
 * each file; the macro has no TypeScript counterpart). auth.rs (collections that require JWT tickets,
 * `CollectionConfig::require_ticket`, here the `requireTicket` option) is ported in
 * tests/tickets/groups.test.ts: the six `*_auth_tickets` tests, `different_auths_produce_different_group_ids`
 * and `collection_macro_with_multiple_tickets` (without the macro); the other two macro tests
 * (`collection_macro_with_require_ticket`, `macros_different_validators_group_ids`) add nothing the
 * ported ones do not check once the macro is gone.
 */
import { afterAll, afterEach, beforeAll, expect } from 'vitest'
import { collections, type Group, type Network, type Version } from '../../platform/node/index.ts'
import { FAST_CONSENSUS } from '../support/consensus.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'

/** Fast consensus timings for one machine, the same for every collection of the suite. */
export const consensus = FAST_CONSENSUS

/** mosaik's `timeout_s(10, ...)` for coming online and late joiners catching up. */
export const T = secs(10)
/** mosaik's `timeout_s(2, ...)` for a replica to reach a version, with some slack for a busy machine. */
export const S = secs(5)

/** Anything with a version, conditions and a lifecycle: every collection handle. */
export interface Handle {
  readonly version: Version
  readonly when: {
    online(): Promise<void>
    offline(): Promise<void>
    reaches(v: Version): Promise<Version>
  }
  close(): Promise<void>
}

/** A unique store id for the running test (optionally with a suffix for a second store). */
export function sid(suffix = ''): string {
  const name = expect.getState().currentTestName ?? 'test'
  return `${name}${suffix ? `/${suffix}` : ''}`
}

/** Resolves once every handle is online (mosaik's `timeout_s(10, x.when().online())`). */
export async function online(...handles: Handle[]): Promise<void> {
  await within(T, Promise.all(handles.map((h) => h.when.online())), 'online')
}

/** Resolves once every handle shows version `v` (mosaik's `timeout_s(2, x.when().reaches(v))`). */
export async function reach(v: Version, ...handles: Handle[]): Promise<void> {
  await within(S, Promise.all(handles.map((h) => h.when.reaches(v))), `reaches ${v}`)
}

/** Like `reach` with an explicit (already scaled) timeout, for late joiners and large datasets. */
export async function reachWithin(ms: number, v: Version, ...handles: Handle[]): Promise<void> {
  await within(ms, Promise.all(handles.map((h) => h.when.reaches(v))), `reaches ${v}`)
}

/**
 * The group behind a collection handle (joined in the background). The collections expose no accessor
 * for it, so this reads the handle's protected core; tests use it for the worker's counters (e.g.
 * `snapshotsInstalled`) and its leadership.
 */
export function groupOf(handle: Handle): Group<never> {
  const core = (handle as unknown as { core: { group: Group<never> | undefined } }).core
  if (core.group === undefined) throw new Error('the collection has not joined its group yet')
  return core.group
}

/** The counters of the group worker behind a handle. */
export function stats(handle: Handle) {
  return groupOf(handle).stats
}

export interface NodePool {
  /** The shared nodes, all discovered by one another. */
  readonly nets: readonly Network[]
  /** The Nodes tracker, to create extra nodes a test owns (closed with the pool). */
  readonly nodes: Nodes
  /** Registers a handle to be closed after the running test. */
  track<H extends Handle>(handle: H): H
}

/**
 * Starts `n` in-memory nodes before the file's tests and closes them after; closes every tracked
 * handle after each test.
 */
export function useNodes(n: number): NodePool {
  const nodes = new Nodes('memory')
  let nets: Network[] = []
  const handles: Handle[] = []
  beforeAll(async () => {
    nets = await nodes.star(n)
    await within(T, Promise.all(nets.map((x) => x.discovery.when.peers(n - 1))), 'discovery')
  })
  afterEach(async () => {
    await Promise.all(handles.splice(0).map((h) => h.close().catch(() => {})))
  })
  afterAll(async () => {
    await Promise.all(handles.splice(0).map((h) => h.close().catch(() => {})))
    await nodes.closeAll()
  })
  return {
    get nets() {
      return nets
    },
    nodes,
    track(handle) {
      handles.push(handle)
      return handle
    },
  }
}

/**
 * The writer and reader factories of each collection kind, for the tests of one file: every handle is
 * tracked by `pool` (closed after the test), runs the suite's `consensus` and opens the running test's
 * store unless given another id. Type parameters default to number; a priority queue's priorities are
 * numbers and it takes an optional `capacity`.
 */
function kinds(pool: NodePool) {
  return {
    Map: {
      writer: <K = number, V = number>(net: Network, id: string = sid()) =>
        pool.track(collections.Map.writer<K, V>(net, id, { consensus })),
      reader: <K = number, V = number>(net: Network, id: string = sid()) =>
        pool.track(collections.Map.reader<K, V>(net, id, { consensus })),
    },
    Vec: {
      writer: <V = number>(net: Network, id: string = sid()) =>
        pool.track(collections.Vec.writer<V>(net, id, { consensus })),
      reader: <V = number>(net: Network, id: string = sid()) =>
        pool.track(collections.Vec.reader<V>(net, id, { consensus })),
    },
    Set: {
      writer: <V = number>(net: Network, id: string = sid()) =>
        pool.track(collections.Set.writer<V>(net, id, { consensus })),
      reader: <V = number>(net: Network, id: string = sid()) =>
        pool.track(collections.Set.reader<V>(net, id, { consensus })),
    },
    Cell: {
      writer: <V = number>(net: Network, id: string = sid()) =>
        pool.track(collections.Cell.writer<V>(net, id, { consensus })),
      reader: <V = number>(net: Network, id: string = sid()) =>
        pool.track(collections.Cell.reader<V>(net, id, { consensus })),
    },
    Once: {
      writer: <V = number>(net: Network, id: string = sid()) =>
        pool.track(collections.Once.writer<V>(net, id, { consensus })),
      reader: <V = number>(net: Network, id: string = sid()) =>
        pool.track(collections.Once.reader<V>(net, id, { consensus })),
    },
    PriorityQueue: {
      writer: <K = number, V = number>(net: Network, id: string = sid(), capacity?: number) =>
        pool.track(collections.PriorityQueue.writer<number, K, V>(net, id, { consensus, capacity })),
      reader: <K = number, V = number>(net: Network, id: string = sid(), capacity?: number) =>
        pool.track(collections.PriorityQueue.reader<number, K, V>(net, id, { consensus, capacity })),
    },
  }
}

/** The collection kinds `factories` opens. */
export type Kind = keyof ReturnType<typeof kinds>

/** `{ writer, reader }` for one collection kind (see `kinds`), e.g. `factories(pool, 'Map')`. */
export function factories<K extends Kind>(pool: NodePool, kind: K): ReturnType<typeof kinds>[K] {
  return kinds(pool)[kind]
}
