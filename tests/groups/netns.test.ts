/**
 * Five hosts in network namespaces over QUIC, the leader's cable pulled for 8 s and plugged back, with
 * clients writing and reading a register on every host the whole time; done as a user would, with
 * default consensus options and a data directory per node.
 *
 * A switch namespace holds a bridge; each host namespace has one veth into it and its own address on
 * a free private /24 (tests/support/netns.ts). One OS process per host (`ip netns exec <ns> node
 * tests/support/register-process.ts`) joins the group and at once runs a client that writes a unique
 * value (`h<host>-<n>`) with `execute` and reads it back with a strong query, recording every call with
 * wall-clock invoke and complete times (one clock for all processes). Once every client has had a
 * write acknowledged, and after 3 s more of load, the test asks the children who leads, takes that host's port on the bridge down for 8 s, brings it up, lets the
 * load run 3 s more, stops the clients and has every host do a final strong read.
 *
 * Checked, each failure listed with its details:
 * - the merged history is linearizable for a register. An acknowledged write returns at its complete
 *   time. A write that failed with OfflineError (code OFFLINE) is left out: the SDK documents that it
 *   certainly did not take effect (src/groups/worker/errors.ts), so a read of its value is a violation
 *   and named as such. A write that failed otherwise (CommitUnknownError, GroupDivergedError, anything
 *   else) or never returned may or may not have taken effect, so it has no return. Failed reads are
 *   left out (a read changes nothing). Times are
 *   in ms, and an equal complete and invoke time counts as concurrent, never as ordered. The final
 *   reads are part of the history, so an acknowledged write that is neither the final value nor
 *   overwritten by a later write is a violation (the lost-write check below names it directly);
 * - the acknowledged log indices: no index for two different writes (forked logs), and a write begun
 *   after another was acknowledged lands at a higher index (committed history is never discarded).
 *   These catch a cluster that formed on its own and was later abandoned or never merged, which the
 *   register model alone can miss when the lost writes can be ordered before later ones;
 * - every host's final strong read succeeds, and they all return the same value;
 * - during the cut, each of the four connected hosts has a write acknowledged within 5 s of the cut;
 * - the isolated old leader acknowledges no write invoked after the cut until the heal (it cannot reach
 *   a majority), and no write or strong read at all from an election timeout plus a lease (750 + 750 ms
 *   with the default timings) after the cut until the heal.
 *
 * Runs: one in CI (about 20 s). MOSAIK_NETNS_RUNS=12 repeats the scenario, each run its own test with
 * fresh namespaces, processes and data directories, and prints which runs failed and why. A failing run
 * writes its whole history to a JSON file in the temp directory and prints the path.
 * MOSAIK_NETNS_PARALLEL=2 runs two scenarios at a time (isolated by their namespaces, competing for
 * CPU): slow start-ups are where several clusters form. MOSAIK_NETNS_CONSENSUS='{"bootstrapExpect":5}'
 * replaces the default consensus options (JSON).
 *
 * Skipped, with the reason in its name, where namespaces cannot be created (not root, no iproute2, no
 * bridge or veth support). Every child is killed and every namespace deleted at the end, on failure
 * too, and on SIGINT/SIGTERM (netns.ts); namespaces of runs killed with SIGKILL are swept next time.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterAll, describe, expect, it } from 'vitest'
import { randomBytes, toHex } from '../../src/primitives/bytes.ts'
import {
  checkLinearizable,
  type Operation,
  type RegisterInput,
  registerModel,
} from '../support/linearizability.ts'
import { type Host, netnsUnavailable, onEmergency, Switch } from '../support/netns.ts'
import { uniqueNetwork } from '../support/nodes.ts'
import { NodeProcess } from '../support/processes.ts'
import type { RecordedOp } from '../support/register-process.ts'
import { ms, secs, within } from '../support/time.ts'

const RUNS = Math.max(1, Number(process.env.MOSAIK_NETNS_RUNS ?? '1') || 1)
/**
 * How many runs go at once (default 1). Each run has its own namespaces, so they cannot interfere
 * through the network; they only compete for CPU, which is the point: slow start-ups are where
 * clusters split.
 */
