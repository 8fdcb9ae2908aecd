/**
 * Seeded scenarios for the simulation of the shipping group worker (tests/support/group-sim.ts). Each
 * builds a group, lets clients write and read strongly on every member from the moment it starts,
 * injects its faults, then heals everything and checks:
 * - every client history is linearizable (failed and unknown calls included);
 * - no acknowledged write is lost, none that failed with OfflineError took effect, none applied twice;
 * - no member ever applied another value at a list position than the others, nor dropped applied
 *   values (a restore only moves forward; a member of a losing rival cluster halts instead);
 * - after the final heal a write commits within RECOVERY_MS, and then strong reads on every running
 *   member return the same value and their state machines are equal.
 */

import { GroupSim, type GroupSimOptions, type SimMember } from '../../support/group-sim.ts'
import { Prng } from '../../support/sim-network.ts'

/** After the final heal, a write must commit within this (simulated ms). */
export const RECOVERY_MS = 8000
/** And every running member must then converge within this. */
const CONVERGE_MS = 8000

export interface RunResult {
  scenario: string
  seed: number
  problems: string[]
  notes: string[]
  hash: number
  stats: {
    events: number
    frames: number
    ops: number
    acked: number
    simMs: number
    recoveryMs: number | undefined
    halted: number
    /** Entries pulled and snapshots installed by catch-ups, every member and incarnation. */
    entriesPulled: number
    snapshotsInstalled: number
  }
  sim: GroupSim
}

export interface Scenario {
  name: string
  describe: string
  options(seed: number, prng: Prng): Omit<GroupSimOptions, 'seed'>
  /** The length of the faulty phase in the long mode (simulated ms); the default suite runs shorter. */
  span: number
  /** Starts members and schedules faults within about `span` ms; returns when the faulty phase ends. */
  script(gs: GroupSim, prng: Prng, span: number): number
  /** Rival clusters: histories of the two sides are not one linearizable history. */
  rival?: boolean
  /** After converging: scenario-specific checks. */
  check?(gs: GroupSim): void
  /**
   * The path the scenario is for, and the share of seeds that must take it: without this, a change that
   * stops the faults from reaching that path would leave the scenario passing while testing nothing.
   */
  exercises?: { what: string; took(result: RunResult): boolean; share: number }
}

function startAll(gs: GroupSim, prng: Prng, withinMs: number): void {
  for (const id of gs.ids) gs.at(prng.between(0, withinMs), () => gs.start(id))
}

function leaderOf(gs: GroupSim): SimMember | undefined {
  return gs.running().find((m) => m.worker!.status.value.role === 'leader')
}

/** Takes `id` down until `back`: its process crashes (with probability `crash`), or it is cut off. */
function downUntil(gs: GroupSim, prng: Prng, id: string, back: number, crash: number): void {
  if (prng.chance(crash)) {
    gs.crash(id)
    gs.at(back, () => gs.start(id))
  } else {
    gs.partition([id])
    gs.at(back, () => gs.heal())
  }
}

/** Schedules `action` at random times in [from, to) every [gapLo, gapHi) ms. */
function every(prng: Prng, from: number, to: number, gap: [number, number], action: (t: number) => void) {
  for (let t = from + prng.between(gap[0], gap[1]); t < to; t += prng.between(gap[0], gap[1])) action(t)
}

/** Per run of `power-loss`: how often a leader stood while the writers that lost power were still down. */
const elected = new WeakMap<GroupSim, number>()

