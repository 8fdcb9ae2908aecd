/**
 * Linearizability of Map and Cell histories recorded while partitions come and go (Knossos/Porcupine
 * style, tests/support/linearizability.ts).
 *
 * Three writers, one client each, run seeded random operations while a nemesis cuts a node off (the
 * leader or another) and heals, several times. Every operation is recorded as invoked, then ok (with
 * its acknowledged version), failed (OfflineError: the command was not accepted) or unknown
 * (CommitUnknownError, or anything else). Reads are linearizable: a read commits a no-op
 * compare-and-swap (absent -> absent never changes anything) and reads the local replica once that
 * no-op is applied, so it sees every write acknowledged before it started.
 *
 * Checked: the history is linearizable for the register model (per key for the Map); acknowledged
 * versions are unique and follow real time (an operation that returned before another was invoked has
 * a smaller version); and all replicas end with the same state at the same version.
 *
 * The seed is MOSAIK_SEED (default 7); a failure prints it.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type CellWriter,
  CommitUnknownError,
  collections,
  type MapWriter,
  type Network,
  OfflineError,
} from '../../platform/node/index.ts'
import { checkLinearizable, History, type Model, type Operation } from '../support/linearizability.ts'
import { Nodes } from '../support/nodes.ts'
import { Partition } from '../support/partition.ts'
import { Prng } from '../support/sim-network.ts'
import { ms, secs, within } from '../support/time.ts'
import { consensus, groupOf, type Handle, online, reachWithin, T } from './support.ts'

const SEED = Number(process.env.MOSAIK_SEED ?? '7') || 7
const CYCLES = 4

type Input =
  | { kind: 'put'; key: string; value: number }
  | { kind: 'delete'; key: string }
  | { kind: 'cas'; key: string; expected: number | null; next: number | null }
  | { kind: 'read'; key: string }
interface Output {
  value: number | null
  version: number
}

/** A register per key: put, delete, compare-and-swap and read. */
const registerPerKey: Model<number | null, Input, Output> = {
  init: () => null,
  step: (state, input) => {
    switch (input.kind) {
      case 'put':
        return { ok: true, state: input.value, output: { value: null, version: 0 } }
      case 'delete':
        return { ok: true, state: null, output: { value: null, version: 0 } }
      case 'cas':
        return {
          ok: true,
          state: state === input.expected ? input.next : state,
          output: { value: null, version: 0 },
        }
      case 'read':
        return { ok: true, state, output: { value: state, version: 0 } }
    }
  },
  hash: (state) => String(state),
  equal: (a, b) => a === b,
  // The versions are checked separately: the model cannot know them.
  outputMatches: (expected, actual) => expected.value === actual.value,
  partition: (input) => input.key,
}

/** What a client does against one writer; every call commits exactly one command. */
interface Target extends Handle {
  run(input: Input): Promise<Output>
}

function mapTarget(w: MapWriter<string, number>): Target {
  return Object.assign(w, {
    async run(input: Input): Promise<Output> {
      switch (input.kind) {
        case 'put':
          return { value: null, version: await w.set(input.key, input.value) }
        case 'delete':
          return { value: null, version: await w.delete(input.key) }
        case 'cas': {
          const v = await w.compareExchange(input.key, input.expected ?? undefined, input.next ?? undefined)
          return { value: null, version: v }
        }
        case 'read': {
          const version = await w.compareExchange(input.key, undefined, undefined)
          return { value: w.get(input.key) ?? null, version }
        }
      }
    },
  })
}

function cellTarget(w: CellWriter<number>): Target {
  return Object.assign(w, {
    async run(input: Input): Promise<Output> {
      switch (input.kind) {
        case 'put':
          return { value: null, version: await w.set(input.value) }
        case 'delete':
          return { value: null, version: await w.clear() }
        case 'cas': {
          const v = await w.compareExchange(input.expected ?? undefined, input.next ?? undefined)
          return { value: null, version: v }
        }
        case 'read': {
          const version = await w.compareExchange(undefined, undefined)
          return { value: w.get() ?? null, version }
        }
      }
    },
  })
}