const PARALLEL = Math.max(1, Number(process.env.MOSAIK_NETNS_PARALLEL ?? '1') || 1)
const HOSTS = 5
/** Workload timing (not waits for the network): load before the cut, the cut, load after the heal. */
const LOAD_BEFORE_MS = 3000
const CUT_MS = 8000
const LOAD_AFTER_MS = 3000
const STAGGER_MS = 150
/** Consensus options for every member: the defaults, unless MOSAIK_NETNS_CONSENSUS (JSON) says otherwise. */
const CONSENSUS: Record<string, unknown> = JSON.parse(process.env.MOSAIK_NETNS_CONSENSUS ?? '{}')
/** Every host listens on this UDP port of its own address (namespaces cannot clash). */
const PORT = 4001
/** The majority side must acknowledge writes again within this of the cut. */
const RESUME_BOUND_MS = secs(5)
/** Default election timeout (500 ms + 250 ms jitter) plus a lease of the same length. */
const ISOLATED_BOUND_MS = ms(750 + 750)
/**
 * The linearizability search's step budget: a linearizable history of these runs (3 000 to 8 000
 * operations) is checked in under a second; one that is not may need far more steps than this.
 */
const MAX_STEPS = 3_000_000

type Status = {
  host: number
  peerId: string
  role: string
  term: number
  leader?: string
  clusterId?: string
  commitIndex: number
  applied: number
  voters: string[]
  learners: string[]
  online: boolean
  bonds: number
  value: string | null
  ops: number
}

interface RunReport {
  failures: string[]
  lines: string[]
  file?: string
}

const unavailable = await netnsUnavailable()
if (unavailable !== undefined) console.warn(`[netns.test] skipped: ${unavailable}`)

describe.skipIf(unavailable !== undefined)(
  `five hosts in network namespaces over QUIC, the leader cut off and healed${unavailable ? ` (skipped: ${unavailable})` : ''}`,
  () => {
    const failed: { run: number; failures: string[]; file?: string }[] = []
    afterAll(() => {
      if (RUNS === 1) return
      const summary = failed.length
        ? failed.map(
            (f) =>
              `run ${f.run}: ${f.failures.length} failure(s)${f.file ? `, history in ${f.file}` : ''}\n  - ${f.failures.join('\n  - ')}`,
          )
        : ['none']
      console.log(`[netns.test] ${failed.length} of ${RUNS} runs failed\n${summary.join('\n')}`)
    })

    // At most PARALLEL scenarios at once; the others wait for a slot (inside their own timeout).
    let free = PARALLEL
    const waiting: (() => void)[] = []
    const slot = async () => {
      if (free > 0) free--
      else await new Promise<void>((resolve) => waiting.push(resolve))
    }
    const release = () => {
      const next = waiting.shift()
      if (next) next()
      else free++
    }
    const test = PARALLEL > 1 ? it.concurrent : it
    for (let run = 1; run <= RUNS; run++) {
      test(
        `run ${run}/${RUNS}: acknowledged writes survive, the minority stays silent, replicas agree`,
        async ({ expect }) => {
          await slot()
          let report: RunReport
          try {
            report = await scenario(run)
          } finally {
            release()
          }
          console.log(`[netns.test] run ${run}/${RUNS}\n  ${report.lines.join('\n  ')}`)
          if (report.failures.length) failed.push({ run, failures: report.failures, file: report.file })
          expect(
            report.failures,
            `run ${run}: ${report.failures.length} failure(s)${report.file ? `; history in ${report.file}` : ''}`,
          ).toEqual([])
        },
        secs(150) * Math.ceil(RUNS / PARALLEL),
      )
    }
  },
)

