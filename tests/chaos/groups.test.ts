/**
 * Chaos: five members as five OS processes over QUIC on loopback, each with its own data directory,
 * each in one group (a `Ledger`: a register per key that also keeps every command it applied) and in
 * one replicated Map as a writer. Clients write and read both without pause while a seeded nemesis
 * `kill -9`s members and restarts them from their data directories: a random member, the leader of
 * the group or of the Map, two members in quick succession, a member while another is restarting or
 * the restarting member itself. Never more than two members (a minority of five) are down or
 * restarting at once; a restart comes after 0.2 to 2.5 s, sometimes after 6 s (long enough for the
 * others to compact their logs past it, so it needs a snapshot).
 *
 * The clients run in this process, two per member, each calling its member over stdin/stdout. Every
 * call is recorded here, with invoke and return times taken in this process (a call's recorded span
 * contains its real span): ok with its value, failed, or unknown. A write that failed with OfflineError
 * certainly did not take effect (README, "What an acknowledged write means") and leaves the history; a
 * write that failed otherwise, or whose member died while it was in flight, is unknown: it may take
 * effect at any time after its invocation, or never. A read that failed changes nothing and leaves the
 * history. Group reads are strong queries (ReadIndex); Map reads commit a compare-and-swap that
 * changes nothing and read the local replica once it is applied.
 *
 * After the chaos every member is restarted, the clients stop, a barrier write is committed in each
 * group and every member applies it. Then:
 * - the applied state of every member is the same: the same ledger (every command in the same order)
 *   and the same Map entries;
 * - every acknowledged group write is in every ledger exactly once, every acknowledged insert of a
 *   fresh Map key is in every Map, and no write that failed with OfflineError is anywhere (writes lost
 *   must be 0);
 * - acknowledged log indices are unique and follow real time, in each group;
 * - the history, with final reads of every key from every member's applied state, is linearizable for
 *   a register per key (tests/support/linearizability.ts). Keys rotate every EPOCH_MS, which keeps
 *   each key's history short enough for the search however long the run.
 *
 * `npm test` runs DEFAULT_SECONDS of chaos (the whole test stays under 90 s on 2 cores);
 * `npm run chaos` runs MOSAIK_CHAOS_SECONDS (default 600 there). MOSAIK_CHAOS_SEED picks the schedule
 * (random by default; printed in the summary line and in every failure). Timing on a loaded machine
 * differs from run to run, so a seed replays the schedule's choices, not the exact interleaving.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { afterAll, describe, expect, it } from 'vitest'
import { Watch } from '../../src/primitives/watch.ts'
import { FAST_CONSENSUS } from '../support/consensus.ts'
import { checkLinearizable, History, type Model, type Operation } from '../support/linearizability.ts'
import { uniqueNetwork } from '../support/nodes.ts'
import { Prng } from '../support/sim-network.ts'
import { secs, within } from '../support/time.ts'
import { MemberProcess, ProcessDiedError, RemoteError } from './process.ts'

const DEFAULT_SECONDS = 25
const SECONDS = Number(process.env.MOSAIK_CHAOS_SECONDS ?? '') || DEFAULT_SECONDS
const SEED = Number(process.env.MOSAIK_CHAOS_SEED ?? '') || 1 + Math.floor(Math.random() * 2 ** 31)
const MEMBERS = 5
/** The most members down or restarting at once: a minority. */
const MINORITY = Math.floor((MEMBERS - 1) / 2)
const CLIENTS_PER_MEMBER = 2
/** Hot keys per group and epoch; keys rotate every epoch. */
const HOT_KEYS = 3
const EPOCH_MS = 10_000
/** A client's pause between calls is drawn from [0, PACE_MS) ms (workload pacing). */
const PACE_MS = 40
/** Search budget of the linearizability check, per key. */
const MAX_STEPS = 2_000_000
const consensus = {
  ...FAST_CONSENSUS,
  bootstrapDelayMs: 500,
  // All five start together and found the groups as five voters (no promotions to wait for).
  bootstrapExpect: MEMBERS,
  commitTimeoutMs: 5000,
  // Compact often, so restarts replay snapshots and laggards need one.
  snapshotEvery: 300,
}

