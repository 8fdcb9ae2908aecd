/**
 * Deterministic simulation of Raft groups under adversity. Each seed builds a cluster (3 to 7 nodes,
 * some reluctant or observers, bootstrapped or established), runs clients doing register writes and
 * reads and counter adds and reads through the leaders (strong reads via ReadIndex), while a chaos
 * schedule drops, delays, reorders and duplicates messages, partitions and heals the network, and
 * crashes and restarts nodes (losing what the Ready contract does not put on disk). Then it heals
 * everything and checks:
 * - no safety violation was seen while running (one leader per term, one entry per committed index,
 *   contiguous disks, in-order apply);
 * - the committed logs of all nodes agree, and every entry ever applied survives on every node;
 * - the cluster recovers: one leader, every node applies everything, the replicas are equal;
 * - both histories are linearizable.
 *
 * A failure prints the seed; replay one run with RAFT_SIM_SEED=<seed> RAFT_SIM_RUNS=1.
 * RAFT_SIM_RUNS raises the number of runs (default 2000 across the scenarios).
 */
import { describe, expect, it } from 'vitest'
import { NotLeaderError } from '../../../platform/node/index.ts'
import type { ReadRequestId } from '../../../src/groups/raft/index.ts'
import {
  type CounterInput,
  checkLinearizable,
  counterModel,
  History,
  type RegisterInput,
  registerModel,
} from '../../support/linearizability.ts'
import { RaftCluster, type SimRaftNode, type SimStateMachine } from '../../support/raft-cluster.ts'
import { Prng } from '../../support/sim-network.ts'

const RUNS = Number(process.env.RAFT_SIM_RUNS ?? '2000')
/** Replays from this seed in every scenario (otherwise each scenario has its own seed range). */
const REPLAY_SEED = process.env.RAFT_SIM_SEED === undefined ? undefined : Number(process.env.RAFT_SIM_SEED)