// The checks themselves, on made-up histories (no namespaces needed): each bad history must be caught
// by the check meant for it, and the good ones must pass.
describe('the checks of the netns scenario', () => {
  const CUT = 1000
  const HEAL = 9000
  let seq = 0
  const w = (host: number, value: string, invoke: number, complete?: number, index?: number): RecordedOp =>
    complete === undefined
      ? {
          host,
          kind: 'write',
          value,
          invoke,
          complete: invoke + 5,
          outcome: 'failed',
          error: 'COMMIT_UNKNOWN: x',
        }
      : { host, kind: 'write', value, invoke, complete, outcome: 'ok', index: index ?? ++seq }
  const r = (host: number, value: string | null, invoke: number, complete: number): RecordedOp => ({
    host,
    kind: 'read',
    value,
    invoke,
    complete,
    outcome: 'ok',
    index: 0,
  })
  /** A healthy base: every connected host writes soon after the cut; host 1 is the isolated one. */
  function run(ops: RecordedOp[], finalValue: string | null, finals?: RecordedOp[]): string[] {
    seq = 100
    const resumed = [2, 3, 4, 5].map((h) => w(h, `h${h}-after-cut`, CUT + 10 * h, CUT + 10 * h + 5))
    const clientOps = [...resumed, ...ops]
    const ends = finals ?? [1, 2, 3, 4, 5].map((h) => r(h, finalValue, HEAL + 5000, HEAL + 5001))
    const c: Checks = {
      failures: [],
      lines: [],
      clientOps,
      finalOps: ends,
      finals: ends,
      isolated: 1,
      votersAtCut: ['h1', 'h2', 'h3', 'h4', 'h5'],
      cut: CUT,
      healStart: HEAL,
      t0: 0,
    }
    analyze(c)
    return c.failures
  }
  const last = 'h5-after-cut'

  it('accepts a healthy history, a failed write seen later, and an equal complete and invoke time', () => {
    expect(run([], last)).toEqual([])
    // A write that failed (it may have applied) and is read later: fine.
    expect(run([w(2, 'h2-x', HEAL + 100), r(3, 'h2-x', HEAL + 200, HEAL + 210)], 'h2-x')).toEqual([])
    // Acknowledged at ms 13 000, and a read begun in that same ms still sees the old value: concurrent.
    expect(
      run([w(2, 'h2-y', 12_990, 13_000), r(3, last, 13_000, 13_010), r(3, 'h2-y', 13_020, 13_030)], 'h2-y'),
    ).toEqual([])
  })

  it('catches a lost acknowledged write', () => {
    const failures = run([w(2, 'h2-a', HEAL + 100, HEAL + 110), w(3, 'h3-b', HEAL + 200, HEAL + 210)], 'h2-a')
    expect(failures.join('\n')).toMatch(/not linearizable/)
    expect(failures.join('\n')).toMatch(/committed after the final value's write .* are lost/)
  })

  it('catches a stale read and a read of a value never written', () => {
    const stale = run(
      [
        w(2, 'h2-a', HEAL + 100, HEAL + 110),
        w(3, 'h3-b', HEAL + 200, HEAL + 210),
        r(4, 'h2-a', HEAL + 300, HEAL + 310),
      ],
      'h3-b',
    )
    expect(stale.join('\n')).toMatch(/stale read: h4 read "h2-a"/)
    const bogus = run([r(4, 'nobody-1', HEAL + 300, HEAL + 310)], last)
    expect(bogus.join('\n')).toMatch(/read of a value never written/)
  })

  it('catches a violation no pairwise witness shows (the full search)', () => {
    // Two concurrent writes that two readers see in opposite orders.
    const ops = [
      w(2, 'h2-a', HEAL + 100, HEAL + 110),
      w(3, 'h3-b', HEAL + 100, HEAL + 110),
      r(4, 'h2-a', HEAL + 200, HEAL + 210),
      r(4, 'h3-b', HEAL + 300, HEAL + 310),
      r(5, 'h3-b', HEAL + 200, HEAL + 210),
      r(5, 'h2-a', HEAL + 300, HEAL + 310),
    ]
    expect(run(ops, 'h2-a').join('\n')).toMatch(/not linearizable .* with no simple pairwise witness/)
  })

  it('catches a write that failed with OfflineError and took effect', () => {
    const offline: RecordedOp = {
      host: 2,
      kind: 'write',
      value: 'h2-z',
      invoke: HEAL + 100,
      complete: HEAL + 110,
      outcome: 'failed',
      error: 'OFFLINE: no leader',
    }
    expect(run([offline, r(3, 'h2-z', HEAL + 200, HEAL + 210)], 'h2-z').join('\n')).toMatch(
      /read of a value whose write failed with OfflineError/,
    )
  })

  it('catches forked logs and a log going backwards', () => {
    const fork = run(
      [w(2, 'h2-a', HEAL + 100, HEAL + 110, 500), w(3, 'h3-b', HEAL + 100, HEAL + 120, 500)],
      'h3-b',
    )
    expect(fork.join('\n')).toMatch(/acknowledged for two or more different writes/)
    const back = run(
      [w(2, 'h2-a', HEAL + 100, HEAL + 110, 600), w(3, 'h3-b', HEAL + 200, HEAL + 210, 550)],
      'h3-b',
    )
    expect(back.join('\n')).toMatch(/the log went backwards/)
  })

  it('catches final reads that differ or fail', () => {
    const differ = run([], last, [
      r(1, 'h2-after-cut', HEAL + 5000, HEAL + 5001),
      r(2, last, HEAL + 5000, HEAL + 5001),
    ])
    expect(differ.join('\n')).toMatch(/final strong reads differ/)
    const failed: RecordedOp = {
      host: 1,
      kind: 'read',
      invoke: HEAL + 5000,
      complete: HEAL + 5001,
      outcome: 'failed',
      error: 'OFFLINE: x',
    }
    expect(run([], last, [failed, r(2, last, HEAL + 5000, HEAL + 5001)]).join('\n')).toMatch(
      /final strong reads failed on host\(s\) 1/,
    )
  })

  it('catches a majority that never resumes and an isolated host that acknowledges', () => {
    const c: Checks = {
      failures: [],
      lines: [],
      clientOps: [],
      finalOps: [],
      finals: [],
      isolated: 1,
      votersAtCut: ['h1', 'h2', 'h3', 'h4', 'h5'],
      cut: CUT,
      healStart: HEAL,
      t0: 0,
    }
    checkMajorityResumed(c)
    expect(c.failures).toHaveLength(4)
    const isolated = run([w(1, 'h1-a', CUT + 1, CUT + 50, 90)], last)
    expect(isolated.join('\n')).toMatch(
      /isolated old leader \(host 1; voters \[h1,h2,h3,h4,h5\] just before the cut\) acknowledged 1 write\(s\) begun after the cut/,
    )
    const late = run([w(1, 'h1-b', CUT - 10, CUT + ISOLATED_BOUND_MS + 10, 90)], last)
    expect(late.join('\n')).toMatch(/completed 1 write\(s\)\/strong read\(s\) more than/)
  })
})

async function scenario(run: number): Promise<RunReport> {
  const failures: string[] = []
  const lines: string[] = []
  const t0 = Date.now()
  const at = (t: number) => `+${t - t0} ms`
  const sw = await Switch.create(HOSTS)
  const dirs = await Promise.all(sw.hosts.map(() => mkdtemp(join(tmpdir(), 'mosaik-netns-'))))
  const procs: NodeProcess[] = []
  const starting: Promise<NodeProcess>[] = []
  const forget = onEmergency(() => {
    for (const p of procs) p?.child.kill('SIGKILL')
  })
  const call = <T>(p: NodeProcess, cmd: string, args: Record<string, unknown>, timeoutMs: number) =>
    within(timeoutMs, p.call<T>(cmd, args), `${cmd} on host ${procs.indexOf(p) + 1}`)
  try {
    lines.push(`namespaces ${sw.ns} and ${HOSTS} hosts on ${sw.subnet}.0/24`)
    const network = uniqueNetwork('netns')
    const secret = toHex(randomBytes(16))
    // As a deployment would: every node has a known identity (its key in its data directory) and a
    // fixed port, and all five start one after another, STAGGER_MS apart, with the first as bootstrap,
    // none waiting for another to be up.
    const ids = await Promise.all(
      dirs.map(async (dir) => {
        const key = await generateKeyPair('Ed25519')
        await writeFile(join(dir, 'identity.key'), privateKeyToProtobuf(key), { mode: 0o600 })
        return peerIdFromPrivateKey(key).toString()
      }),
    )
    const bootstrap = [`/ip4/${sw.hosts[0]!.ip}/udp/${PORT}/quic-v1/p2p/${ids[0]}`]
    const launch = async (h: Host) => {
      const started = Date.now()
      const options = {
        network,
        secret,
        host: h.index,
        listen: h.ip,
        port: PORT,
        dataDir: dirs[h.index - 1],
        bootstrap: h.index === 1 ? [] : bootstrap,
        consensus: CONSENSUS,
      }
      const p = await NodeProcess.start(options, secs(20), 'register', { prefix: h.exec })
      procs[h.index - 1] = p
      lines.push(`host ${h.index} (${h.ip}) joined in ${Date.now() - started} ms, at ${at(Date.now())}`)
      return p
    }
    for (const h of sw.hosts) {
      if (h.index > 1) await delay(STAGGER_MS)
      starting.push(launch(h))
    }
    await Promise.all(starting)
    const hostOf = (peer: string | undefined) => procs.findIndex((p) => p.peerId === peer) + 1

    // The load counts from when every client has had a write acknowledged (a group forms some time
    // after its members joined, longer on a loaded machine); then LOAD_BEFORE_MS of it.
    const acks = await Promise.allSettled(
      procs.map((p) => call<number>(p, 'awaitFirstAck', { timeoutMs: secs(30) }, secs(35))),
    )
    acks.forEach((a, i) => {
      if (a.status === 'rejected')
        failures.push(`host ${i + 1} had no write acknowledged within ${secs(30)} ms: ${a.reason}`)
    })
    const acked = acks.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []))
    lines.push(`every client had a write acknowledged at ${acked.length ? at(Math.max(...acked)) : 'never'}`)
    await delay(LOAD_BEFORE_MS)

    // Who leads? Ask every child; until all agree, await any child seeing a leader change.
    const leaderDeadline = Date.now() + secs(10)
    let statuses: Status[] = []
    while (true) {
      statuses = await Promise.all(procs.map((p) => call<Status>(p, 'status', {}, secs(5))))
      const leaders = new Set(statuses.map((s) => s.leader))
      if (leaders.size === 1 && statuses[0]!.leader !== undefined) break
      const left = leaderDeadline - Date.now()
      if (left <= 0) {
        failures.push(
          `the five hosts did not agree on a leader within ${secs(10)} ms after ${LOAD_BEFORE_MS} ms of load: ${describeStatuses(statuses, hostOf)}`,
        )
        break
      }
      await Promise.race(
        procs.map((p, i) => p.call('awaitLeader', { from: statuses[i]!.leader, timeoutMs: left })),
      ).catch(() => {})
    }
    lines.push(`statuses before the cut: ${describeStatuses(statuses, hostOf)}`)
    const votes = new Map<number, number>()
    for (const s of statuses)
      if (s.leader) votes.set(hostOf(s.leader), (votes.get(hostOf(s.leader)) ?? 0) + 1)
    const ranked = [...votes].sort((a, b) => b[1] - a[1])
    if (ranked.length === 0) throw new Error(`no host knows a leader: ${describeStatuses(statuses, hostOf)}`)
    const isolated: Host = sw.hosts[ranked[0]![0] - 1]!

    const cutStart = Date.now()
    await sw.unplug(isolated)
    const cut = Date.now()
    lines.push(`cut host ${isolated.index} (the leader) at ${at(cut)} (ip took ${cut - cutStart} ms)`)
    await delay(CUT_MS)
    const healStart = Date.now()
    await sw.plug(isolated)
    const heal = Date.now()
    lines.push(`healed host ${isolated.index} at ${at(heal)}`)
    await delay(LOAD_AFTER_MS)

    const stopped = await Promise.all(
      procs.map((p) =>
        call<{ ops: RecordedOp[]; status: Status }>(p, 'stop', { timeoutMs: secs(15) }, secs(25)),
      ),
    )
    const stoppedAt = Date.now()
    lines.push(
      `clients stopped at ${at(stoppedAt)}; statuses: ${describeStatuses(
        stopped.map((s) => s.status),
        hostOf,
      )}`,
    )
    const finals = await Promise.all(
      procs.map((p) =>
        call<{ attempts: RecordedOp[]; status: Status }>(p, 'finalRead', { timeoutMs: secs(20) }, secs(30)),
      ),
    )
    lines.push(
      `final reads done at ${at(Date.now())} (${Date.now() - stoppedAt} ms after the clients stopped)`,
    )

    const clientOps = stopped.flatMap((s) => s.ops)
    const finalOps = finals.flatMap((f) => f.attempts)
    lines.push(...describeCounts(clientOps, t0))

    const ctx: Checks = {
      failures,
      lines,
      clientOps,
      finalOps,
      finals: finals.map((f) => f.attempts.at(-1)!),
      isolated: isolated.index,
      votersAtCut: statuses[isolated.index - 1]!.voters.map((v) => `h${hostOf(v)}`),
      cut,
      healStart,
      t0,
    }
    analyze(ctx)

    let file: string | undefined
    if (failures.length) {
      file = join(tmpdir(), `mosaik-netns-run${run}-${t0}.json`)
      await writeFile(
        file,
        JSON.stringify(
          {
            run,
            t0,
            isolated: isolated.index,
            cut,
            heal,
            failures,
            statuses,
            ops: [...clientOps, ...finalOps],
          },
          null,
          1,
        ),
      )
    }
    return { failures, lines, file }
  } catch (err) {
    const exited: string[] = []
    procs.forEach((p, i) => {
      const end = p?.child.exitCode ?? p?.child.signalCode
      if (end !== null && end !== undefined) exited.push(`host ${i + 1} exited (${end})`)
    })
    failures.push(
      `the scenario did not complete: ${(err as Error).message}${exited.length ? `; ${exited.join(', ')}` : ''}`,
    )
    return { failures, lines }
  } finally {
    await Promise.allSettled(starting)
    await Promise.all(procs.filter((p) => p !== undefined).map((p) => p.kill()))
    forget()
    await sw.close()
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
  }
}

