import { afterEach, describe, expect, it } from 'vitest'
import {
  CloseCode,
  type ConsensusOptions,
  cborOf,
  type Group,
  GroupBusyError,
  GroupKey,
  type LogStore,
  MemoryLogStore,
  type Network,
} from '../../platform/node/index.ts'
import { BondMsg, initiateBond, MAX_SEND_BACKLOG } from '../../src/groups/bond.ts'
import { Req } from '../../src/groups/worker/host.ts'
import { concatBytes } from '../../src/primitives/bytes.ts'
import type { Link } from '../../src/transport/link.ts'
import { Nodes } from '../support/nodes.ts'
import { intercept } from '../support/stores.ts'
import { secs, within } from '../support/time.ts'
import { Counter, type CounterCommand, fastConsensus } from './support.ts'

/** The refusal code of an answer (`[code, reason, limit?]`); undefined when it was accepted. */
const refusalOf = ([ok, body]: [boolean, unknown]) => (ok ? undefined : (body as unknown[])[0])
/** A refusal: BUSY past the limits, or NOT_LEADER if leadership moved (neither appended anything). */
const refused = (answer: [boolean, unknown]) => ['BUSY', 'NOT_LEADER'].includes(refusalOf(answer) as string)
const busy = (answer: [boolean, unknown]) => refusalOf(answer) === 'BUSY'

const T = secs(15)
const SECRET = 'limits'