type Target = 'g' | 'm'
type Input =
  | { target: Target; kind: 'write'; key: string; value: string }
  | { target: Target; kind: 'read'; key: string }
/** A write's output has value null; `index` is the log index (group) or version (Map) acknowledged. */
interface Output {
  value: string | null
  index: number
}

/** A register per key, per group. */
const registerPerKey: Model<string | null, Input, Output> = {
  init: () => null,
  step: (state, input) =>
    input.kind === 'write'
      ? { ok: true, state: input.value, output: { value: null, index: 0 } }
      : { ok: true, state, output: { value: state, index: 0 } },
  hash: (state) => String(state),
  equal: (a, b) => a === b,
  // Indices are checked separately: the model cannot know them.
  outputMatches: (expected, actual) => expected.value === actual.value,
  partition: (input) => `${input.target}:${input.key}`,
}

type State = 'down' | 'starting' | 'up'
interface Slot {
  index: number
  dataDir: string
  proc?: MemberProcess
  state: Watch<State>
  /** The restart in progress or scheduled. */
  restart?: Promise<void>
  peerId?: string
}

interface MemberState {
  committed: number
  ledger: string[]
  mapVersion: number
  map: [string, string][]
}

describe('chaos: kill -9 and restart members of a group and a Map under load', () => {
  const slots: Slot[] = []
  const dirs: string[] = []
  afterAll(async () => {
    await Promise.all(slots.map((s) => s.proc?.kill()))
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
  })

  it(
    `${MEMBERS} processes, ${SECONDS} s of kills and restarts: no acknowledged write lost, history linearizable`,
    async () => {
      const network = uniqueNetwork('chaos')
      const prng = new Prng(SEED)
      const nemesis = prng.fork()
      const started = Date.now()
      const problems: string[] = []
      const counts = { kills: 0, leaderKills: 0, doubleKills: 0, killsDuringRestart: 0, restarts: 0 }
      const history = new History<Input, Output>()
      /** Writes that failed with OfflineError: they must be nowhere. */
      const offline: Input[] = []
      const stop = new AbortController()
      const say = (what: string) => `${what} (seed ${SEED}; MOSAIK_CHAOS_SEED=${SEED} replays the schedule)`

      for (let i = 0; i < MEMBERS; i++) {
        const dataDir = await mkdtemp(join(tmpdir(), 'mosaik-chaos-'))
        dirs.push(dataDir)
        slots.push({ index: i, dataDir, state: new Watch<State>('down') })
      }
      const up = () => slots.filter((s) => s.state.value === 'up')
      const notUp = () => slots.filter((s) => s.state.value !== 'up').length

      /** Starts (or restarts) a member from its data directory, bootstrapping from the members up. */
      async function start(slot: Slot): Promise<void> {
        slot.state.set('starting')
        const bootstrap = up().flatMap((s) => s.proc!.addresses.slice(0, 1))
        const { proc, ready } = MemberProcess.spawn({ network, dataDir: slot.dataDir, bootstrap, consensus })
        slot.proc = proc
        void proc.exited.then(() => {
          if (!proc.killed && !stop.signal.aborted)
            problems.push(`member ${slot.index} exited on its own: ${proc.stderr.slice(-8).join(' | ')}`)
        })
        try {
          await within(secs(30), ready, `member ${slot.index} ready`)
        } catch (err) {
          if (proc.killed) return // killed while starting: the nemesis restarts it
          problems.push(`member ${slot.index} failed to start: ${err}; ${proc.stderr.slice(-8).join(' | ')}`)
          await proc.kill()
          slot.state.set('down')
          return
        }
        if (slot.proc !== proc || proc.dead) return
        if (slot.peerId !== undefined && slot.peerId !== proc.peerId)
          problems.push(`member ${slot.index} came back as ${proc.peerId}, was ${slot.peerId}`)
        slot.peerId = proc.peerId
        slot.state.set('up')
      }

      /** SIGKILLs a member (up or starting) and schedules its restart. */
      async function kill(slot: Slot, restartAfterMs: number): Promise<void> {
        slot.state.set('down')
        await slot.proc?.kill()
        counts.kills++
        slot.restart = (async () => {
          await delay(restartAfterMs)
          if (slot.state.value !== 'down') return
          counts.restarts++
          await start(slot)
        })()
      }
      const restartDelay = () => (nemesis.chance(0.15) ? 6000 : nemesis.between(200, 2500))

      /** The member leading the group or the Map, as one member up sees it. */
      async function leader(): Promise<Slot | undefined> {
        const asked = nemesis.pick(up())
        const which = nemesis.chance(0.5) ? 'leader' : 'mapLeader'
        const status = await asked
          .proc!.call<Record<string, unknown>>('status', { timeoutMs: 2000 })
          .catch(() => undefined)
        return up().find((s) => s.peerId === status?.[which])
      }

      /** Waits (bounded) until at most `n` members are down or restarting. */
      async function atMostDown(n: number): Promise<void> {
        const wait = async () => {
          while (notUp() > n)
            await Promise.race(
              slots.filter((s) => s.state.value !== 'up').map((s) => s.state.until((v) => v === 'up')),
            )
        }
        await within(secs(30), wait(), `at most ${n} member(s) down`)
      }

      async function runNemesis(until: number): Promise<void> {
        while (Date.now() < until) {
          await delay(nemesis.between(300, 1500))
          const r = nemesis.next()
          if (r < 0.3) {
            // The leader, once at most one other member is down.
            await atMostDown(MINORITY - 1)
            const l = await leader()
            if (l !== undefined && notUp() < MINORITY) {
              counts.leaderKills++
              await kill(l, restartDelay())
            }
          } else if (r < 0.5) {
            // Two in quick succession (the first often the leader), once every member is back up.
            await atMostDown(0)
            const first = (nemesis.chance(0.5) ? await leader() : undefined) ?? nemesis.pick(up())
            await kill(first, restartDelay())
            await delay(nemesis.between(10, 400))
            if (notUp() < MINORITY) {
              counts.doubleKills++
              await kill(nemesis.pick(up()), restartDelay())
            }
          } else if (r < 0.7) {
            // During a restart: kill a member, restart it soon, and once it is starting kill it again
            // or kill another member.
            await atMostDown(0)
            const victim = nemesis.pick(up())
            await kill(victim, nemesis.between(50, 300))
            await victim.state.until((s) => s !== 'down', { signal: stop.signal }).catch(() => {})
            await delay(nemesis.between(0, 800))
            if (nemesis.chance(0.5)) {
              if (victim.state.value === 'down') continue
              counts.killsDuringRestart++
              await kill(victim, restartDelay())
            } else if (notUp() < MINORITY && up().length > 0) {
              counts.killsDuringRestart++
              await kill(nemesis.pick(up()), restartDelay())
            }
          } else {
            await atMostDown(MINORITY - 1)
            await kill(nemesis.pick(up()), restartDelay())
          }
        }
      }

      // ---- the clients ----------------------------------------------------------------------------
      let nextValue = 0
      /** Milliseconds from invocation to an ok return. */
      const latencies: number[] = []
      let nextFresh = 0
      const hotKey = (p: Prng) => `e${Math.floor((Date.now() - started) / EPOCH_MS)}.k${p.int(HOT_KEYS)}`
      const generate = (p: Prng): Input => {
        const r = p.next()
        if (r < 0.3) return { target: 'g', kind: 'write', key: hotKey(p), value: `v${++nextValue}` }
        if (r < 0.5) return { target: 'g', kind: 'read', key: hotKey(p) }
        if (r < 0.65) return { target: 'm', kind: 'write', key: hotKey(p), value: `v${++nextValue}` }
        if (r < 0.8) return { target: 'm', kind: 'write', key: `u${++nextFresh}`, value: `v${++nextValue}` }
        return { target: 'm', kind: 'read', key: hotKey(p) }
      }

      /** Calls one member and records the call; resolves with the output when it succeeded. */
      async function perform(
        client: number | string,
        proc: MemberProcess,
        input: Input,
      ): Promise<Output | undefined> {
        const id = history.invoke(client, input)
        const invoked = performance.now()
        const cmd = `${input.target}${input.kind === 'write' ? (input.target === 'g' ? 'write' : 'set') : 'read'}`
        try {
          const result = await proc.call<number | { value: string | null; at?: number; version?: number }>(
            cmd,
            {
              key: input.key,
              ...(input.kind === 'write' ? { value: input.value } : {}),
              timeoutMs: 15_000,
            },
          )
          const output =
            typeof result === 'number'
              ? { value: null, index: result }
              : { value: result.value, index: result.version ?? -1 }
          history.ok(id, output)
          latencies.push(performance.now() - invoked)
          return output
        } catch (err) {
          if (input.kind === 'read') history.fail(id)
          else if (err instanceof RemoteError && err.code === 'OfflineError') {
            history.fail(id)
            offline.push(input)
          } else if (err instanceof RemoteError || err instanceof ProcessDiedError) history.unknown(id)
          else throw err
          return undefined
        }
      }

      async function client(c: number, slot: Slot, p: Prng): Promise<void> {
        while (!stop.signal.aborted) {
          const proc = slot.state.value === 'up' ? slot.proc : undefined
          if (proc === undefined) {
            await slot.state.until((s) => s === 'up', { signal: stop.signal }).catch(() => {})
            continue
          }
          if ((await perform(c, proc, generate(p))) === undefined) await delay(p.between(20, 100))
          await delay(p.int(PACE_MS))
        }
      }

      try {
        // ---- start: one member founds the groups, the others join it; five voters in each ----------
        await start(slots[0]!)
        await Promise.all(slots.slice(1).map((s) => start(s)))
        expect(problems, say('start-up')).toEqual([])
        await within(
          secs(40),
          Promise.all(slots.map((s) => s.proc!.call('awaitVoters', { n: MEMBERS, timeoutMs: secs(40) }))),
          'five voters in the group and in the Map',
        )

        // ---- chaos --------------------------------------------------------------------------------
        const clients = slots.flatMap((slot) =>
          Array.from({ length: CLIENTS_PER_MEMBER }, (_, k) =>
            client(slot.index * CLIENTS_PER_MEMBER + k, slot, prng.fork()),
          ),
        )
        const chaosStart = Date.now()
        const startupSeconds = (chaosStart - started) / 1000
        await runNemesis(chaosStart + SECONDS * 1000)
        const chaosEnd = Date.now()

        // ---- heal: every member back up, clients stop, a barrier in each group ----------------------
        await within(secs(45), Promise.all(slots.map((s) => s.restart)), 'restarts')
        for (const s of slots) if (s.state.value === 'down') await start(s)
        await within(
          secs(30),
          Promise.all(slots.map((s) => s.state.until((v) => v === 'up'))),
          'every member up after the chaos',
        )
        const chaosSeconds = (chaosEnd - chaosStart) / 1000
        stop.abort()
        await within(secs(40), Promise.all(clients), 'clients stop')

        const barrier = async (target: Target): Promise<number> => {
          for (let attempt = 0; ; attempt++) {
            const input: Input = { target, kind: 'write', key: 'barrier', value: `barrier-${attempt}` }
            const output = await perform(`barrier-${target}`, slots[attempt % MEMBERS]!.proc!, input)
            if (output !== undefined) return output.index
          }
        }
        const [gIndex, mVersion] = await within(
          secs(40),
          Promise.all([barrier('g'), barrier('m')]),
          'barrier writes commit after the heal',
        )
        await within(
          secs(40),
          Promise.all(
            slots.map((s) =>
              s.proc!.call('awaitApplied', { index: gIndex, version: mVersion, timeoutMs: secs(40) }),
            ),
          ),
          'every member applies the barriers',
        )
        const healSeconds = (Date.now() - chaosEnd) / 1000
        const states = await Promise.all(slots.map((s) => s.proc!.call<MemberState>('state')))

        // ---- checks -------------------------------------------------------------------------------
        const failures: string[] = [...problems]
        // The same applied state everywhere.
        for (const [i, s] of states.entries()) {
          if (JSON.stringify(s.ledger) !== JSON.stringify(states[0]!.ledger))
            failures.push(
              `member ${i}'s ledger differs from member 0's: ${describeDiff(s.ledger, states[0]!.ledger)}`,
            )
          if (JSON.stringify(s.map) !== JSON.stringify(states[0]!.map))
            failures.push(
              `member ${i}'s Map differs from member 0's: ${describeDiff(s.map.map(String), states[0]!.map.map(String))}`,
            )
        }
        // Acknowledged writes present everywhere, exactly once; OfflineError writes nowhere.
        const ops = history.operations()
        const acked = ops.filter((o) => o.input.kind === 'write' && o.return !== undefined)
        let lost = 0
        const lostExamples: string[] = []
        for (const [i, s] of states.entries()) {
          const ledger = new Map<string, number>()
          for (const e of s.ledger) ledger.set(e, (ledger.get(e) ?? 0) + 1)
          const map = new Map(s.map)
          for (const o of acked) {
            const w = o.input as Extract<Input, { kind: 'write' }>
            const present =
              w.target === 'g'
                ? ledger.get(`${w.key}=${w.value}`) === 1
                : !w.key.startsWith('u') || map.get(w.key) === w.value
            if (!present) {
              lost++
              if (lostExamples.length < 5) lostExamples.push(`member ${i}: ${w.target} ${w.key}=${w.value}`)
            }
          }
          const twice = [...ledger].filter(([, n]) => n > 1)
          if (twice.length)
            failures.push(`member ${i} applied ${twice.length} command(s) twice, e.g. ${twice[0]![0]}`)
          for (const w of offline as Extract<Input, { kind: 'write' }>[]) {
            const there = w.target === 'g' ? ledger.has(`${w.key}=${w.value}`) : map.get(w.key) === w.value
            if (there)
              failures.push(
                `member ${i}: ${w.target} ${w.key}=${w.value} failed with OfflineError but applied`,
              )
          }
        }
        if (lost)
          failures.push(
            `${lost} acknowledged write(s) missing from replicas, e.g. ${lostExamples.join('; ')}`,
          )
        for (const target of ['g', 'm'] as const) {
          const v = indexViolations(ops.filter((o) => o.input.target === target))
          if (v.length) failures.push(`${target === 'g' ? 'group' : 'Map'} indices: ${v.join('; ')}`)
        }

        // Final reads of every hot key from every member's applied state, after everything else.
        const keys = { g: new Set<string>(), m: new Set<string>() }
        for (const o of ops) if (!o.input.key.startsWith('u')) keys[o.input.target].add(o.input.key)
        for (const [i, s] of states.entries()) {
          const ledger = new Map<string, string>()
          for (const e of s.ledger) {
            const at = e.indexOf('=')
            ledger.set(e.slice(0, at), e.slice(at + 1))
          }
          const map = new Map(s.map)
          for (const target of ['g', 'm'] as const)
            for (const key of keys[target]) {
              const id = history.invoke(`final-${i}`, { target, kind: 'read', key })
              const value = (target === 'g' ? ledger.get(key) : map.get(key)) ?? null
              history.ok(id, { value, index: -1 })
            }
        }
        const checked = performance.now()
        const all = history.operations()
        const verdict = checkLinearizable(registerPerKey, all, { maxSteps: MAX_STEPS })
        const checkMs = Math.round(performance.now() - checked)
        if (verdict.linearizable !== true)
          failures.push(
            `history not linearizable (${verdict.linearizable === false ? 'no linearization' : 'search budget exhausted'}) for key ${verdict.partition}${
              verdict.linearizable === false ? `: ${describeOps(verdict.operations)}` : ''
            }`,
          )

        const c = history.counts()
        const writesAcked = acked.length
        console.log(
          `[chaos] seed ${SEED}: ${chaosSeconds.toFixed(0)} s of chaos (start-up ${startupSeconds.toFixed(1)} s, heal ${healSeconds.toFixed(1)} s), ${counts.kills} kills (${counts.leaderKills} of a leader, ${counts.doubleKills} double, ${counts.killsDuringRestart} during a restart), ${counts.restarts} restarts, writes acknowledged ${writesAcked} (group ledger ${states[0]!.ledger.length} entries, Map ${states[0]!.map.length} keys), writes lost ${lost}, history ${all.length} operations (ok ${c.ok}, failed ${c.fail}, unknown ${c.unknown + c.pending}), linearizable ${verdict.linearizable === true ? 'yes' : 'no'} (checked in ${checkMs} ms), ok call latency p50 ${percentile(latencies, 0.5)} ms p99 ${percentile(latencies, 0.99)} ms, ${((Date.now() - started) / 1000).toFixed(0)} s in all`,
        )
        expect(failures, say('chaos checks')).toEqual([])
        expect(lost, say('writes lost')).toBe(0)
        expect(counts.kills, say('kills')).toBeGreaterThanOrEqual(3)
        expect(writesAcked, say('writes acknowledged')).toBeGreaterThan(100)
      } catch (err) {
        console.log(`[chaos] failed, seed ${SEED} (MOSAIK_CHAOS_SEED=${SEED})`)
        for (const s of slots)
          if (s.proc?.stderr.length)
            console.log(`[chaos] member ${s.index} stderr:\n  ${s.proc.stderr.join('\n  ')}`)
        throw err
      } finally {
        stop.abort()
        await Promise.all(slots.map((s) => s.proc?.kill()))
      }
    },
    secs(SECONDS + 110),
  )
})

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0)
}