interface Checks {
  failures: string[]
  lines: string[]
  clientOps: RecordedOp[]
  finalOps: RecordedOp[]
  /** Each host's last final-read attempt. */
  finals: RecordedOp[]
  isolated: number
  /** The voter set as the isolated host reported it just before the cut. */
  votersAtCut: string[]
  /** When the cut was in place (after `ip link set down` returned). */
  cut: number
  /** When the heal began (before `ip link set up`). */
  healStart: number
  t0: number
}

const show = (op: RecordedOp, t0: number) =>
  `h${op.host} ${op.kind} ${JSON.stringify(op.value)} ${op.outcome}${op.index !== undefined ? ` @${op.index}` : ''} [+${op.invoke - t0}, ${op.complete === undefined ? '∞' : `+${op.complete - t0}`}]${op.error ? ` (${op.error})` : ''}`

/** Every check of a run; failures and report lines are appended to `c`. */
function analyze(c: Checks): void {
  checkHistory(c)
  checkIndices(c)
  checkFinalReads(c)
  checkMajorityResumed(c)
  checkIsolatedSilent(c)
  noteFailedWritesSeen(c)
}

/**
 * Not a check, a note: failed writes whose value some read returned, by error (such a write took
 * effect: fine for CommitUnknownError, a violation for OfflineError, which checkHistory reports).
 */