export const SCENARIOS: Scenario[] = [
  {
    name: 'staggered',
    describe: 'members start one by one while clients write from the first moment; a lossy network',
    options: (_seed, prng) => ({
      nodes: 3 + prng.int(3),
      network: { dropRate: 0.01, duplicateRate: 0.02 },
      clockSkew: 0.05,
      discoveryMs: [0, 300],
    }),
    span: 2500,
    script: (gs, prng, span) => {
      gs.at(0, () => gs.start('n1'))
      for (const id of gs.ids.slice(1)) gs.at(prng.between(0, span * 0.6), () => gs.start(id))
      return span
    },
  },
  {
    name: 'promotion',
    describe: 'learners join a loaded three-member group and must become voters under write load',
    options: () => ({
      nodes: 5,
      consensus: { bootstrapExpect: 3, snapshotEvery: 64 },
      clients: { thinkMs: [0, 6], writeRatio: 0.8 },
      network: { ordered: true },
    }),
    span: 2500,
    script: (gs, prng, span) => {
      for (const id of ['n1', 'n2', 'n3']) gs.at(prng.between(0, 100), () => gs.start(id))
      gs.at(prng.between(span * 0.24, span * 0.48), () => gs.start('n4'))
      gs.at(prng.between(span * 0.24, span * 0.6), () => gs.start('n5'))
      return span
    },
    check: (gs) => {
      const leader = leaderOf(gs)
      const voters = leader?.worker?.status.value.voters.length ?? 0
      if (voters !== 5) gs.problems.push(`after converging the leader has ${voters} voters, not 5`)
    },
  },
  {
    name: 'leader-partition',
    describe: 'the leader is cut off (alone or with one follower), then healed, repeatedly',
    options: (_seed, prng) => ({
      nodes: 3 + 2 * prng.int(2),
      network: { dropRate: 0.005 },
      clockSkew: 0.1,
    }),
    span: 3000,
    script: (gs, prng, span) => {
      startAll(gs, prng, 200)
      let t = 700
      while (t < span - 200) {
        const cutAt = t + prng.between(0, 300)
        const healAt = cutAt + prng.between(200, 1200)
        gs.at(cutAt, () => {
          const leader = leaderOf(gs)
          if (!leader) return
          const others = gs.ids.filter((id) => id !== leader.id)
          const buddy = gs.ids.length > 3 && prng.chance(0.5) ? [prng.pick(others)] : []
          gs.partition([leader.id, ...buddy])
        })
        gs.at(healAt, () => gs.heal())
        t = healAt + prng.between(100, 600)
      }
      return t
    },
  },
  {
    name: 'one-way',
    describe: 'one-way links: the leader cannot send, or cannot hear, or random links fail one way',
    options: (_seed, prng) => ({
      nodes: 3 + prng.int(3),
      network: { ordered: prng.chance(0.5) },
    }),
    span: 3000,
    script: (gs, prng, span) => {
      startAll(gs, prng, 200)
      every(prng, 600, span, [300, 900], (t) => {
        gs.at(t, () => {
          const leader = leaderOf(gs)?.id ?? prng.pick(gs.ids)
          const other = prng.pick(gs.ids.filter((id) => id !== leader))
          const mode = prng.int(3)
          if (mode === 0) gs.oneWay(leader, other)
          else if (mode === 1) gs.oneWay(other, leader)
          else {
            const [a, b] = prng.shuffle(gs.ids)
            gs.oneWay(a!, b!)
          }
        })
        if (prng.chance(0.6)) gs.at(t + prng.between(100, 800), () => gs.heal())
      })
      return span
    },
  },
  {
    name: 'crash-restart',
    describe:
      'members crash and restart from disk, also while installing a snapshot or catching up, and all ' +
      'of them at once',
    options: (_seed, prng) => ({
      nodes: 3 + 2 * prng.int(2),
      consensus: { snapshotEvery: 8 + prng.int(24) },
      clients: { thinkMs: [0, 15], writeRatio: 0.7 },
      network: { dropRate: 0.005 },
      clockSkew: 0.05,
    }),
    span: 3400,
    script: (gs, prng, span) => {
      startAll(gs, prng, 300)
      every(prng, 500, span - 200, [250, 700], (t) => {
        gs.at(t, () => {
          // Sometimes the power fails everywhere at once: what every member had in flight to its disk
          // is lost or kept at random, and acknowledged writes must survive on a majority's disks.
          if (prng.chance(0.12)) {
            for (const id of gs.ids) {
              gs.crash(id)
              gs.at(t + prng.between(20, 600), () => gs.start(id))
            }
            return
          }
          const alive = gs.ids.filter((id) => gs.member(id).alive)
          // Keep a majority alive most of the time, but not always (and nothing to crash when all are down).
          if (alive.length <= Math.ceil(gs.ids.length / 2) && prng.chance(0.8)) return
          if (alive.length === 0) return
          const leader = leaderOf(gs)
          const victim = leader && prng.chance(0.4) ? leader.id : prng.pick(alive)
          gs.crash(victim)
          const down = prng.between(50, 1500)
          gs.at(t + down, () => gs.start(victim))
          // Sometimes crash it again soon after it came back: in the middle of catch-up or a
          // snapshot install. (Only within the faulty phase: the final heal must find every member up.)
          const again = t + down + prng.between(5, 150)
          if (prng.chance(0.4) && again < span) {
            gs.at(again, () => gs.crash(victim))
            gs.at(again + prng.between(20, 400), () => gs.start(victim))
          }
        })
      })
      return span
    },
  },
  {
    name: 'power-loss',
    describe:
      'a minority of voters falls behind a cut while the others write; the power fails on all the others ' +
      'at once, and one comes back and elects a leader with the lagging voters before the rest return',
    options: (_seed, prng) => ({
      nodes: 3 + 2 * prng.int(2),
      consensus: { snapshotEvery: 16 + prng.int(48) },
      clients: { thinkMs: [0, 5], writeRatio: 0.9, perMember: 4 },
      // Slow disks: what a follower has acknowledged may still be in flight to its disk for a while.
      fsyncMs: [2, 40],
      clockSkew: 0.05,
    }),
    span: 7000,
    script: (gs, prng, span) => {
      startAll(gs, prng, 100)
      // What each acknowledged write then has is the disks of the two sides: the members that acked it
      // and lost power, and the lagging ones that never had it. The one that returns first must hold
      // it, or the lagging ones elect it away.
      every(prng, 0, span - 1500, [1400, 1800], (t) => {
        gs.at(t, () => {
          const lagging = prng.shuffle(gs.ids).slice(0, (gs.ids.length - 1) / 2)
          const writers = gs.ids.filter((id) => !lagging.includes(id))
          gs.partition(lagging)
          const outage = t + prng.between(30, 200)
          gs.at(outage, () => {
            // Mostly a follower returns first: what it acknowledged, the leader counted.
            const leader = leaderOf(gs)?.id
            const followers = writers.filter((id) => id !== leader)
            const first = prng.pick(followers.length > 0 && prng.chance(0.8) ? followers : writers)
            for (const id of writers) gs.crash(id)
            gs.at(outage + prng.between(5, 50), () => {
              gs.start(first)
              gs.heal()
            })
            const rest = outage + prng.between(700, 1200)
            gs.at(rest, () => {
              if (leaderOf(gs) !== undefined) elected.set(gs, (elected.get(gs) ?? 0) + 1)
              for (const id of writers) if (id !== first) gs.start(id)
            })
          })
        })
      })
      return span
    },
    exercises: {
      what: 'a leader elected by the lagging voters and one restarted writer, the other writers down',
      took: (result) => (elected.get(result.sim) ?? 0) > 0,
      share: 0.5,
    },
  },
  {
    name: 'catch-up',
    describe:
      'a member cut off or down while the others write comes back far behind and pulls what it missed ' +
      'from several members, while members fail under it',
    options: (_seed, prng) => ({
      nodes: 3 + prng.int(3),
      consensus: {
        catchUpThreshold: 2 + prng.int(10),
        // Half the seeds compact rarely, so a pull finds every entry in the logs; the others compact
        // often enough that a pull meets a compacted log and turns to a snapshot.
        snapshotEvery: prng.chance(0.5) ? 10_000 : 30 + prng.int(90),
      },
      clients: { thinkMs: [0, 6], writeRatio: 0.85 },
      network: { dropRate: 0.005, duplicateRate: 0.01 },
      clockSkew: 0.05,
    }),
    span: 3400,
    script: (gs, prng, span) => {
      startAll(gs, prng, 200)
      every(prng, 500, span - 300, [400, 900], (t) => {
        gs.at(t, () => {
          const leader = leaderOf(gs)?.id
          const followers = gs.ids.filter((id) => id !== leader && gs.member(id).alive)
          if (followers.length === 0) return
          const victim = prng.pick(followers)
          const back = t + prng.between(150, 700)
          if (leader !== undefined && prng.chance(0.3)) {
            // The leader goes too, cut off with the victim: it keeps appending writes it cannot commit,
            // and after the heal it holds them (until the new leader replaces them) while members pull.
            gs.partition([leader, victim])
            gs.at(back, () => gs.heal())
          } else if (prng.chance(0.5)) {
            gs.partition([victim])
            gs.at(back, () => gs.heal())
          } else {
            gs.crash(victim)
            gs.at(back, () => gs.start(victim))
          }
          // While it pulls: one of the members it pulls from fails, or the link from one to it, or
          // the victim itself once more.
          const during = back + prng.between(2, 80)
          if (during >= span || prng.chance(0.3)) return
          const server = prng.pick(gs.ids.filter((id) => id !== victim))
          switch (prng.int(3)) {
            case 0:
              gs.at(during, () => gs.crash(server))
              gs.at(during + prng.between(50, 400), () => gs.start(server))
              break
            case 1:
              gs.at(during, () => gs.oneWay(server, victim))
              gs.at(during + prng.between(50, 400), () => gs.heal())
              break
            default:
              gs.at(during, () => gs.crash(victim))
              gs.at(during + prng.between(20, 300), () => gs.start(victim))
          }
        })
      })
      return span
    },
    exercises: { what: 'pulled entries', took: (r) => r.stats.entriesPulled > 0, share: 0.5 },
  },
  {
    name: 'replace-voter',
    describe:
      'voters stay down past voterUnreachableMs under write load: the leader replaces them with learners, ' +
      'and they come back as learners, while members fail and links cut',
    options: (_seed, prng) => ({
      nodes: 4 + prng.int(3),
      consensus: { maxVoters: 3, voterUnreachableMs: 400 + prng.int(600), snapshotEvery: 40 + prng.int(200) },
      clients: { thinkMs: [0, 10], writeRatio: 0.8 },
      network: { dropRate: 0.005 },
      clockSkew: 0.05,
    }),
    span: 4000,
    script: (gs, prng, span) => {
      startAll(gs, prng, 300)
      // The voter sets leaders report, so the check below sees that replacements happened.
      every(prng, 0, span, [40, 80], (t) =>
        gs.at(t, () => {
          const voters = leaderOf(gs)?.worker?.status.value.voters
          if (voters) gs.observed.add([...voters].sort().join(','))
        }),
      )
      every(prng, 600, span - 300, [500, 1100], (t) => {
        gs.at(t, () => {
          const leader = leaderOf(gs)
          if (!leader) return
          const voters = leader.worker!.status.value.voters.filter((id) => gs.member(id).alive)
          // Most often a follower voter, sometimes the leader itself; down long enough to be replaced
          // or not quite.
          const followers = voters.filter((id) => id !== leader.id)
          const pick = followers.length === 0 || prng.chance(0.25) ? leader.id : prng.pick(followers)
          const back = t + prng.between(200, 2000)
          downUntil(gs, prng, pick, back, 0.7)
          // While the voter set changes: another member fails for a moment (within the faulty phase:
          // the final heal must find every member up).
          const at = t + prng.between(100, 900)
          if (prng.chance(0.3) && at < span) {
            const other = prng.pick(gs.ids.filter((id) => id !== pick))
            gs.at(at, () => gs.crash(other))
            gs.at(at + prng.between(50, 500), () => gs.start(other))
          }
        })
      })
      return span
    },
    exercises: { what: 'voter sets changed', took: (r) => r.sim.observed.size > 1, share: 0.5 },
  },
  {
    name: 'observers',
    describe:
      'observers (as collection readers are) and reluctant members join a group of voters, and all of ' +
      'them crash, restart and get cut off while clients write through every one',
    options: (_seed, prng) => ({
      nodes: 5 + prng.int(2),
      consensus: { snapshotEvery: prng.chance(0.5) ? 10_000 : 20 + prng.int(60) },
      clients: { thinkMs: [0, 12], writeRatio: 0.7 },
      network: { dropRate: 0.005, duplicateRate: 0.01 },
      clockSkew: 0.1,
    }),
    span: 3400,
    script: (gs, prng, span) => {
      // Three voters to be; the rest observe or are reluctant, and start at any time.
      const [a, b, c, ...rest] = prng.shuffle(gs.ids)
      for (const id of [a!, b!, c!]) gs.at(prng.between(0, 200), () => gs.start(id, 'normal'))
      for (const id of rest) {
        const preference = prng.chance(0.7) ? 'observer' : 'reluctant'
        gs.at(prng.between(0, span * 0.6), () => gs.start(id, preference))
      }
      every(prng, 500, span - 200, [250, 700], (t) => {
        gs.at(t, () => {
          const alive = gs.ids.filter((id) => gs.member(id).alive)
          if (alive.length === 0) return
          const victim = prng.pick(alive)
          const back = t + prng.between(50, 1200)
          downUntil(gs, prng, victim, back, 0.6)
        })
      })
      return span
    },
    check: (gs) => {
      for (const m of gs.running()) {
        const { isVoter } = m.worker!.node.status()
        if (m.preference === 'observer' && isVoter) gs.problems.push(`observer ${m.id} is a voter`)
      }
    },
  },
  {
    name: 'disk-failure',
    describe:
      "a member's disk starts failing writes (full, or an fsync error) while clients write, the leader's " +
      'too: it stops at once and fails what waits on it, the others go on, and it rejoins after a restart',
    options: (_seed, prng) => ({
      nodes: 3 + 2 * prng.int(2),
      consensus: { snapshotEvery: prng.chance(0.5) ? 10_000 : 16 + prng.int(48) },
      clients: { thinkMs: [0, 10], writeRatio: 0.7 },
      network: { dropRate: 0.005 },
      clockSkew: 0.05,
    }),
    span: 3400,
    script: (gs, prng, span) => {
      startAll(gs, prng, 300)
      every(prng, 500, span - 400, [300, 800], (t) => {
        gs.at(t, () => {
          const running = gs.running()
          // Keep a majority writing most of the time, but not always.
          if (running.length <= Math.ceil(gs.ids.length / 2) && prng.chance(0.8)) return
          const leader = leaderOf(gs)
          const victim = leader && prng.chance(0.4) ? leader : prng.pick(running)
          if (!victim) return
          const { incarnation, handle } = victim
          gs.failDisk(victim.id)
          // The operator notices, fixes the disk and restarts the process (within the faulty phase).
          const back = Math.min(span - 60, t + prng.between(200, 1200))
          gs.at(back, () => {
            if (victim.incarnation !== incarnation) return
            const halted = victim.worker?.halted
            if (halted) {
              if (halted.code !== 'STORAGE')
                gs.problems.push(`${victim.id} halted with ${halted.code}, not STORAGE`)
              gs.observed.add('stopped')
              const waiting = gs.ops.filter((o) => o.client === victim.id && o.outcome === 'pending')
              if (waiting.length > 0) {
                const calls = waiting.map((o) => `${o.input.kind} since ${o.callAt.toFixed(0)}`).join(', ')
                gs.problems.push(`calls still wait on ${victim.id}, stopped by its disk: ${calls}`)
              }
            } else if (handle && handle.failedWrites > 0) {
              gs.problems.push(`${victim.id} goes on after ${handle.failedWrites} failed disk writes`)
            }
            gs.crash(victim.id)
            gs.at(back + prng.between(20, 300), () => gs.start(victim.id))
          })
        })
      })
      return span
    },
    exercises: {
      what: 'members stopped by their disk',
      took: (r) => r.sim.observed.has('stopped'),
      share: 0.5,
    },
  },
  {
    name: 'busy',
    describe:
      'several clients call through each member against small limits on forwarded commands and reads, ' +
      'while members crash and get cut off: a write refused with BUSY never takes effect',
    options: (_seed, prng) => ({
      nodes: 3 + prng.int(3),
      consensus: {
        maxForwardedCommands: 1 + prng.int(4),
        maxForwardedReads: 1 + prng.int(2),
        snapshotEvery: prng.chance(0.5) ? 10_000 : 30 + prng.int(90),
      },
      clients: { thinkMs: [0, 5], writeRatio: 0.7, perMember: 3 + prng.int(3) },
      network: { dropRate: 0.005, duplicateRate: 0.01 },
      clockSkew: 0.05,
    }),
    span: 3000,
    script: (gs, prng, span) => {
      startAll(gs, prng, 200)
      every(prng, 500, span - 200, [300, 900], (t) => {
        gs.at(t, () => {
          const alive = gs.ids.filter((id) => gs.member(id).alive)
          if (alive.length <= Math.ceil(gs.ids.length / 2)) return
          const victim = prng.pick(alive)
          const back = t + prng.between(50, 800)
          downUntil(gs, prng, victim, back, 0.5)
        })
      })
      return span
    },
    exercises: { what: 'writes refused with BUSY', took: (r) => r.sim.observed.has('busy'), share: 0.5 },
  },
  {
    name: 'rival',
    describe: 'two sides that cannot learn of each other form apart, then meet: nothing acknowledged is lost',
    rival: true,
    options: (_seed, prng) => ({
      nodes: 4 + prng.int(2),
      checkApplyOrder: false,
      clients: { thinkMs: [1, 40], writeRatio: 0.6 },
    }),
    span: 2500,
    script: (gs, prng, span) => {
      const ids = prng.shuffle(gs.ids)
      const cut = 1 + prng.int(ids.length - 1)
      gs.splitDiscovery(ids.slice(0, cut), ids.slice(cut))
      startAll(gs, prng, 400)
      gs.at(prng.between(500, span * 0.8), () => gs.joinDiscovery())
      return span
    },
  },
  {
    name: 'chaos',
    describe: 'everything at once: partitions, one-way links, crashes, loss, duplication, clock drift',
    options: (_seed, prng) => ({
      nodes: 3 + prng.int(3),
      consensus: { snapshotEvery: 16 + prng.int(48) },
      network: { dropRate: 0.02, duplicateRate: 0.02, maxDelayMs: 20 },
      clockSkew: 0.2,
    }),
    span: 4000,
    script: (gs, prng, span) => {
      startAll(gs, prng, 800)
      every(prng, 400, span, [150, 600], (t) => {
        gs.at(t, () => {
          const ids = gs.ids
          switch (prng.int(5)) {
            case 0: {
              const shuffled = prng.shuffle(ids)
              const k = 1 + prng.int(ids.length - 1)
              gs.partition(shuffled.slice(0, k))
              break
            }
            case 1: {
              const [a, b] = prng.shuffle(ids)
              gs.oneWay(a!, b!)
              break
            }
            case 2:
              gs.heal()
              break
            default: {
              const alive = ids.filter((id) => gs.member(id).alive)
              if (alive.length <= 1) return
              const victim = prng.pick(alive)
              gs.crash(victim)
              gs.at(t + prng.between(20, 1200), () => gs.start(victim))
            }
          }
        })
      })
      return span
    },
  },
]