describe('collections: linearizability under partitions', () => {
  const nodes = new Nodes('memory')
  const partition = new Partition()
  let nets: Network[] = []

  beforeAll(async () => {
    const first = await nodes.create({ partition })
    nets = [first]
    for (let i = 1; i < 3; i++) nets.push(await nodes.create({ partition, bootstrap: first.addresses }))
    await within(T, Promise.all(nets.map((n) => n.discovery.when.peers(2))), 'discovery')
  })
  afterAll(() => nodes.closeAll())

  /** Heals the partition and waits until every writer is back in its group. */
  async function heal(targets: Target[]): Promise<void> {
    partition.heal()
    for (const a of nets) for (const b of nets) if (a !== b) a.discovery.dial(b.addresses[0]!)
    await within(secs(20), Promise.all(targets.map((t) => t.when.online())), 'online after healing')
  }

  async function run(label: string, keys: string[], open: (net: Network) => Target): Promise<void> {
    const prng = new Prng(SEED)
    const targets = nets.map(open)
    try {
      await online(...targets)
      await within(T, Promise.all(targets.map((t) => groupOf(t).when.voters(3))), 'three voters')

      const history = new History<Input, Output>()
      let nextValue = 1
      let stop = false
      const gen = (p: Prng): Input => {
        const key = p.pick(keys)
        const r = p.next()
        if (r < 0.35) return { kind: 'put', key, value: nextValue++ }
        if (r < 0.45) return { kind: 'delete', key }
        if (r < 0.6) {
          const expected = p.chance(0.3) ? null : Math.max(1, nextValue - 1 - p.int(3))
          return { kind: 'cas', key, expected, next: p.chance(0.2) ? null : nextValue++ }
        }
        return { kind: 'read', key }
      }
      const client = async (i: number, t: Target, p: Prng) => {
        while (!stop) {
          const input = gen(p)
          const id = history.invoke(i, input)
          try {
            history.ok(id, await t.run(input))
          } catch (err) {
            if (err instanceof OfflineError) history.fail(id)
            else history.unknown(id)
            // Back off, then wait to be in a group with a leader again (bounded, so the run can end).
            await delay(ms(20))
            await Promise.race([t.when.online(), delay(ms(500))])
          }
          // Pacing: over the in-memory transport a round trip runs on microtasks only, so yield to
          // the event loop (and vary the interleavings) between operations.
          await delay(p.int(6))
        }
      }
      const clients = targets.map((t, i) => client(i, t, prng.fork()))

      // The nemesis: cut off the leader of the group, or a random node, then heal; repeat.
      const nemesis = prng.fork()
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        await delay(nemesis.between(200, 500))
        const leader = targets.findIndex((t) => groupOf(t).isLeader)
        const victim = cycle % 2 === 0 && leader >= 0 ? leader : nemesis.int(3)
        await partition.split(
          [nets[victim]!],
          nets.filter((_, i) => i !== victim),
        )
        await delay(nemesis.between(600, 1200))
        await heal(targets)
      }
      await delay(300)
      stop = true
      await within(secs(20), Promise.all(clients), 'clients stop')

      // Final reads, after everything else, from every writer.
      for (const [i, t] of targets.entries()) {
        for (const key of keys) {
          const input: Input = { kind: 'read', key }
          const id = history.invoke(i, input)
          history.ok(id, await within(T, retryRead(t, input), 'final read'))
        }
      }

      const ops = history.operations()
      const counts = history.counts()
      const context = `${label}, seed ${SEED}: ${JSON.stringify(counts)}`
      expect(counts.ok, context).toBeGreaterThan(50)
      expect(
        counts.fail + counts.unknown,
        `${context}: the nemesis made some operations fail`,
      ).toBeGreaterThan(0)

      const verdict = checkLinearizable(registerPerKey, ops)
      const where = verdict.linearizable === true ? '' : ` (key ${verdict.partition})`
      expect(verdict.linearizable, `${context}${where}`).toBe(true)
      expect(versionViolations(ops), context).toEqual([])

      // Every replica ends with the same state at the same version.
      const top = Math.max(...targets.map((t) => t.version))
      await reachWithin(T, top, ...targets)
      const final = await within(T, retryRead(targets[0]!, { kind: 'read', key: keys[0]! }), 'final version')
      await reachWithin(T, final.version, ...targets)
      const state = (t: Target) => keys.map((k) => (t as unknown as { get(k?: string): unknown }).get(k))
      for (const t of targets) expect(state(t), context).toEqual(state(targets[0]!))
    } finally {
      partition.heal()
      await Promise.all(targets.map((t) => t.close()))
    }
  }

  /** A read retried until it commits (after the nemesis, the group may still be electing). */
  async function retryRead(t: Target, input: Input): Promise<Output> {
    while (true) {
      try {
        return await t.run(input)
      } catch (err) {
        if (!(err instanceof OfflineError || err instanceof CommitUnknownError)) throw err
        await delay(ms(50))
      }
    }
  }

  /** Pairs of acknowledged operations whose versions contradict real time (or repeat). */
  function versionViolations(ops: readonly Operation<Input, Output>[]): string[] {
    const done = ops.filter((o) => o.return !== undefined && o.output !== undefined)
    const out: string[] = []
    const seen = new Map<number, Operation<Input, Output>>()
    for (const o of done) {
      const v = o.output!.version
      if (seen.has(v)) out.push(`version ${v} acknowledged twice`)
      seen.set(v, o)
    }
    const byReturn = [...done].sort((a, b) => a.return! - b.return!)
    const byCall = [...done].sort((a, b) => a.call - b.call)
    // For each operation B, every A that returned before B was called must have a smaller version:
    // compare B with the largest version among those A.
    let i = 0
    let maxBefore = Number.NEGATIVE_INFINITY
    for (const b of byCall) {
      while (i < byReturn.length && byReturn[i]!.return! < b.call) {
        maxBefore = Math.max(maxBefore, byReturn[i]!.output!.version)
        i++
      }
      if (b.output!.version <= maxBefore) out.push(`version ${b.output!.version} after ${maxBefore}`)
    }
    return out.slice(0, 5)
  }

  it('Map: put, delete, compare-and-swap and reads on three keys', async () => {
    await run('map', ['a', 'b', 'c'], (net) =>
      mapTarget(
        collections.Map.writer<string, number>(net, 'lin-map', {
          consensus: { ...consensus, forwardTimeoutMs: 600, commitTimeoutMs: 2500 },
        }),
      ),
    )
  })

  it('Cell: write, clear, compare-and-swap and reads', async () => {
    await run('cell', ['cell'], (net) =>
      cellTarget(
        collections.Cell.writer<number>(net, 'lin-cell', {
          consensus: { ...consensus, forwardTimeoutMs: 600, commitTimeoutMs: 2500 },
        }),
      ),
    )
  })
})