function noteFailedWritesSeen(c: Checks): void {
  const seen = new Set<string>()
  for (const o of [...c.clientOps, ...c.finalOps])
    if (o.kind === 'read' && o.outcome === 'ok' && o.value) seen.add(o.value)
  const failed = c.clientOps.filter((o) => o.kind === 'write' && o.outcome !== 'ok')
  const took = failed.filter((o) => seen.has(o.value!))
  c.lines.push(
    `failed or unfinished writes: ${failed.length}; read later (so they took effect): ${took.length ? summarizeErrors(took) : 'none'}`,
  )
}

/** The merged history, checked for linearizability as a register; on failure, pairwise witnesses. */
function checkHistory(c: Checks): void {
  const ops = [...c.clientOps, ...c.finalOps]
  const ids = new Map<string, number>()
  const id = (v: string) => {
    const known = ids.get(v)
    if (known !== undefined) return known
    ids.set(v, ids.size)
    return ids.size - 1
  }
  const history: Operation<RegisterInput, number | null>[] = []
  for (const op of ops) {
    if (op.kind === 'write') {
      const input: RegisterInput = { kind: 'write', value: id(op.value!) }
      if (op.outcome === 'ok')
        history.push({ client: op.host, input, call: op.invoke, return: op.complete!, output: null })
      // OfflineError: certainly not applied, so not in the history.
      else if (certainlyNotApplied(op)) continue
      // Failed otherwise or still in flight: it may take effect at any point after its call, or never.
      else history.push({ client: op.host, input, call: op.invoke })
    } else if (op.outcome === 'ok') {
      const output = op.value === null || op.value === undefined ? null : id(op.value)
      history.push({
        client: op.host,
        input: { kind: 'read' },
        call: op.invoke,
        return: op.complete!,
        output,
      })
    }
  }
  // Each witness below proves the history is not linearizable by itself (it names operations whose
  // real-time order no register allows); they are cheap, so they come first. Only without one is the
  // full search run, whose cost on a history that is not linearizable can grow steeply (every
  // alternative order is tried before it answers), hence its step budget.
  const witnesses = explain(ops, c.t0)
  if (witnesses.length) {
    c.lines.push(`linearizability: false (witnessed) over ${history.length} operations`)
    c.failures.push(
      `the history is not linearizable (register, ${history.length} operations); witnesses:\n    ${witnesses.join('\n    ')}`,
    )
    return
  }
  const started = performance.now()
  const verdict = checkLinearizable(registerModel, history, { maxSteps: MAX_STEPS })
  c.lines.push(
    `linearizability: ${verdict.linearizable} over ${history.length} operations in ${Math.round(performance.now() - started)} ms`,
  )
  if (verdict.linearizable === 'unknown')
    c.failures.push(
      `linearizability check inconclusive: ${MAX_STEPS} search steps over ${history.length} operations found no linearization (no simple witness either: see the history file)`,
    )
  else if (verdict.linearizable === false)
    c.failures.push(
      `the history is not linearizable (register, ${history.length} operations), with no simple pairwise witness: see the history file`,
    )
}