export function scenario(name: string): Scenario {
  const s = SCENARIOS.find((x) => x.name === name)
  if (!s) throw new Error(`no scenario ${name}; there are ${SCENARIOS.map((x) => x.name).join(', ')}`)
  return s
}

/** Runs one seed of a scenario and checks it. */
export async function runScenario(
  s: Scenario,
  seed: number,
  options: { trace?: boolean; span?: number } = {},
): Promise<RunResult> {
  const prng = new Prng(seed ^ 0x5bd1e995)
  const gs = new GroupSim({ seed, ...s.options(seed, prng), trace: options.trace ?? false })
  const faultsEnd = s.script(gs, prng, options.span ?? s.span)
  await gs.run(faultsEnd)

  // The final heal: the network, discovery, every crashed member back.
  gs.heal()
  if (s.rival) gs.joinDiscovery()
  for (const id of gs.ids) if (!gs.member(id).alive) gs.start(id)
  gs.stopClients()
  const healAt = gs.now

  // Recovery: a write through some running member commits within RECOVERY_MS.
  let recoveryMs: number | undefined
  while (gs.now - healAt < RECOVERY_MS) {
    const running = gs.running()
    if (running.length === 0) {
      await gs.run(50)
      continue
    }
    const m = prng.pick(running)
    const acked = await drive(gs, gs.write(m, m.worker!), healAt + RECOVERY_MS - gs.now)
    if (acked === true) {
      recoveryMs = gs.now - healAt
      break
    }
    await gs.run(20)
  }
  if (recoveryMs === undefined)
    gs.problems.push(`no write committed within ${RECOVERY_MS} ms after the final heal`)

  // Quiet: every running member applies the same index in the same cluster, and calls settle.
  const converged = () => {
    const running = gs.running()
    if (running.length === 0 || gs.clientsBusy()) return false
    const s0 = running[0]!.worker!.node.status()
    const leaders = running.filter((m) => m.worker!.node.status().role === 'leader')
    if (leaders.length !== 1) return false
    const commit = leaders[0]!.worker!.node.status().commitIndex
    return running.every((m) => {
      const st = m.worker!.node.status()
      return (
        st.clusterId === s0.clusterId && m.worker!.applied.value === commit && st.leader === leaders[0]!.id
      )
    })
  }
  if (!(await gs.runUntil(converged, CONVERGE_MS))) {
    const states = gs
      .running()
      .map((m) => {
        const st = m.worker!.node.status()
        return `${m.id}:${st.role}/t${st.term}/c${st.commitIndex}/a${m.worker!.applied.value}/${st.clusterId?.slice(0, 6)}${st.catchingUp ? '/catching-up' : ''}`
      })
      .join(' ')
    gs.problems.push(`running members did not converge within ${CONVERGE_MS} ms of recovery: ${states}`)
  }

  // Strong reads everywhere agree, and so do the state machines.
  const running = gs.running()
  // (A read is retried: a lost request times out with the read's deadline.)
  const readUntilAnswered = async (m: SimMember) => {
    for (let i = 0; i < 5; i++) {
      const r = await gs.read(m, m.worker!)
      if (r !== undefined) return r
    }
    return undefined
  }
  const reads = await drive(gs, Promise.all(running.map(readUntilAnswered)), 5 * CONVERGE_MS)
  if (reads === undefined) gs.problems.push('final strong reads did not complete')
  else if (reads.some((r) => r === undefined)) {
    gs.problems.push(
      `final strong reads failed on ${running.filter((_, i) => reads[i] === undefined).map((m) => m.id)}`,
    )
  } else {
    const distinct = new Set(reads.map((r) => JSON.stringify(r)))
    if (distinct.size !== 1) {
      gs.problems.push(
        `final strong reads disagree: ${running.map((m, i) => `${m.id}=${JSON.stringify(reads[i])}`).join(' ')}`,
      )
    }
  }
  const reference = running[0] ? gs.valuesOf(running[0].id) : []
  for (const m of running.slice(1)) {
    const values = gs.valuesOf(m.id)
    if (values.length !== reference.length || values.some((v, i) => v !== reference[i])) {
      gs.problems.push(
        `state machines differ: ${running[0]!.id} has ${reference.length} values, ${m.id} ${values.length}`,
      )
    }
  }
  // Members that lost a rivalry keep their data; one stopped by its disk counts for nothing.
  const keptBy = gs.halted().filter((m) => m.worker!.halted!.code === 'GROUP_DIVERGED')
  gs.checkOutcome(reference, { linearizable: !s.rival, keptBy })
  if (s.check && gs.problems.length === 0) s.check(gs)

  return {
    scenario: s.name,
    seed,
    problems: gs.problems,
    notes: gs.notes,
    hash: gs.hash,
    stats: {
      events: gs.events,
      frames: gs.frames,
      ops: gs.ops.length,
      acked: gs.acked.size,
      simMs: gs.now,
      recoveryMs,
      halted: gs.halted().length,
      ...gs.catchUpStats(),
    },
    sim: gs,
  }
}

/** Runs the simulation until `task` settles or `ms` pass; its value, or undefined. */
async function drive<T>(gs: GroupSim, task: Promise<T>, ms: number): Promise<T | undefined> {
  let done = false
  let value: T | undefined
  task.then(
    (v) => {
      done = true
      value = v
    },
    () => {
      done = true
    },
  )
  await gs.runUntil(() => done, Math.max(0, ms))
  return value
}

/** A one-line replay hint for a failing seed. */
export function replayHint(name: string, seed: number): string {
  return `replay: npm run sim -- --scenario ${name} --seed ${seed} --runs 1 --trace`
}