/** Pairs of acknowledged operations whose indices repeat or contradict real time. */
function indexViolations(ops: readonly Operation<Input, Output>[]): string[] {
  const done = ops.filter((o) => o.return !== undefined && o.output !== undefined && o.output.index >= 0)
  const out: string[] = []
  const seen = new Map<number, Operation<Input, Output>>()
  for (const o of done) {
    const v = o.output!.index
    if (seen.has(v)) out.push(`index ${v} acknowledged twice (${describeOps([seen.get(v)!, o])})`)
    seen.set(v, o)
  }
  const byReturn = [...done].sort((a, b) => a.return! - b.return!)
  const byCall = [...done].sort((a, b) => a.call - b.call)
  let i = 0
  let maxBefore = Number.NEGATIVE_INFINITY
  for (const b of byCall) {
    while (i < byReturn.length && byReturn[i]!.return! < b.call) {
      maxBefore = Math.max(maxBefore, byReturn[i]!.output!.index)
      i++
    }
    if (b.output!.index <= maxBefore) out.push(`index ${b.output!.index} acknowledged after ${maxBefore}`)
  }
  return out.slice(0, 5)
}

function describeOps(ops: readonly Operation<Input, Output>[]): string {
  const shown = ops.slice(0, 40).map((o) => {
    const what = o.input.kind === 'write' ? `write ${o.input.value}` : 'read'
    const result =
      o.return === undefined ? 'unknown' : o.input.kind === 'read' ? `-> ${o.output?.value}` : 'ok'
    return `[${o.call}..${o.return ?? '?'}] c${o.client} ${what} ${result}`
  })
  return `${ops.length} operations: ${shown.join(', ')}${ops.length > 40 ? ', ...' : ''}`
}

function describeDiff(a: readonly string[], b: readonly string[]): string {
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  return `lengths ${a.length} and ${b.length}, first difference at ${i}: ${a[i]} vs ${b[i]}`
}