/** The SDK's OfflineError means the command certainly did not take effect. */
function certainlyNotApplied(op: RecordedOp): boolean {
  return op.kind === 'write' && op.outcome === 'failed' && op.error?.startsWith('OFFLINE:') === true
}

/** Simple witnesses of non-linearizability: reads of values never written, from the future, or overwritten. */
function explain(ops: RecordedOp[], t0: number): string[] {
  const out: string[] = []
  const writes = new Map<string, RecordedOp>()
  for (const op of ops) if (op.kind === 'write') writes.set(op.value!, op)
  const acked = ops.filter((o) => o.kind === 'write' && o.outcome === 'ok')
  for (const r of ops) {
    if (r.kind !== 'read' || r.outcome !== 'ok') continue
    const w = r.value == null ? undefined : writes.get(r.value)
    if (r.value != null && w === undefined) {
      out.push(`read of a value never written: ${show(r, t0)}`)
      continue
    }
    if (w !== undefined && certainlyNotApplied(w)) {
      out.push(
        `read of a value whose write failed with OfflineError ("certainly did not take effect"): ${show(r, t0)} ← ${show(w, t0)}`,
      )
      continue
    }
    if (w !== undefined && w.invoke > r.complete!) {
      out.push(`read of a value written after it returned: ${show(r, t0)} ← ${show(w, t0)}`)
      continue
    }
    // A write acknowledged before the read began, and begun after the read value's write had returned
    // (or any acknowledged write, for a read of null), overwrote the value: the read is stale.
    const newer = acked.find(
      (w2) =>
        w2 !== w &&
        w2.complete! < r.invoke &&
        (w === undefined || (w.outcome === 'ok' && w.complete! < w2.invoke)),
    )
    if (newer)
      out.push(
        `stale read: ${show(r, t0)} returned ${w ? show(w, t0) : 'null'}, overwritten by ${show(newer, t0)}`,
      )
  }
  if (out.length > 12) return [...out.slice(0, 12), `… and ${out.length - 12} more`]
  return out
}