describe('groups: per-member limits on forwarded commands and strong reads', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  /** A leader and two followers, all voters (commits and reads need a round trip). */
  async function pair(
    consensus: ConsensusOptions = {},
    leaderStorage?: LogStore,
  ): Promise<{
    nets: Network[]
    leader: Group<Counter>
    follower: Group<Counter>
  }> {
    const nets = await nodes.star(3)
    await within(T, Promise.all(nets.map((n) => n.discovery.when.peers(2))))
    const key = GroupKey.fromSecret(SECRET)
    // Slow elections: the floods load two cores (shared with other test runs), and a leader change
    // would muddle the counts.
    const timing = { bootstrapDelayMs: fastConsensus.bootstrapDelayMs, electionTimeoutMs: 1500 }
    const options = { key, consensus: { ...timing, ...consensus } }
    const leader = await nets[0]!.groups.join({
      ...options,
      stateMachine: new Counter(),
      storage: leaderStorage,
    })
    await within(T, leader.when.isLeader(), 'leader')
    const followers = await Promise.all(
      nets.slice(1).map((n) => n.groups.join({ ...options, stateMachine: new Counter() })),
    )
    const follower = followers[0]!
    await within(T, Promise.all(followers.map((f) => f.when.leaderIs(nets[0]!.peerId))))
    await within(T, follower.when.online(), 'follower online')
    await within(T, leader.when.voters(3), 'followers promoted')
    return { nets, leader, follower }
  }

  /**
   * A store whose writes wait while it is held: the leader appends but applies nothing, so whatever
   * it accepts stays pending there, however the forwards interleave with its Ready loop. Hold it only
   * briefly: the leader sends nothing meanwhile, heartbeats included.
   */
  function holdableStore(): { store: LogStore; hold(): void; release(): void } {
    const inner = new MemoryLogStore()
    let gate: PromiseWithResolvers<void> | undefined
    const store = intercept(inner, (name) =>
      name === 'write'
        ? async (...args: Parameters<LogStore['write']>) => {
            while (gate) await gate.promise
            return inner.write(...args)
          }
        : undefined,
    )
    return {
      store,
      hold: () => {
        gate ??= Promise.withResolvers<void>()
      },
      release: () => {
        const held = gate
        gate = undefined
        held?.resolve()
      },
    }
  }

  /** A hand-made bond to the leader (holding the secret) that speaks raw frames. */
  async function rawBond(leaderNet: Network, groupId: Group<Counter>['id']) {
    const outsider = await nodes.create({ bootstrap: leaderNet.addresses })
    await within(T, leaderNet.discovery.when.peers(3), 'the leader knows the outsider')
    const link: Link = await outsider.context.openLink(
      leaderNet.peerId,
      leaderNet.context.protocol('groups/1'),
    )
    await initiateBond(
      link,
      {
        networkId: leaderNet.networkId,
        groupId,
        secret: GroupKey.fromSecret(SECRET).secret,
        localId: outsider.peerId,
        observer: true,
      },
      AbortSignal.timeout(T),
    )
    const waiting = new Map<number, (r: [boolean, unknown]) => void>()
    // While paused, nothing is read: the leader's frames wait for credit on its side.
    let paused: PromiseWithResolvers<void> | undefined
    // Answers keep-alives and routes responses; everything else the leader sends is ignored.
    void (async () => {
      try {
        while (true) {
          await paused?.promise
          const frame = (await link.recv()) as [number, unknown]
          if (frame[0] === BondMsg.Ping) await link.send([BondMsg.Pong, null])
          if (frame[0] !== BondMsg.Response) continue
          const [id, ok, body] = frame[1] as [number, boolean, unknown]
          waiting.get(id)?.([ok, body])
          waiting.delete(id)
        }
      } catch {}
    })()
    let nextId = 1
    return {
      link,
      /** Stops reading what the leader sends, until `resume`. */
      pause(): void {
        paused ??= Promise.withResolvers()
      },
      resume(): void {
        paused?.resolve()
        paused = undefined
      },
      /** Sends a request without waiting for earlier answers. */
      request(kind: number, body: unknown): Promise<[boolean, unknown]> {
        const id = nextId++
        const { promise, resolve } = Promise.withResolvers<[boolean, unknown]>()
        waiting.set(id, resolve)
        link.send([BondMsg.Request, [id, kind, body]]).catch(() => {})
        return promise
      },
    }
  }

  const encode = (c: CounterCommand) => concatBytes(new Uint8Array([0]), cborOf<CounterCommand>().encode(c))

  it('a flood of forwards from one bond gets BUSY past the limit; another member keeps committing', async () => {
    const limit = 64
    const disk = holdableStore()
    // Elections slower still: the leader sends no heartbeat while its disk is held.
    const { nets, leader, follower } = await pair(
      { maxForwardedCommands: limit, electionTimeoutMs: 4000 },
      disk.store,
    )
    const raw = await rawBond(nets[0]!, leader.id)
    const term = leader.status.term
    const flood = 2000
    const forwards = () => Array.from({ length: flood }, () => raw.request(Req.Forward, [encode({ inc: 1 })]))
    // 1. With the leader's disk held, nothing it accepts is applied: exactly `limit` forwards are
    //    accepted and the rest refused with BUSY, whatever the timing.
    disk.hold()
    const held = await within(T, Promise.all(forwards()), 'every forward answered while the disk is held')
    disk.release()
    const busyHeld = held.filter(busy)
    expect(held.filter(refused).length + held.filter(([ok]) => ok).length).toBe(flood)
    if (leader.status.term === term) {
      expect(held.filter(([ok]) => ok).length).toBe(limit)
      expect(busyHeld.length).toBe(flood - limit)
    }
    // 2. Another flood while the honest follower's writes commit one after another, promptly.
    const replies = forwards()
    const latencies: number[] = []
    const honest = (async () => {
      for (let i = 0; i < 20; i++) {
        const start = performance.now()
        await follower.execute({ inc: 1000 })
        latencies.push(performance.now() - start)
      }
    })()
    const answers = [...held, ...(await within(T, Promise.all(replies), 'every forward answered'))]
    await within(T, honest, 'honest writes')
    const accepted = answers.filter(([ok]) => ok).length
    // Nothing but acceptance or a refusal: no forward was dropped unanswered or failed otherwise.
    expect(accepted + answers.filter(refused).length).toBe(2 * flood)
    expect(accepted).toBeGreaterThanOrEqual(limit)
    expect(Math.max(...latencies)).toBeLessThan(secs(2))
    // Every acknowledged forward commits, and so does every honest write.
    const last = Math.max(...answers.filter(([ok]) => ok).map(([, body]) => (body as number[])[1]!))
    await within(T, leader.when.applied().reaches(last))
    await within(T, follower.when.applied().reaches(last))
    await within(T, follower.when.applied().reaches(leader.applied))
    const value = (await follower.query('value', 'strong')).result
    // An accepted forward is only assigned an index: a leader change (not expected here) could replace it.
    if (leader.status.term === term) expect(value).toBe(accepted + 20 * 1000)
    else expect(value - 20 * 1000).toBeLessThanOrEqual(accepted)
    // Once the backlog committed, the same bond is served again.
    const [ok] = await within(T, raw.request(Req.Forward, [encode({ inc: 1 })]))
    expect(ok).toBe(true)
  })

  it('the byte limit refuses large forwards once that many bytes are pending', async () => {
    const { nets, leader } = await pair({ maxForwardedBytes: 64 * 1024 })
    const raw = await rawBond(nets[0]!, leader.id)
    const big = (n: number) => [
      concatBytes(new Uint8Array([0]), cborOf<unknown>().encode({ inc: 0, pad: 'x'.repeat(n) })),
    ]
    const answers = await within(
      T,
      Promise.all(Array.from({ length: 200 }, () => raw.request(Req.Forward, big(16 * 1024)))),
    )
    expect(answers.filter(busy).length).toBeGreaterThan(0)
    expect(answers.filter(([ok]) => ok).length + answers.filter(refused).length).toBe(answers.length)
  })

  it('a flood of snapshot requests from one bond puts one marker in the log, not one each', async () => {
    const { nets, leader } = await pair()
    const raw = await rawBond(nets[0]!, leader.id)
    const before = leader.status.lastIndex
    const answers = await within(
      T,
      Promise.all(Array.from({ length: 50 }, () => raw.request(Req.RequestSnapshot, null))),
      'every request answered',
    )
    expect(answers.filter(([ok]) => ok)).toHaveLength(1)
    expect(answers.filter((a) => refusalOf(a) === 'TOO_SOON')).toHaveLength(49)
    const at = await leader.execute({ inc: 1 })
    // The marker and this command: nothing else was appended for the flood.
    expect(at - before).toBeLessThanOrEqual(2)
  })

  it('a member that asks for catch-up faster than it reads gets BUSY past its share; others still catch up', async () => {
    const { nets, leader } = await pair()
    // About 6 MB of log: each entries answer holds about 1 MiB.
    let last = 0
    const pad = 'x'.repeat(200 * 1024)
    for (let i = 0; i < 30; i++) last = await leader.execute({ inc: 1, pad } as CounterCommand)
    const raw = await rawBond(nets[0]!, leader.id)
    const clusterId = leader.status.clusterId
    raw.pause()
    const fetches = Array.from({ length: 200 }, () => raw.request(Req.FetchEntries, [1, last, clusterId]))
    // The leader handles a bond's requests in order: once this forward applies, it has taken each
    // fetch in (served it, or refused it with BUSY), and the answers wait for the outsider to read.
    const marker = raw.request(Req.Forward, [encode({ inc: 0 })])
    await within(T, leader.when.applied().reaches(last + 1), 'the forward after the flood applies')
    expect(leader.stats.catchUpRefused).toBeGreaterThanOrEqual(200 - 16)
    raw.resume()
    expect((await within(T, marker))[0]).toBe(true)
    const answers = await within(T, Promise.all(fetches), 'every fetch answered')
    const served = answers.filter(([ok]) => ok).length
    expect(served).toBeGreaterThan(0)
    expect(served).toBeLessThanOrEqual(16)
    expect(served + answers.filter(busy).length).toBe(answers.length)
    // A member joining now catches up on the same log.
    const late = await nodes.create({ bootstrap: nets[0]!.addresses })
    const g = await late.groups.join({
      key: GroupKey.fromSecret(SECRET),
      stateMachine: new Counter(),
      consensus: { bootstrapDelayMs: fastConsensus.bootstrapDelayMs, electionTimeoutMs: 1500 },
    })
    await within(T, g.when.applied().reaches(last), 'the late member catches up')
    expect(g.stateMachine.value).toBe(30)
  })

  it('a member that keeps asking but never reads loses its bond once 4096 frames wait for it for 2 s', async () => {
    const { nets, leader, follower } = await pair()
    const raw = await rawBond(nets[0]!, leader.id)
    raw.pause()
    // Requests of a kind the leader does not serve: each is answered at once with a small refusal.
    const flood = 2 * MAX_SEND_BACKLOG
    for (let i = 0; i < flood; i++) void raw.request(99, null)
    expect((await within(T, raw.link.closed)).code).toBe(CloseCode.GroupTimeout)
    // The group carries on.
    expect(await within(T, follower.execute({ inc: 1 }))).toBeGreaterThan(0)
  })

  it('20 000 strong reads at once from a follower close no bond: each reads or is refused BUSY', async () => {
    const { nets, leader, follower } = await pair()
    const results = await within(
      T,
      Promise.allSettled(Array.from({ length: 20_000 }, () => follower.query('value', 'strong'))),
      'every read settles',
    )
    const failures = results
      .filter((r) => r.status === 'rejected')
      .map((r) => (r as PromiseRejectedResult).reason)
    expect(failures.filter((err) => !(err instanceof GroupBusyError))).toEqual([])
    expect(results.length - failures.length).toBeGreaterThanOrEqual(4096)
    expect(leader.bonds.some((b) => b.peer === nets[1]!.peerId)).toBe(true)
  })

  it('a flood of strong reads from one bond gets BUSY past the limit; others still read', async () => {
    const { nets, leader, follower } = await pair({ maxForwardedReads: 8 })
    const raw = await rawBond(nets[0]!, leader.id)
    const replies = Array.from({ length: 1000 }, () => raw.request(Req.ReadIndex, null))
    const honest = Promise.all(Array.from({ length: 4 }, () => follower.query('value', 'strong')))
    const answers = await within(T, Promise.all(replies), 'every read answered')
    await within(T, honest, 'honest reads')
    expect(answers.filter(busy).length).toBeGreaterThan(0)
    expect(answers.filter(([ok]) => ok).length + answers.filter(refused).length).toBe(answers.length)
  })

  it("over the limit, a follower's execute() and query() fail with GroupBusyError (code GROUP_BUSY)", async () => {
    const { leader, follower } = await pair({ maxForwardedCommands: 4, maxForwardedReads: 2 })
    const writes = await within(
      T,
      Promise.allSettled(Array.from({ length: 300 }, () => follower.execute({ inc: 1 }))),
      'writes settled',
    )
    const rejected = writes.filter((w) => w.status === 'rejected').map((w) => w.reason)
    expect(rejected.length).toBeGreaterThan(0)
    for (const err of rejected) {
      expect(err).toBeInstanceOf(GroupBusyError)
      expect(err).toMatchObject({ code: 'GROUP_BUSY', value: [{ inc: 1 }] })
    }
    const applied = writes.length - rejected.length
    await within(T, leader.when.applied().reaches(follower.applied))
    expect((await follower.query('value', 'strong')).result).toBe(applied)
    const reads = await within(
      T,
      Promise.allSettled(Array.from({ length: 300 }, () => follower.query('value', 'strong'))),
      'reads settled',
    )
    for (const r of reads) {
      if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'GROUP_BUSY' })
    }
  })

  it('honest pipelined load from a follower never sees BUSY with the defaults', async () => {
    const { leader, follower } = await pair()
    const term = leader.status.term
    const writes = await within(
      T,
      Promise.allSettled(Array.from({ length: 200 }, () => follower.execute({ inc: 1 }))),
      'writes settled',
    )
    const reads = await within(
      T,
      Promise.allSettled(Array.from({ length: 200 }, () => follower.query('value', 'strong'))),
      'reads settled',
    )
    const failures = [...writes, ...reads]
      .filter((r) => r.status === 'rejected')
      .map((r) => (r as PromiseRejectedResult).reason)
    expect(failures.filter((err) => err instanceof GroupBusyError)).toEqual([])
    // Without a leader change (elections are slow here) nothing fails at all.
    if (leader.status.term === term) {
      expect(failures).toEqual([])
      expect((await follower.query('value', 'strong')).result).toBe(200)
    }
  })
})