/** A register and a counter, the two objects the clients use. */
class RegisterAndCounter implements SimStateMachine {
  register: number | null = null
  counter = 0
  apply(command: Uint8Array): unknown {
    const op = JSON.parse(decoder.decode(command)) as { reg?: number; add?: number }
    if (op.reg !== undefined) {
      this.register = op.reg
      return null
    }
    this.counter += op.add ?? 0
    return this.counter
  }
  snapshot(): unknown {
    return { register: this.register, counter: this.counter }
  }
  restore(snapshot: unknown): void {
    const s = snapshot as { register: number | null; counter: number }
    this.register = s.register
    this.counter = s.counter
  }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

interface Scenario {
  name: string
  nodes: [number, number]
  observers: number
  reluctant: number
  snapshots: boolean
  parallelCatchUp: boolean
  lossy: boolean
}

interface RunResult {
  seed: number
  problems: string[]
  ops: number
  commits: number
}

interface PendingOp {
  id: number
  history: 'register' | 'counter'
  node: string
  read: boolean
  /** Writes: where the command was appended. */
  index: number
  term: number
  data: Uint8Array
  requestId: ReadRequestId
  key: 'register' | 'counter'
}

function runOnce(seed: number, scenario: Scenario): RunResult {
  const prng = new Prng(seed)
  const total = scenario.nodes[0] + prng.int(scenario.nodes[1] - scenario.nodes[0] + 1)
  const ids = Array.from({ length: total }, (_, i) => `n${i + 1}`)
  const observers = new Set(ids.slice(total - scenario.observers))
  const reluctant = new Set(ids.slice(0, scenario.reluctant))
  const established = prng.chance(0.5)
  const cluster = new RaftCluster({
    seed,
    nodes: ids.map((id) => ({
      id,
      preference: observers.has(id) ? 'observer' : reluctant.has(id) ? 'reluctant' : 'normal',
    })),
    // Tiny jitter makes contested elections (several candidates in one term) common.
    timing: { voterUnreachableMs: 300 + prng.int(700), electionJitterMs: prng.pick([2, 10, 100]) },
    network: { minDelayMs: 1, maxDelayMs: 2 + prng.int(12) },
    diskDelayMs: [0, prng.int(3)],
    raft: {
      maxEntriesPerAppend: prng.pick([1, 3, 16, 64]),
      maxInflightAppends: prng.pick([1, 2, 8, 32]),
      catchUpThreshold: scenario.parallelCatchUp ? 5 + prng.int(20) : 1000,
    },
    snapshotEvery: scenario.snapshots ? 10 + prng.int(30) : 0,
    keepLogTail: prng.int(8),
    stateMachine: () => new RegisterAndCounter(),
    ...(established
      ? { establishedVoters: ids.filter((id) => !observers.has(id)).slice(0, Math.min(3, total)) }
      : {}),
  })
  const problems: string[] = []
  const registers = new History<RegisterInput, number | null>()
  const counters = new History<CounterInput, number>()
  const pending = new Map<number, PendingOp>() // by history op id + offset per history
  const keyOf = (history: 'register' | 'counter', id: number) =>
    history === 'register' ? id * 2 : id * 2 + 1
  let nextRequest = 0
  let ops = 0

  const settle = (op: PendingOp, outcome: 'ok' | 'fail' | 'unknown', output?: unknown) => {
    pending.delete(keyOf(op.history, op.id))
    const history = op.history === 'register' ? registers : counters
    if (outcome === 'ok') {
      if (op.history === 'register') registers.ok(op.id, output as number | null)
      else counters.ok(op.id, output as number)
    } else if (outcome === 'fail' || op.read) history.fail(op.id)
    else history.unknown(op.id)
  }

  cluster.on((event) => {
    if (event.type === 'apply') {
      for (const op of pending.values()) {
        if (op.read || op.node !== event.node.id || op.index !== event.entry.index) continue
        const ours = event.entry.kind === 'command' && event.entry.term === op.term
        settle(op, ours ? 'ok' : 'fail', event.output)
      }
    } else if (event.type === 'read') {
      for (const op of pending.values()) {
        if (!op.read || op.requestId !== event.requestId) continue
        const machine = event.node.machine as RegisterAndCounter
        settle(op, 'ok', op.key === 'register' ? machine.register : machine.counter)
      }
    } else if (event.type === 'droppedRead') {
      for (const op of pending.values()) if (op.read && op.requestId === event.requestId) settle(op, 'fail')
    } else if (event.type === 'crash') {
      for (const op of pending.values()) if (op.node === event.node.id) settle(op, 'unknown')
    }
  })

  // Clients: each runs one operation at a time, through the node it believes leads.
  const clientCount = 4
  const hints: (string | undefined)[] = new Array(clientCount).fill(undefined)
  let clientsRunning = true
  const issue = (client: number) => {
    if (!clientsRunning) return
    const alive = cluster.alive()
    const hinted = hints[client] !== undefined ? cluster.node(hints[client]) : undefined
    const target: SimRaftNode | undefined = hinted?.alive
      ? hinted
      : alive.length > 0
        ? prng.pick(alive)
        : undefined
    if (target === undefined) {
      cluster.sim.after(20, () => issue(client))
      return
    }
    ops++
    const isRegister = prng.chance(0.5)
    const read = prng.chance(0.4)
    const historyName = isRegister ? 'register' : 'counter'
    let id: number
    let data = new Uint8Array()
    if (isRegister) {
      const value = ops * 10 + client
      id = registers.invoke(client, read ? { kind: 'read' } : { kind: 'write', value })
      data = encoder.encode(JSON.stringify({ reg: value }))
    } else {
      const delta = 1 + prng.int(5)
      id = counters.invoke(client, read ? { kind: 'read' } : { kind: 'add', delta })
      data = encoder.encode(JSON.stringify({ add: delta }))
    }
    const requestId = `r${nextRequest++}`
    const op: PendingOp = {
      id,
      history: historyName,
      node: target.id,
      read,
      index: 0,
      term: 0,
      data,
      requestId,
      key: historyName,
    }
    pending.set(keyOf(historyName, id), op)
    if (read) {
      const result = cluster.readIndex(target.id, requestId)
      if (!result.ok) {
        hints[client] = result.error instanceof NotLeaderError ? result.error.leader : target.id
        settle(op, 'fail')
      }
    } else {
      const result = cluster.propose(target.id, decoder.decode(data))
      if (result.ok) {
        op.index = result.first
        op.term = result.term
      } else {
        hints[client] = result.error.leader
        settle(op, 'fail')
      }
    }
    const key = keyOf(historyName, id)
    const deadline = 300 + prng.int(300)
    const waitForIt = () => {
      if (!pending.has(key)) {
        cluster.sim.after(prng.int(15), () => issue(client))
        return
      }
      if (cluster.now >= started + deadline) {
        settle(op, 'unknown')
        hints[client] = undefined
        cluster.sim.after(prng.int(15), () => issue(client))
        return
      }
      cluster.sim.after(5, waitForIt)
    }
    const started = cluster.now
    cluster.sim.after(1, waitForIt)
  }

  // Let every node join before the chaos: a node that never persisted anything could bootstrap a
  // rival cluster of its own in a partition, which is a documented limitation, not a bug.
  const joined = cluster.runUntil(
    () => cluster.alive().every((n) => n.disk.entries.length > 0 || n.disk.snapshot !== undefined),
    3000,
  )
  if (!joined) problems.push('the nodes did not all join the cluster')
  // Clocks drift apart only now: the bootstrap rule (the smallest id first) assumes similar rates.
  cluster.skewClocks(prng.pick([0, 0.3, 1]))
  for (let c = 0; c < clientCount; c++) issue(c)

  const lossy = scenario.lossy
  const chaosUntil = cluster.now + 1500 + prng.int(1500)
  const chaos = () => {
    if (cluster.now >= chaosUntil) return
    const roll = prng.next()
    const alive = cluster.alive()
    const down = ids.filter((id) => !cluster.node(id).alive)
    const leader = cluster.leader()
    if (roll < 0.12) {
      const shuffled = prng.shuffle(ids)
      const cut = 1 + prng.int(ids.length - 1)
      cluster.partition(shuffled.slice(0, cut), shuffled.slice(cut))
    } else if (roll < 0.2 && leader !== undefined) {
      // Cut the leader off with a minority: the rest elect a new leader while it still believes.
      const others = prng.shuffle(ids.filter((id) => id !== leader.id))
      const minority = others.slice(0, prng.int(Math.floor((ids.length - 1) / 2)))
      cluster.partition([leader.id, ...minority], others.slice(minority.length))
    } else if (roll < 0.25) {
      cluster.cut(prng.pick(ids), prng.pick(ids))
    } else if (roll < 0.45) {
      cluster.heal()
    } else if (roll < 0.62 && alive.length > 0) {
      const victim = leader !== undefined && prng.chance(0.5) ? leader : prng.pick(alive)
      cluster.crash(victim.id, prng.pick(['clean', 'torn', 'unsent'] as const))
    } else if (roll < 0.85 && down.length > 0) {
      cluster.restart(prng.pick(down))
    } else if (lossy) {
      cluster.net.conditions = {
        ...cluster.net.conditions,
        dropRate: prng.chance(0.5) ? 0 : prng.next() * 0.15,
        duplicateRate: prng.chance(0.5) ? 0 : prng.next() * 0.1,
      }
    }
    cluster.sim.after(30 + prng.int(250), chaos)
  }
  chaos()
  cluster.run(chaosUntil - cluster.now)

  // Heal everything and let the cluster recover while the clients keep going a little.
  cluster.heal()
  cluster.net.conditions = { ...cluster.net.conditions, dropRate: 0, duplicateRate: 0 }
  for (const id of ids) cluster.restart(id)
  cluster.run(500)
  clientsRunning = false
  const recovered = cluster.runUntil(() => {
    const leader = cluster.leader()
    if (leader === undefined || pending.size > 0) return false
    const commit = leader.status().commitIndex
    return (
      leader.status().lastIndex === commit &&
      cluster
        .alive()
        .every((n) => n.applied === commit && n.status().leader === leader.id && n.outstanding === undefined)
    )
  }, 15_000)
  if (!recovered) {
    const states = cluster.alive().map((n) => {
      const s = n.status()
      return `${n.id}:${s.role}@${s.term} leader=${s.leader} commit=${s.commitIndex} last=${s.lastIndex} applied=${n.applied} voters=${s.voters.join(',')}`
    })
    problems.push(`did not recover after healing: ${states.join(' | ')}`)
  }

  cluster.checkLogsAgree()
  cluster.checkCommittedSurvive()
  problems.push(...cluster.violations)
  if (cluster.committedByCluster.size !== 1)
    problems.push(`${cluster.committedByCluster.size} clusters were born`)
  if (recovered) {
    const machines = cluster.alive().map((n) => JSON.stringify((n.machine as RegisterAndCounter).snapshot()))
    if (new Set(machines).size !== 1) problems.push(`replicas differ: ${machines.join(' ')}`)
  }
  const reg = checkLinearizable(registerModel, registers.operations())
  if (reg.linearizable !== true) problems.push(`register history: ${String(reg.linearizable)}`)
  const cnt = checkLinearizable(counterModel, counters.operations())
  if (cnt.linearizable !== true) problems.push(`counter history: ${String(cnt.linearizable)}`)
  return { seed, problems, ops, commits: cluster.committed.size }
}

const scenarios: Scenario[] = [
  {
    name: '3–5 voters, lossy network',
    nodes: [3, 5],
    observers: 0,
    reluctant: 0,
    snapshots: false,
    parallelCatchUp: false,
    lossy: true,
  },
  {
    name: '5–7 nodes with learners, an observer and a reluctant node, snapshots',
    nodes: [5, 7],
    observers: 1,
    reluctant: 1,
    snapshots: true,
    parallelCatchUp: false,
    lossy: true,
  },
  {
    name: '3–6 nodes, parallel catch-up and snapshots',
    nodes: [3, 6],
    observers: 0,
    reluctant: 0,
    snapshots: true,
    parallelCatchUp: true,
    lossy: false,
  },
]

describe('raft deterministic simulation', () => {
  for (const [i, scenario] of scenarios.entries()) {
    const runs = Math.max(1, Math.round(RUNS / scenarios.length))
    it(`${scenario.name}: ${runs} seeded runs are safe, recover and stay linearizable`, () => {
      let ops = 0
      let commits = 0
      for (let r = 0; r < runs; r++) {
        const seed = (REPLAY_SEED ?? 1 + i * 1_000_000) + r
        const result = runOnce(seed, scenario)
        ops += result.ops
        commits += result.commits
        if (result.problems.length > 0) {
          throw new Error(
            `seed ${seed} (${scenario.name}) failed; replay with RAFT_SIM_SEED=${seed} RAFT_SIM_RUNS=1:\n` +
              result.problems.slice(0, 10).join('\n'),
          )
        }
      }
      // Guard against a vacuous run: the clients must have got work done.
      expect(commits).toBeGreaterThan(runs * 5)
      expect(ops).toBeGreaterThan(runs * 5)
    })
  }
})