/** One committed entry per log index: two different writes acknowledged at one index is a fork. */
function checkIndices(c: Checks): void {
  const byIndex = new Map<number, RecordedOp[]>()
  for (const op of c.clientOps) {
    if (op.kind !== 'write' || op.outcome !== 'ok') continue
    const list = byIndex.get(op.index!)
    if (list) list.push(op)
    else byIndex.set(op.index!, [op])
  }
  // Indices follow real time: a write begun after another was acknowledged lands at a higher index
  // (committed entries are never removed, and new ones go after them).
  const acked = c.clientOps.filter((o) => o.kind === 'write' && o.outcome === 'ok')
  const byComplete = [...acked].sort((a, b) => a.complete! - b.complete!)
  const backwards: string[] = []
  let j = 0
  let highest: RecordedOp | undefined
  for (const w of [...acked].sort((a, b) => a.invoke - b.invoke)) {
    while (j < byComplete.length && byComplete[j]!.complete! < w.invoke) {
      const done = byComplete[j++]!
      if (highest === undefined || done.index! > highest.index!) highest = done
    }
    if (highest !== undefined && w.index! <= highest.index!)
      backwards.push(`${show(w, c.t0)} after ${show(highest, c.t0)}`)
  }
  if (backwards.length)
    c.failures.push(
      `${backwards.length} acknowledged write(s) at an index not above that of a write acknowledged before they began (the log went backwards: history discarded), e.g. ${backwards.slice(0, 5).join('; ')}`,
    )
  const forks = [...byIndex].filter(([, l]) => l.length > 1)
  if (forks.length)
    c.failures.push(
      `${forks.length} log index(es) acknowledged for two or more different writes (forked logs): ${forks
        .slice(0, 8)
        .map(([i, l]) => `@${i}: ${l.map((o) => show(o, c.t0)).join(' / ')}`)
        .join('; ')}`,
    )

  // The lost-write view: the final value's write, and acknowledged writes committed after it.
  const finalValue = c.finals.find((f) => f.outcome === 'ok')?.value
  const winner = c.clientOps.find((o) => o.kind === 'write' && o.value === finalValue)
  if (winner?.outcome === 'ok') {
    const later = [...byIndex].filter(([i]) => i > winner.index!).flatMap(([, l]) => l)
    if (later.length)
      c.failures.push(
        `${later.length} acknowledged write(s) committed after the final value's write (${show(winner, c.t0)}) are lost, e.g. ${later
          .slice(0, 5)
          .map((o) => show(o, c.t0))
          .join('; ')}`,
      )
  }
  c.lines.push(
    `final value ${JSON.stringify(finalValue)}, written by ${winner ? show(winner, c.t0) : 'nobody'}`,
  )
}

function checkFinalReads(c: Checks): void {
  const bad = c.finals.filter((f) => f.outcome !== 'ok')
  if (bad.length)
    c.failures.push(
      `final strong reads failed on host(s) ${bad.map((f) => `${f.host} (${f.error})`).join(', ')}`,
    )
  const values = new Set(c.finals.filter((f) => f.outcome === 'ok').map((f) => f.value))
  if (values.size > 1)
    c.failures.push(
      `final strong reads differ: ${c.finals.map((f) => `h${f.host}=${JSON.stringify(f.value)} @${f.index}`).join(', ')}`,
    )
  c.lines.push(
    `final reads: ${c.finals.map((f) => `h${f.host}=${JSON.stringify(f.value)} @${f.index} after ${c.finalOps.filter((o) => o.host === f.host).length} attempt(s)`).join(', ')}`,
  )
}

/** Each connected host acknowledges a write begun after the cut within RESUME_BOUND_MS of it. */
function checkMajorityResumed(c: Checks): void {
  const latencies: string[] = []
  for (let h = 1; h <= HOSTS; h++) {
    if (h === c.isolated) continue
    const first = c.clientOps.find(
      (o) =>
        o.host === h &&
        o.kind === 'write' &&
        o.outcome === 'ok' &&
        o.invoke >= c.cut &&
        o.complete! < c.healStart,
    )
    const after = first ? first.complete! - c.cut : undefined
    latencies.push(`h${h} ${after ?? 'never'}${after === undefined ? '' : ' ms'}`)
    if (after === undefined || after > RESUME_BOUND_MS)
      c.failures.push(
        `connected host ${h} acknowledged no write within ${RESUME_BOUND_MS} ms of the cut (first: ${first ? `${after} ms after it` : 'none before the heal'}); its calls during the cut: ${summarizeErrors(c.clientOps.filter((o) => o.host === h && o.invoke >= c.cut && o.invoke < c.healStart))}`,
      )
  }
  c.lines.push(`first write acknowledged after the cut: ${latencies.join(', ')}`)
}

/** The cut-off old leader cannot reach a majority: it acknowledges nothing new until the heal. */
function checkIsolatedSilent(c: Checks): void {
  const mine = c.clientOps.filter(
    (o) => o.host === c.isolated && o.outcome === 'ok' && o.complete! < c.healStart,
  )
  const newWrites = mine.filter((o) => o.kind === 'write' && o.invoke > c.cut)
  if (newWrites.length)
    c.failures.push(
      `the isolated old leader (host ${c.isolated}; voters [${c.votersAtCut.join(',')}] just before the cut) acknowledged ${newWrites.length} write(s) begun after the cut, before the heal: ${newWrites
        .slice(0, 5)
        .map((o) => show(o, c.t0))
        .join('; ')}`,
    )
  const late = mine.filter((o) => o.complete! > c.cut + ISOLATED_BOUND_MS)
  if (late.length)
    c.failures.push(
      `the isolated old leader (host ${c.isolated}; voters [${c.votersAtCut.join(',')}] just before the cut) completed ${late.length} write(s)/strong read(s) more than ${ISOLATED_BOUND_MS} ms after the cut, before the heal: ${late
        .slice(0, 5)
        .map((o) => show(o, c.t0))
        .join('; ')}`,
    )
  c.lines.push(
    `isolated host ${c.isolated}, calls overlapping the cut: ${summarizeErrors(c.clientOps.filter((o) => o.host === c.isolated && o.invoke < c.healStart && (o.complete === undefined || o.complete >= c.cut)))}`,
  )
}

function summarizeErrors(ops: RecordedOp[]): string {
  const counts = new Map<string, number>()
  for (const o of ops) {
    const key = `${o.kind} ${o.outcome}${o.error ? ` ${o.error.replace(/\d+/g, 'N')}` : ''}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return [...counts].map(([k, n]) => `${n}× ${k}`).join('; ') || 'no calls'
}

function describeCounts(ops: RecordedOp[], t0: number): string[] {
  const out: string[] = []
  for (let h = 1; h <= HOSTS; h++) {
    const mine = ops.filter((o) => o.host === h)
    const firstAck = mine.find((o) => o.kind === 'write' && o.outcome === 'ok')
    const n = (kind: string, outcome: string) =>
      mine.filter((o) => o.kind === kind && o.outcome === outcome).length
    out.push(
      `host ${h}: first write acknowledged ${firstAck ? `at +${firstAck.complete! - t0} ms @${firstAck.index}` : 'never'}; writes ${n('write', 'ok')} ok / ${n('write', 'failed')} failed / ${n('write', 'pending')} pending, reads ${n('read', 'ok')} ok / ${n('read', 'failed')} failed / ${n('read', 'pending')} pending`,
    )
  }
  return out
}

function describeStatuses(statuses: Status[], hostOf: (peer: string | undefined) => number): string {
  const peers = statuses.map((s) => s.peerId)
  const clusterLabel = (id: string | undefined) => {
    if (id === undefined) return 'none'
    const founder = peers.findIndex((p) => id.includes(p))
    return founder >= 0 ? `h${founder + 1}:${id.slice(-6)}` : id.slice(-10)
  }
  return statuses
    .map(
      (s) =>
        `h${s.host}: ${s.role} term ${s.term} leader ${s.leader ? `h${hostOf(s.leader)}` : 'none'} cluster ${clusterLabel(s.clusterId)} applied ${s.applied} voters [${s.voters.map((v) => `h${hostOf(v)}`).join(',')}] bonds ${s.bonds} value ${JSON.stringify(s.value)}`,
    )
    .join('; ')
}
