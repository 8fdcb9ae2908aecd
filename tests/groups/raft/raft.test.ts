/**
 * Scenarios on the Raft core at the message level: a synchronous bench executes each node's Readies
 * (persist, then send, then apply) and lets a test choose which messages arrive, so every rule can be
 * exercised exactly. Cluster-level behaviour over a simulated network is in cluster.test.ts.
 */
import { describe, expect, it } from 'vitest'
import {
  DecodeError,
  decodeCanonical,
  encodeCanonical,
  type HardState,
  LeaderNotReadyError,
  NotLeaderError,
  type Preference,
  type SnapshotMeta,
} from '../../../platform/node/index.ts'
import {
  type AppendMessage,
  CatchUpMismatchError,
  type Entry,
  type Message,
  parseEntry,
  parseMessage,
  RaftContractError,
  RaftNode,
  type RaftTiming,
  type ReadRequestId,
  type Ready,
  type VoteResponseMessage,
} from '../../../src/groups/raft/index.ts'
import { Prng } from '../../support/sim-network.ts'

const TIMING: RaftTiming = {
  heartbeatMs: 10,
  electionTimeoutMs: 50,
  electionJitterMs: 20,
  bootstrapDelayMs: 50,
  voterUnreachableMs: 400,
}

interface BenchNode {
  core: RaftNode | undefined
  disk: { hardState: HardState; entries: Entry[]; snapshot?: SnapshotMeta }
  applied: Entry[]
  readStates: { requestId: ReadRequestId; index: number }[]
  droppedReads: ReadRequestId[]
  readies: Ready[]
}

interface BenchOptions {
  /** Start as an established cluster with these voters (else every node is fresh). */
  voters?: string[]
  preference?: Record<string, Preference>
  /** Tell each node the others are bonded members (default true). */
  members?: boolean
  raft?: { maxEntriesPerAppend?: number; catchUpThreshold?: number; maxVoters?: number }
  /** Initial disks by node, overriding `voters`. */
  disks?: Record<string, { term: number; entries: Entry[] }>
  seed?: number
}

const config = (voters: string[], term = 1, index = 1): Entry => ({
  index,
  term,
  kind: 'config',
  config: { voters },
  clusterId: 'test',
})
const command = (index: number, term: number, text = `c${index}`): Entry => ({
  index,
  term,
  kind: 'command',
  data: new TextEncoder().encode(text),
})

/** Nodes, a clock and a message queue; nothing moves unless the test says so. */
class Bench {
  now = 0
  readonly nodes = new Map<string, BenchNode>()
  outbox: Message[] = []
  /** Every message ever sent, in order. */
  readonly sent: Message[] = []
  readonly #options: BenchOptions
  readonly #prng: Prng

  constructor(ids: string[], options: BenchOptions = {}) {
    this.#options = options
    this.#prng = new Prng(options.seed ?? 1)
    for (const id of ids) {
      const given = options.disks?.[id]
      const disk =
        given !== undefined
          ? { hardState: { term: given.term, vote: null, commit: 1 }, entries: given.entries }
          : options.voters !== undefined
            ? { hardState: { term: 1, vote: null, commit: 1 }, entries: [config(options.voters)] }
            : { hardState: { term: 0, vote: null, commit: 0 }, entries: [] }
      this.nodes.set(id, {
        core: undefined,
        disk,
        applied: [],
        readStates: [],
        droppedReads: [],
        readies: [],
      })
      this.start(id)
    }
    if (options.members !== false) for (const id of ids) this.bond(id, ids)
    this.settle()
  }

  node(id: string): BenchNode {
    return this.nodes.get(id)!
  }

  core(id: string): RaftNode {
    return this.node(id).core!
  }

  start(id: string): void {
    const node = this.node(id)
    node.core = new RaftNode({
      id,
      random: () => this.#prng.next(),
      timing: TIMING,
      preference: this.#options.preference?.[id] ?? 'normal',
      ...this.#options.raft,
      persisted: {
        hardState: { ...node.disk.hardState },
        entries: [...node.disk.entries],
        ...(node.disk.snapshot !== undefined ? { snapshot: node.disk.snapshot } : {}),
      },
      now: this.now,
    })
    node.applied = node.applied.filter((e) => e.index <= (node.disk.snapshot?.index ?? 0))
  }

  /** Crash: everything not on disk is gone, messages to it are lost. */
  crash(id: string): void {
    this.node(id).core = undefined
    this.outbox = this.outbox.filter((m) => m.to !== id)
  }

  bond(id: string, ids: string[]): void {
    const members = ids.map((m) => ({ id: m, observer: this.#options.preference?.[m] === 'observer' }))
    this.node(id).core?.setMembers(members, this.now)
  }

  /** Executes every node's Readies until none is left: persist, then send, then apply. */
  settle(): void {
    for (let busy = true; busy; ) {
      busy = false
      for (const node of this.nodes.values()) {
        const core = node.core
        if (core === undefined || !core.hasReady()) continue
        busy = true
        const rd = core.ready()
        node.readies.push(rd)
        const disk = node.disk
        if (rd.sendBeforePersist) checkSendsEarly(rd, disk)
        if (rd.snapshot !== undefined) {
          disk.snapshot = rd.snapshot
          disk.entries = []
        }
        if (rd.truncateFrom !== undefined)
          disk.entries = disk.entries.filter((e) => e.index < rd.truncateFrom!)
        disk.entries.push(...rd.entries)
        if (rd.hardState !== undefined) disk.hardState = rd.hardState
        this.outbox.push(...rd.messages)
        this.sent.push(...rd.messages)
        node.applied.push(...rd.committedEntries)
        node.readStates.push(...rd.readStates)
        node.droppedReads.push(...rd.droppedReads)
        core.advance(rd)
      }
    }
  }

  /** Delivers queued messages that pass `filter` until none is left; the others are dropped. */
  deliver(filter: (m: Message) => boolean = () => true, rounds = 1000): void {
    for (let i = 0; i < rounds && this.outbox.length > 0; i++) {
      const batch = this.outbox
      this.outbox = []
      for (const m of batch) if (filter(m)) this.nodes.get(m.to)?.core?.step(m, this.now)
      this.settle()
    }
  }

  /** Advances the clock in small steps, ticking every node and delivering what passes `filter`. */
  run(ms: number, filter: (m: Message) => boolean = () => true, step = 2): void {
    for (const end = this.now + ms; this.now < end; ) {
      this.now = Math.min(end, this.now + step)
      for (const node of this.nodes.values()) node.core?.tick(this.now)
      this.settle()
      this.deliver(filter)
    }
  }

  /** Injects a message as if a peer had sent it. */
  inject(m: Message): void {
    this.nodes.get(m.to)?.core?.step(m, this.now)
    this.settle()
  }

  leaders(): string[] {
    return [...this.nodes].filter(([, n]) => n.core?.status().role === 'leader').map(([id]) => id)
  }
}

/**
 * What makes a Ready's early send safe, checked on every Ready of every test: no message in it tells of
 * a commit beyond what the node's disk already holds, and it persists no new vote.
 */
function checkSendsEarly(rd: Ready, disk: BenchNode['disk']): void {
  const durable = disk.entries.at(-1)?.index ?? disk.snapshot?.index ?? 0
  for (const m of rd.messages) {
    if ('commit' in m && typeof m.commit === 'number' && m.commit > durable)
      throw new Error(
        `${m.type} to ${m.to} sent early tells of commit ${m.commit} past the disk's ${durable}`,
      )
  }
  if (
    rd.hardState &&
    (rd.hardState.term !== disk.hardState.term || rd.hardState.vote !== disk.hardState.vote)
  )
    throw new Error('a Ready that sends early persists a new term or vote')
}

/** Filters: messages that do not touch any of `ids`. */
const isolating =
  (...ids: string[]) =>
  (m: Message) =>
    !ids.includes(m.from) && !ids.includes(m.to)
/** Messages within one side of a partition. */
const within = (side: string[]) => (m: Message) => side.includes(m.from) === side.includes(m.to)

const propose = (bench: Bench, id: string, ...texts: string[]) => {
  const result = bench.core(id).propose(
    texts.map((t) => new TextEncoder().encode(t)),
    bench.now,
  )
  bench.settle()
  return result
}

describe('bootstrap', () => {
  it('a single fresh node bootstraps after the bootstrap delay and commits', () => {
    const bench = new Bench(['a'])
    bench.run(TIMING.bootstrapDelayMs - 5)
    expect(bench.leaders()).toEqual([])
    bench.run(20)
    expect(bench.leaders()).toEqual(['a'])
    const status = bench.core('a').status()
    expect(status.clusterId).toMatch(/^a\/1\//)
    expect(status.voters).toEqual(['a'])
    const first = bench.node('a').disk.entries[0]!
    expect(first).toMatchObject({
      index: 1,
      kind: 'config',
      config: { voters: ['a'] },
      clusterId: status.clusterId,
    })
    const result = propose(bench, 'a', 'x', 'y')
    expect(result).toEqual({ ok: true, first: 2, last: 3, term: 1 })
    expect(bench.node('a').applied.map((e) => e.index)).toEqual([1, 2, 3])
    expect(bench.node('a').disk.hardState).toMatchObject({ term: 1, vote: 'a', commit: 3 })
  })

  it('among fresh members only the smallest id bootstraps; the others join it', () => {
    const bench = new Bench(['c', 'a', 'b'])
    bench.run(400)
    expect(bench.leaders()).toEqual(['a'])
    const clusters = new Set([...bench.nodes.values()].map((n) => n.core!.status().clusterId))
    expect(clusters.size).toBe(1)
    // Nobody but `a` ever led, and the autopilot made all three voters.
    const everLed = new Set(
      [...bench.nodes]
        .filter(([, n]) => n.readies.some((r) => r.status?.role === 'leader'))
        .map(([id]) => id),
    )
    expect([...everLed]).toEqual(['a'])
    expect([...bench.core('a').status().voters].sort()).toEqual(['a', 'b', 'c'])
  })

  it('a fresh node that knows an established member never bootstraps, and joins as a learner', () => {
    const bench = new Bench(['a', 'x'], { disks: { a: { term: 1, entries: [config(['a'])] } } })
    // x hears a's hello on bonding, but every other message to x is lost for a long while.
    bench.run(1000, (m) => m.to !== 'x' || m.type === 'hello')
    expect(bench.leaders()).toEqual(['a'])
    expect(bench.core('x').status()).toMatchObject({ role: 'follower', clusterId: undefined, lastIndex: 0 })
    bench.run(200)
    expect(bench.core('x').status()).toMatchObject({ clusterId: 'test', leader: 'a', isVoter: false })
    expect(bench.core('x').status().commitIndex).toBe(bench.core('a').status().commitIndex)
  })

  it('an observer never bootstraps and never becomes a voter', () => {
    const alone = new Bench(['o'], { preference: { o: 'observer' } })
    alone.run(2000)
    expect(alone.leaders()).toEqual([])
    const bench = new Bench(['a', 'b', 'o'], { preference: { a: 'observer', o: 'observer' } })
    bench.run(1000)
    expect(bench.leaders()).toEqual(['b']) // a is smaller but an observer
    for (const id of ['a', 'o'])
      expect(bench.core(id).status()).toMatchObject({ isVoter: false, leader: 'b' })
    expect(bench.core('b').status().voters).toEqual(['b'])
  })
})

describe('elections', () => {
  it('three voters elect one leader that everyone follows', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const leaders = bench.leaders()
    expect(leaders.length).toBe(1)
    for (const id of ['a', 'b', 'c']) expect(bench.core(id).status().leader).toBe(leaders[0])
  })

  it('a lagging voter abstains, records it, and cannot back another candidate in that term', () => {
    // b and c have an entry of term 2 that a lacks: a is behind both.
    const ahead = [config(['a', 'b', 'c']), command(2, 2)]
    const bench = new Bench(['a', 'b', 'c'], {
      disks: {
        a: { term: 2, entries: [config(['a', 'b', 'c'])] },
        b: { term: 2, entries: ahead },
        c: { term: 2, entries: ahead },
      },
      members: false,
    })
    // b campaigns; only a hears it (c is cut off).
    bench.run(200, (m) => m.from !== 'c' && m.to !== 'c' && (m.from === 'b' || m.to === 'b'))
    const b = bench.core('b').status()
    expect(b.role).toBe('leader')
    const answer = bench.sent.find(
      (m): m is VoteResponseMessage =>
        m.type === 'voteResponse' && !m.preVote && m.from === 'a' && m.to === 'b',
    )!
    expect(answer.answer).toBe('abstain')
    // The abstention was on a's disk before its answer left (same Ready: persist, then send).
    const readyWithAnswer = bench.node('a').readies.find((r) => r.messages.includes(answer))!
    expect(readyWithAnswer.hardState).toMatchObject({ term: b.term, vote: 'b', abstained: true })
    // c asks a for its vote in the same term: denied, although c's log is as good as b's.
    bench.inject({
      type: 'vote',
      from: 'c',
      to: 'a',
      term: b.term,
      clusterId: 'test',
      preVote: false,
      lastIndex: 2,
      lastTerm: 2,
    })
    const toC = bench.outbox.find((m): m is VoteResponseMessage => m.type === 'voteResponse' && m.to === 'c')!
    expect(toC.answer).toBe('deny')
    // b asks again (a retransmission): the recorded abstention is repeated.
    bench.inject({
      type: 'vote',
      from: 'b',
      to: 'a',
      term: b.term,
      clusterId: 'test',
      preVote: false,
      lastIndex: 2,
      lastTerm: 2,
    })
    expect(bench.outbox.filter((m) => m.type === 'voteResponse' && m.to === 'b').at(-1)).toMatchObject({
      answer: 'abstain',
    })
    // After a restart from disk the abstention still binds.
    bench.crash('a')
    bench.start('a')
    bench.outbox = []
    bench.inject({
      type: 'vote',
      from: 'c',
      to: 'a',
      term: b.term,
      clusterId: 'test',
      preVote: false,
      lastIndex: 2,
      lastTerm: 2,
    })
    expect(bench.outbox.find((m) => m.type === 'voteResponse' && m.to === 'c')).toMatchObject({
      answer: 'deny',
    })
  })

  it('a voter whose log is ahead denies; equal logs grant', () => {
    const bench = new Bench(['a', 'b'], {
      disks: {
        a: { term: 2, entries: [config(['a', 'b']), command(2, 2)] },
        b: { term: 2, entries: [config(['a', 'b'])] },
      },
      members: false,
    })
    const ask = (lastIndex: number, lastTerm: number, term: number) => {
      bench.outbox = []
      bench.inject({
        type: 'vote',
        from: 'b',
        to: 'a',
        term,
        clusterId: 'test',
        preVote: true,
        lastIndex,
        lastTerm,
      })
      return (bench.outbox[0] as VoteResponseMessage).answer
    }
    expect(ask(1, 1, 3)).toBe('deny')
    expect(ask(2, 2, 3)).toBe('grant')
    expect(ask(3, 2, 3)).toBe('abstain')
    expect(ask(1, 3, 3)).toBe('abstain')
    expect(ask(2, 2, 2)).toBe('deny') // a pre-vote for a term that is not newer
    expect(bench.core('a').status().term).toBe(2) // pre-votes change nothing
  })

  it('two candidates in one term never both win', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const bench = new Bench(['a', 'b', 'c', 'd', 'e'], { voters: ['a', 'b', 'c', 'd', 'e'], seed })
      const prng = new Prng(seed)
      const leadersByTerm = new Map<number, Set<string>>()
      // Random delivery order and losses make contested elections.
      for (let t = 0; t < 150; t++) {
        bench.now += 2
        for (const node of bench.nodes.values()) node.core!.tick(bench.now)
        bench.settle()
        const batch = prng.shuffle(bench.outbox)
        bench.outbox = []
        for (const m of batch) if (!prng.chance(0.3)) bench.core(m.to).step(m, bench.now)
        bench.settle()
        for (const [id, node] of bench.nodes) {
          const s = node.core!.status()
          if (s.role !== 'leader') continue
          const set = leadersByTerm.get(s.term) ?? new Set()
          set.add(id)
          leadersByTerm.set(s.term, set)
        }
      }
      for (const [term, set] of leadersByTerm) expect(set.size, `seed ${seed} term ${term}`).toBe(1)
    }
  })

  it('pre-vote keeps a partitioned node from bumping terms and disrupting the leader', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const [leader] = bench.leaders()
    const outsider = ['a', 'b', 'c'].find((id) => id !== leader)!
    const term = bench.core(leader!).status().term
    bench.run(2000, isolating(outsider))
    expect(bench.core(outsider).status().term).toBe(term)
    expect(bench.sent.some((m) => m.from === outsider && m.type === 'vote' && !m.preVote)).toBe(false)
    bench.run(300)
    expect(bench.leaders()).toEqual([leader])
    expect(bench.core(leader!).status().term).toBe(term)
  })

  it('followers that hear from a leader ignore votes, even of higher terms', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const [leader] = bench.leaders()
    const follower = ['a', 'b', 'c'].find((id) => id !== leader)!
    const other = ['a', 'b', 'c'].find((id) => id !== leader && id !== follower)!
    const term = bench.core(follower).status().term
    bench.outbox = []
    const status = bench.core(follower).status()
    for (const preVote of [true, false]) {
      bench.inject({
        type: 'vote',
        from: other,
        to: follower,
        term: term + 1,
        clusterId: 'test',
        preVote,
        lastIndex: status.lastIndex + 10,
        lastTerm: term + 1,
      })
    }
    expect(bench.outbox.filter((m) => m.type === 'voteResponse')).toEqual([])
    expect(bench.core(follower).status().term).toBe(term)
  })

  it('check-quorum makes an isolated leader step down, and the majority elects another', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const [old] = bench.leaders()
    const term = bench.core(old!).status().term
    bench.run(2 * TIMING.electionTimeoutMs + 10, isolating(old!))
    expect(bench.core(old!).status().role).toBe('follower')
    bench.run(300, isolating(old!))
    const [next] = bench.leaders()
    expect(next).not.toBe(old)
    expect(bench.core(next!).status().term).toBeGreaterThan(term)
  })

  it('learners never campaign and their votes never count', () => {
    const bench = new Bench(['a', 'b', 'c', 'l'], {
      voters: ['a', 'b', 'c'],
      raft: { maxVoters: 3 },
    })
    bench.run(300)
    const [leader] = bench.leaders()
    expect(bench.core('l').status()).toMatchObject({ isVoter: false, role: 'follower' })
    // The learner alone with the leader: no quorum, no commit, and the learner never campaigns.
    const side = [leader!, 'l']
    const before = bench.core(leader!).status().commitIndex
    propose(bench, leader!, 'x')
    bench.run(500, within(side))
    expect(bench.core(leader!).status().commitIndex).toBe(before)
    expect(bench.sent.some((m) => m.from === 'l' && m.type === 'vote')).toBe(false)
    expect(bench.core(leader!).status().role).not.toBe('leader') // check-quorum: l does not count
  })

  it('a learner whose leader goes quiet forgets it and goes offline', () => {
    const bench = new Bench(['a', 'b', 'c', 'l'], {
      voters: ['a', 'b', 'c'],
      raft: { maxVoters: 3 },
    })
    bench.run(300)
    const [leader] = bench.leaders()

    expect(bench.core('l').status()).toMatchObject({ leader, online: true, isVoter: false })
    // Cut the learner off: it may not campaign, but it must stop claiming to be online.
    bench.run(300, isolating('l'))
    expect(bench.core('l').status()).toMatchObject({ leader: undefined, online: false })
    bench.run(300)
    expect(bench.core('l').status()).toMatchObject({ online: true })
  })
})

describe('replication and commitment', () => {
  it('a leader never commits an entry of an earlier term by counting replicas (Figure 8)', () => {
    // s1 led term 2 and got index 2 to s2 only; s5 led term 3 and wrote its own index 2, alone.
    const voters = ['s1', 's2', 's3', 's4', 's5']
    const base = [config(voters)]
    const bench = new Bench(voters, {
      disks: {
        s1: { term: 3, entries: [...base, command(2, 2, 'old')] },
        s2: { term: 3, entries: [...base, command(2, 2, 'old')] },
        s3: { term: 3, entries: base },
        s4: { term: 3, entries: base },
        s5: { term: 3, entries: [...base, command(2, 3, 'rival')] },
      },
      raft: { maxEntriesPerAppend: 1 },
      // s1 times out first.
      preference: { s2: 'reluctant', s3: 'reluctant', s4: 'reluctant' },
    })
    bench.crash('s5')
    // s1 wins term 4, then gets index 2 (term 2) onto s3, but its own no-op (index 3) reaches nobody:
    // only probes the follower must refuse (it lacks their prev) get through.
    const noNoop = (m: Message) =>
      m.type !== 'append' ||
      !m.entries.some((e) => e.index >= 3) ||
      (bench.nodes.get(m.to)?.core?.status().lastIndex ?? 0) < m.prevIndex
    bench.run(300, (m) => m.from !== 's4' && m.to !== 's4' && noNoop(m))
    const s1 = bench.core('s1').status()
    expect(s1.role).toBe('leader')
    expect(bench.core('s3').status().lastIndex).toBe(2)
    // A majority (s1, s2, s3) holds index 2, but it is of an old term: it must not commit.
    expect(s1.commitIndex).toBe(1)
    expect(bench.node('s1').applied.some((e) => e.index === 2)).toBe(false)
    // s1 dies; s5 returns and wins with s2, s3, s4 (its last term 3 beats their 2): index 2 is
    // overwritten, which is safe only because it was never committed.
    bench.crash('s1')
    bench.start('s5')
    bench.run(500)
    expect(bench.leaders()).toEqual(['s5'])
    for (const id of ['s2', 's3', 's4', 's5']) {
      const entry = bench.node(id).applied.find((e) => e.index === 2)
      expect(entry?.term).toBe(3)
    }
  })

  it('a follower commits only entries the AppendEntries verified', () => {
    // b holds a stale tail 2..3 of term 1; the leader of term 2 has other entries there.
    const bench = new Bench(['b'], {
      disks: { b: { term: 1, entries: [config(['a', 'b']), command(2, 1), command(3, 1)] } },
      members: false,
    })
    bench.inject({
      type: 'append',
      from: 'a',
      to: 'b',
      term: 2,
      clusterId: 'test',
      prevIndex: 1,
      prevTerm: 1,
      entries: [],
      commit: 3,
      seq: 0,
      quiet: false,
    })
    expect(bench.core('b').status().commitIndex).toBe(1)
    bench.inject({ type: 'heartbeat', from: 'a', to: 'b', term: 2, clusterId: 'test', commit: 1, seq: 0 })
    expect(bench.core('b').status().commitIndex).toBe(1)
    bench.inject({
      type: 'append',
      from: 'a',
      to: 'b',
      term: 2,
      clusterId: 'test',
      prevIndex: 1,
      prevTerm: 1,
      entries: [command(2, 2)],
      commit: 3,
      seq: 0,
      quiet: false,
    })
    expect(bench.core('b').status()).toMatchObject({ commitIndex: 2, lastIndex: 2, online: true })
    expect(bench.node('b').readies.some((r) => r.truncateFrom === 2)).toBe(true)
    expect(bench.node('b').disk.entries.map((e) => `${e.index}@${e.term}`)).toEqual(['1@1', '2@2'])
  })

  it('backs off fast over a long divergent tail and replaces it', () => {
    const voters = ['a', 'b', 'c']
    const tail = Array.from({ length: 40 }, (_, i) => command(i + 2, 2, `stale${i}`))
    const bench = new Bench(voters, {
      disks: {
        a: { term: 3, entries: [config(voters), command(2, 3)] },
        b: { term: 3, entries: [config(voters), command(2, 3)] },
        c: { term: 2, entries: [config(voters), ...tail] },
      },
      raft: { maxEntriesPerAppend: 8 },
    })
    bench.run(400)
    const [leader] = bench.leaders()
    expect(leader).not.toBe('c')
    for (let i = 0; i < 5; i++) propose(bench, leader!, `n${i}`)
    bench.run(100)
    const want = bench.node(leader!).disk.entries.map((e) => `${e.index}@${e.term}`)
    expect(bench.node('c').disk.entries.map((e) => `${e.index}@${e.term}`)).toEqual(want)
    // One probe per term boundary, not one per entry.
    const rejects = bench.sent.filter((m) => m.type === 'appendResponse' && m.from === 'c' && m.reject)
    expect(rejects.length).toBeLessThan(5)
  })

  it('tells matched followers the commit without asking for an answer, and asks again after a rejection', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const [leader] = bench.leaders()
    const followers = ['a', 'b', 'c'].filter((id) => id !== leader)
    const from = bench.sent.length
    propose(bench, leader!, 'x')
    bench.deliver()
    const sent = bench.sent.slice(from)
    const appends = sent.filter((m): m is AppendMessage => m.type === 'append')
    // One append with the entry and one commit notice per follower; only the first is answered.
    for (const f of followers) {
      const toF = appends.filter((m) => m.to === f)
      expect(toF.map((m) => [m.entries.length, m.quiet])).toEqual([
        [1, false],
        [0, true],
      ])
      expect(sent.filter((m) => m.type === 'appendResponse' && m.from === f)).toHaveLength(1)
      expect(bench.core(f).status().commitIndex).toBe(bench.core(leader!).status().commitIndex)
    }
    // A quiet notice the follower cannot match is still answered, with a rejection.
    const f = followers[0]!
    const status = bench.core(f).status()
    const before = bench.sent.length
    bench.inject({
      type: 'append',
      from: leader!,
      to: f,
      term: bench.core(leader!).status().term,
      clusterId: 'test',
      prevIndex: status.lastIndex + 5,
      prevTerm: 99,
      entries: [],
      commit: status.commitIndex,
      seq: 0,
      quiet: true,
    })
    const answers = bench.sent.slice(before).filter((m) => m.type === 'appendResponse')
    expect(answers).toMatchObject([{ from: f, reject: true }])
  })

  it('asks no answer of a commit notice to a follower whose entries are still in flight', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const [leader] = bench.leaders()
    const [fast, slow] = ['a', 'b', 'c'].filter((id) => id !== leader) as [string, string]
    const from = bench.sent.length
    propose(bench, leader!, 'x')
    // Everything to `slow` is in flight (held back, in order) while `fast` answers and the leader commits.
    const inFlight: Message[] = []
    while (bench.outbox.length > 0) {
      inFlight.push(...bench.outbox.filter((m) => m.to === slow))
      bench.outbox = bench.outbox.filter((m) => m.to !== slow)
      bench.deliver((m) => m.to !== slow, 1)
    }
    expect(bench.core(leader!).status().commitIndex).toBe(bench.core(leader!).status().lastIndex)
    expect(bench.sent.slice(from).filter((m) => m.type === 'appendResponse' && m.from === fast)).toHaveLength(
      1,
    )
    bench.outbox.push(...inFlight)
    bench.deliver()
    const sent = bench.sent.slice(from)
    const toSlow = sent.filter((m): m is AppendMessage => m.type === 'append' && m.to === slow)
    expect(toSlow.map((m) => [m.entries.length, m.quiet])).toEqual([
      [1, false],
      [0, true],
    ])
    // One answer, to the entries: the notice's would only repeat it.
    expect(sent.filter((m) => m.type === 'appendResponse' && m.from === slow)).toHaveLength(1)
    expect(bench.core(slow).status().commitIndex).toBe(bench.core(leader!).status().commitIndex)
  })

  it('pipelines many entries in bounded batches and tells followers the commit promptly', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'], raft: { maxEntriesPerAppend: 16 } })
    bench.run(300)
    const [leader] = bench.leaders()
    const texts = Array.from({ length: 500 }, (_, i) => `x${i}`)
    bench.sent.length = 0
    const result = propose(bench, leader!, ...texts)
    expect(result.ok).toBe(true)
    bench.deliver()
    const last = bench.core(leader!).status().lastIndex
    for (const id of ['a', 'b', 'c']) expect(bench.core(id).status().commitIndex).toBe(last)
    const appends = bench.sent.filter((m) => m.type === 'append')
    expect(Math.max(...appends.map((m) => (m.type === 'append' ? m.entries.length : 0)))).toBe(16)
    expect(appends.length).toBeLessThan(2 * Math.ceil(500 / 16) + 10)
  })

  it('answers a proposal on a follower with the leader to forward to', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const [leader] = bench.leaders()
    const follower = ['a', 'b', 'c'].find((id) => id !== leader)!
    const result = bench.core(follower).propose([new Uint8Array([1])], bench.now)
    expect(result.ok).toBe(false)
    if (!result.ok) {
      expect(result.error).toBeInstanceOf(NotLeaderError)
      expect(result.error.code).toBe('NOT_LEADER')
      expect(result.error.leader).toBe(leader)
    }
  })

  it('a restarted node keeps its log and vote and catches up', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const [leader] = bench.leaders()
    const follower = ['a', 'b', 'c'].find((id) => id !== leader)!
    propose(bench, leader!, 'one', 'two')
    bench.run(50)
    const before = bench.core(follower).status()
    bench.crash(follower)
    propose(bench, leader!, 'three')
    bench.run(50)
    bench.start(follower)
    expect(bench.core(follower).status()).toMatchObject({ term: before.term, lastIndex: before.lastIndex })
    bench.run(100)
    expect(bench.core(follower).status().commitIndex).toBe(bench.core(leader!).status().commitIndex)
    const texts = bench
      .node(follower)
      .applied.flatMap((e) => (e.kind === 'command' ? [new TextDecoder().decode(e.data)] : []))
    expect(texts).toEqual(['one', 'two', 'three'])
  })
})

describe("the leader's parallel disk write", () => {
  it('a leader sends its appends while it persists them; a crash before the write loses them, and no member applies them', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'], preference: { b: 'reluctant' } })
    bench.run(300)
    const [leader] = bench.leaders()
    propose(bench, leader!, 'before')
    bench.run(50)
    const core = bench.core(leader!)
    const committed = core.status().commitIndex
    expect(core.propose([new TextEncoder().encode('lost')], bench.now).ok).toBe(true)
    const rd = core.ready()
    expect(rd.sendBeforePersist).toBe(true)
    const lost = rd.entries.at(-1)!.index
    expect(lost).toBe(committed + 1)
    const toB = rd.messages.filter((m) => m.to === 'b' && m.type === 'append')
    expect(toB.some((m) => m.type === 'append' && m.entries.some((e) => e.index === lost))).toBe(true)
    // Only b receives the append, and the leader crashes before its write: the entry is on b alone.
    bench.crash(leader!)
    bench.outbox.push(...toB)
    bench.deliver()
    expect(bench.core('b').status().lastIndex).toBe(lost)
    // The leader comes back without it, and with the other follower elects a leader whose own entry
    // takes that index; b is cut off meanwhile, then rejoins and is overwritten.
    bench.start(leader!)
    bench.run(600, isolating('b'))
    bench.run(300)
    const [next] = bench.leaders()
    expect(next).not.toBe('b')
    for (const id of ['a', 'b', 'c']) {
      const at = bench.node(id).applied.find((e) => e.index === lost)
      expect(at?.term).toBeGreaterThan(rd.entries.at(-1)!.term)
      expect(
        bench
          .node(id)
          .applied.some((e) => e.kind === 'command' && new TextDecoder().decode(e.data) === 'lost'),
      ).toBe(false)
    }
  })

  it('persists first on a candidate, a follower and a lone voter, whose messages depend on the write', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const [leader] = bench.leaders()
    propose(bench, leader!, 'x')
    bench.run(50)
    for (const [id, node] of bench.nodes) {
      for (const rd of node.readies) {
        if (!rd.sendBeforePersist) continue
        // Only the leader's Readies of its own term send early, never those that won it the term.
        expect(id).toBe(leader)
        expect(rd.hardState === undefined || rd.hardState.term === bench.core(id).status().term).toBe(true)
      }
      if (id !== leader) expect(node.readies.some((rd) => rd.sendBeforePersist)).toBe(false)
    }
    expect(bench.node(leader!).readies.some((rd) => rd.sendBeforePersist)).toBe(true)
    // A lone voter commits what it appends at once: its messages (to a learner here) tell of it.
    const lone = new Bench(['a'], { disks: { a: { term: 1, entries: [config(['a'])] } } })
    lone.run(300)
    expect(lone.leaders()).toEqual(['a'])
    lone.core('a').setMembers(
      [
        { id: 'a', observer: false },
        { id: 'l', observer: true },
      ],
      lone.now,
    )
    lone.settle()
    lone.core('a').propose([new Uint8Array([1])], lone.now)
    const rd = lone.core('a').ready()
    expect(rd.entries.length).toBe(1)
    expect(rd.hardState?.commit).toBe(rd.entries[0]!.index)
    expect(rd.sendBeforePersist).toBe(false)
  })
})

describe('strong reads (ReadIndex)', () => {
  it('confirms leadership with a majority before answering, at the commit index', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const [leader] = bench.leaders()
    propose(bench, leader!, 'x')
    bench.run(20)
    const commit = bench.core(leader!).status().commitIndex
    expect(bench.core(leader!).readIndex('r1', bench.now)).toEqual({ ok: true })
    expect(bench.core(leader!).readIndex('r2', bench.now)).toEqual({ ok: true })
    bench.settle()
    expect(bench.node(leader!).readStates).toEqual([])
    // One confirmation round serves both reads.
    const round = bench.outbox.filter((m) => m.type === 'heartbeat')
    expect(round.length).toBe(2)
    bench.deliver()
    expect(bench.node(leader!).readStates).toEqual([
      { requestId: 'r1', index: commit },
      { requestId: 'r2', index: commit },
    ])
  })

  it('refuses until the new leader has committed an entry of its term', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300, (m) => m.type !== 'appendResponse')
    const [leader] = bench.leaders()
    const result = bench.core(leader!).readIndex('r', bench.now)
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.error).toBeInstanceOf(LeaderNotReadyError)
  })

  it('a deposed or partitioned leader never produces a read state', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const [old] = bench.leaders()
    expect(bench.core(old!).readIndex('stale', bench.now).ok).toBe(true)
    // Cut off, the old leader keeps believing for a while; the others elect a new leader and write.
    bench.run(400, isolating(old!))
    const [next] = bench.leaders().filter((id) => id !== old)
    expect(next).toBeDefined()
    propose(bench, next!, 'new')
    bench.run(50, isolating(old!))
    expect(bench.node(old!).readStates).toEqual([])
    expect(bench.node(old!).droppedReads).toEqual(['stale'])
    // Healing does not resurrect it.
    bench.run(100)
    expect(bench.node(old!).readStates).toEqual([])
  })

  it('answers at once on a single voter, and refuses on a follower', () => {
    const bench = new Bench(['a'])
    bench.run(100)
    expect(bench.core('a').readIndex(7, bench.now)).toEqual({ ok: true })
    bench.settle()
    expect(bench.node('a').readStates).toEqual([{ requestId: 7, index: 1 }])
    const three = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    three.run(300)
    const follower = ['a', 'b', 'c'].find((id) => !three.leaders().includes(id))!
    const result = three.core(follower).readIndex('r', three.now)
    expect(result.ok === false && result.error instanceof NotLeaderError).toBe(true)
  })
})

describe('catching up', () => {
  function laggingFollower(options: BenchOptions = {}) {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'], ...options })
    bench.run(300)
    const [leader] = bench.leaders()
    const lagging = ['a', 'b', 'c'].find((id) => id !== leader)!
    for (let i = 0; i < 30; i++) propose(bench, leader!, `e${i}`)
    bench.run(100, isolating(lagging))
    return { bench, leader: leader!, lagging }
  }

  it('asks for a snapshot when the leader compacted what the follower needs, and never campaigns meanwhile', () => {
    const { bench, leader, lagging } = laggingFollower()
    const applied = bench.core(leader).status().appliedIndex
    const meta = bench.core(leader).compact(applied)
    expect(meta.index).toBe(applied)
    bench.run(30)
    const need = bench.node(lagging).readies.find((r) => r.snapshotNeeded !== undefined)?.snapshotNeeded
    expect(need).toEqual({ index: applied, term: meta.term, leader })
    expect(bench.core(lagging).status()).toMatchObject({ catchingUp: true, online: false })
    // Even cut off from everyone for long, it does not campaign while it waits for a snapshot.
    bench.sent.length = 0
    bench.run(1000, isolating(lagging))
    expect(bench.sent.some((m) => m.from === lagging && m.type === 'vote')).toBe(false)
    // The worker installs the snapshot: the log restarts after it and replication resumes.
    expect(bench.core(lagging).restoreSnapshot(meta, bench.now)).toBe(true)
    bench.settle()
    expect(bench.node(lagging).disk.snapshot).toEqual(meta)
    expect(bench.core(lagging).restoreSnapshot(meta, bench.now)).toBe(false) // not ahead any more
    propose(bench, leader, 'after')
    bench.run(50)
    expect(bench.core(lagging).status()).toMatchObject({
      catchingUp: false,
      online: true,
      commitIndex: bench.core(leader).status().commitIndex,
    })
  })

  it('asks the worker to pull a large committed gap from peers, with the leader pausing its back-fill', () => {
    // d joins late, when the log is long: the leader's first probe shows a large committed gap.
    const all = ['a', 'b', 'c', 'd']
    const bench = new Bench(all, { voters: ['a', 'b', 'c'], members: false, raft: { catchUpThreshold: 10 } })
    for (const id of ['a', 'b', 'c']) bench.bond(id, ['a', 'b', 'c'])
    bench.run(300)
    const [leader] = bench.leaders()
    for (let i = 0; i < 30; i++) propose(bench, leader!, `e${i}`)
    bench.run(50)
    const commit = bench.core(leader!).status().commitIndex
    for (const id of all) bench.bond(id, all)
    bench.sent.length = 0
    bench.run(30)
    const request = bench.node('d').readies.find((r) => r.catchUp !== undefined)?.catchUp
    expect(request).toEqual({ from: 2, to: commit, leader }) // d holds the first config entry already
    expect(bench.core('d').status()).toMatchObject({ catchingUp: true, online: false, clusterId: 'test' })
    // The leader sends it heartbeats only.
    bench.sent.length = 0
    bench.run(50)
    expect(bench.sent.some((m) => m.type === 'append' && m.to === 'd' && m.entries.length > 0)).toBe(false)
    // The worker feeds committed entries from another peer, in order, checked against what it has.
    const peer = ['a', 'b', 'c'].find((id) => id !== leader)!
    const source = bench.node(peer).disk.entries.filter((e) => e.index <= commit)
    bench.core('d').appendCommitted(source.slice(1, 15), bench.now)
    expect(bench.core('d').status().commitIndex).toBe(15)
    expect(() => bench.core('d').appendCommitted(source.slice(20, 25), bench.now)).toThrow(RaftContractError)
    const forged = source.slice(5, 8).map((e) => ({ ...e, term: e.term + 7 }))
    expect(() => bench.core('d').appendCommitted(forged, bench.now)).toThrow(CatchUpMismatchError)
    bench.core('d').appendCommitted(source.slice(10), bench.now)
    bench.settle()
    expect(bench.core('d').status().commitIndex).toBe(commit)
    expect(bench.node('d').applied.length).toBe(commit)
    // Done: the leader resumes normal replication.
    propose(bench, leader!, 'after')
    bench.run(50)
    expect(bench.core('d').status()).toMatchObject({
      catchingUp: false,
      online: true,
      commitIndex: commit + 1,
    })
  })
})

describe('rival clusters', () => {
  const clusterEntry = (clusterId: string, voters: string[]): Entry => ({
    index: 1,
    term: 1,
    kind: 'config',
    config: { voters },
    clusterId,
  })

  it('the losing leader concedes for its cluster, and a former member tells stragglers', () => {
    const a = [clusterEntry('A', ['a', 'a2'])]
    const bench = new Bench(['a', 'a2', 'b'], {
      disks: {
        a: { term: 1, entries: a },
        a2: { term: 1, entries: a },
        b: { term: 1, entries: [clusterEntry('B', ['b'])] },
      },
      members: false,
    })
    bench.bond('a', ['a', 'a2'])
    bench.bond('a2', ['a', 'a2'])
    bench.run(300)
    expect(bench.leaders().sort()).toEqual(['a', 'b'])
    propose(bench, 'b', 'x', 'y') // B commits more: B wins
    bench.run(20)
    // The partition heals. a2's copy of a's concession is lost.
    for (const id of ['a', 'a2', 'b']) bench.bond(id, ['a', 'a2', 'b'])
    bench.run(100, (m) => !(m.type === 'concede' && m.to === 'a2'))
    const rivalOf = (id: string) =>
      bench.node(id).readies.flatMap((r) => (r.rival === undefined ? [] : [r.rival]))
    expect(rivalOf('a').at(-1)).toMatchObject({ outcome: 'rejoin', peer: 'b', theirs: { clusterId: 'B' } })
    expect(rivalOf('b').every((r) => r.outcome === 'keep')).toBe(true)
    // a2 follows a live leader: it never judged B on its own log.
    expect(rivalOf('a2')).toEqual([])
    // The worker wipes a; it rejoins B (and, caught up, becomes a voter there).
    const winner = rivalOf('a').at(-1)!.theirs
    bench.node('a').disk = { hardState: { term: 0, vote: null, commit: 0 }, entries: [] }
    bench.core('a').reset(bench.now, winner)
    bench.run(300)
    expect(bench.core('a').status()).toMatchObject({ clusterId: 'B', leader: 'b', commitIndex: 5 })
    // a2, left alone in A, campaigns; a answers for the cluster it abandoned.
    expect(rivalOf('a2').at(-1)).toMatchObject({ outcome: 'rejoin', peer: 'a', theirs: { clusterId: 'B' } })
  })

  const rivalsOf = (bench: Bench, id: string) =>
    bench.node(id).readies.flatMap((r) => (r.rival === undefined ? [] : [r.rival]))

  it('a losing leader whose cluster committed commands halts for good, keeping its log', () => {
    const a = [clusterEntry('A', ['a', 'a2'])]
    const bench = new Bench(['a', 'a2', 'b'], {
      disks: {
        a: { term: 1, entries: a },
        a2: { term: 1, entries: [...a] },
        b: { term: 1, entries: [clusterEntry('B', ['b'])] },
      },
      members: false,
    })
    bench.bond('a', ['a', 'a2'])
    bench.bond('a2', ['a', 'a2'])
    bench.run(300)
    expect(bench.leaders().sort()).toEqual(['a', 'b'])
    propose(bench, 'a', 'acknowledged')
    propose(bench, 'b', 'x', 'y', 'z')
    bench.run(50)
    expect(bench.core('a2').status().commitIndex).toBeGreaterThanOrEqual(3)
    for (const id of ['a', 'a2', 'b']) bench.bond(id, ['a', 'a2', 'b'])
    bench.run(100)
    expect(rivalsOf(bench, 'a').at(-1)).toMatchObject({ outcome: 'halt', theirs: { clusterId: 'B' } })
    // a2 believed its leader's concession and halts too (it also holds the command).
    expect(rivalsOf(bench, 'a2').at(-1)).toMatchObject({ outcome: 'halt', peer: 'a' })
    for (const id of ['a', 'a2']) {
      expect(bench.core(id).status()).toMatchObject({ halted: true, role: 'follower', clusterId: 'A' })
      const texts = bench
        .node(id)
        .disk.entries.flatMap((e) => (e.kind === 'command' ? [new TextDecoder().decode(e.data)] : []))
      expect(texts).toEqual(['acknowledged'])
    }
    // Halted nodes take no further part: no campaign, no answer, no bootstrap, no proposal.
    const sent = bench.sent.length
    bench.run(1000)
    expect(bench.sent.slice(sent).filter((m) => m.from === 'a' || m.from === 'a2')).toEqual([])
    expect(bench.core('a').propose([new Uint8Array([1])], bench.now).ok).toBe(false)
    expect(bench.core('a').nextTickAt()).toBe(Number.POSITIVE_INFINITY)
    expect(rivalsOf(bench, 'b').every((r) => r.outcome === 'keep')).toBe(true)
    expect(bench.core('b').status()).toMatchObject({ role: 'leader', halted: false })
  })

  it('a concede counts only from a fellow member and only if the winner beats our own standing', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const [leader] = bench.leaders()
    for (let i = 0; i < 40; i++) propose(bench, leader!, `w${i}`)
    bench.run(50)
    const fellow = ['a', 'b', 'c'].find((id) => id !== leader)!
    const concede = (from: string, commit: number, commands: boolean) =>
      bench.inject({
        type: 'concede',
        from,
        to: leader!,
        term: bench.core(leader!).status().term,
        clusterId: 'test',
        winner: { clusterId: 'other', commit, lastTerm: 1, lastIndex: commit, commands },
      })
    // A winner smaller than our own standing (commit 6 against 43), or one without commands.
    concede(fellow, 6, true)
    concede(fellow, 10_000, false)
    // A sender that is not a member of this cluster.
    concede('stranger', 10_000, true)
    bench.run(50)
    expect(bench.core(leader!).status()).toMatchObject({ role: 'leader', halted: false })
    expect(rivalsOf(bench, leader!)).toEqual([])
    // A fellow member's report of a winner that does beat us: the leader halts (it holds commands).
    concede(fellow, 10_000, true)
    expect(bench.core(leader!).status()).toMatchObject({ role: 'follower', halted: true })
    expect(rivalsOf(bench, leader!).at(-1)).toMatchObject({ outcome: 'halt' })
  })

  it('only a leader judges a rival: a voter leaderless for long never does', () => {
    const bench = new Bench(['a', 'b', 'c'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const [leader] = bench.leaders()
    const follower = ['a', 'b', 'c'].find((id) => id !== leader)!
    propose(bench, leader!, 'x')
    bench.run(50)
    // Cut off from its cluster for long (and never elected: it cannot win a pre-vote alone).
    bench.run(1000, isolating(follower))
    expect(bench.core(follower).status().role).not.toBe('leader')
    bench.inject({
      type: 'hello',
      from: 'r',
      to: follower,
      term: 1,
      clusterId: 'rival',
      commit: 10_000,
      lastIndex: 10_000,
      lastTerm: 1,
      commands: true,
      leader: 'r',
    })
    expect(rivalsOf(bench, follower)).toEqual([])
    expect(bench.sent.some((m) => m.type === 'concede')).toBe(false)
    expect(bench.core(follower).status().halted).toBe(false)
  })
})

describe('the Ready contract', () => {
  it('hands out one Ready at a time, and nothing when idle', () => {
    const bench = new Bench(['a'])
    bench.run(100)
    const core = bench.core('a')
    expect(core.hasReady()).toBe(false)
    core.propose([new Uint8Array([1])], bench.now)
    expect(core.hasReady()).toBe(true)
    const rd = core.ready()
    expect(rd.entries.length).toBe(1)
    expect(rd.hardState).toBeDefined()
    expect(core.hasReady()).toBe(false)
    expect(() => core.ready()).toThrow(RaftContractError)
    core.advance(rd)
    expect(core.hasReady()).toBe(false)
    expect(() => core.compact(5)).toThrow(RaftContractError)
  })

  it('produces only plain, canonically encodable messages and entries', () => {
    const bench = new Bench(['a', 'b', 'c', 'd'], { voters: ['a', 'b', 'c'] })
    bench.run(300)
    const [leader] = bench.leaders()
    propose(bench, leader!, 'x')
    bench.core(leader!).readIndex('r', bench.now)
    bench.run(100)
    const types = new Set(bench.sent.map((m) => m.type))
    expect([...types].sort()).toEqual(
      ['append', 'appendResponse', 'heartbeat', 'heartbeatResponse', 'hello', 'vote', 'voteResponse'].sort(),
    )
    for (const m of bench.sent) {
      const decoded = decodeCanonical(encodeCanonical(m))
      expect(decoded).toEqual(m)
      expect(parseMessage(decoded)).toEqual(m)
      expect(Object.values(m)).not.toContain(undefined)
    }
    const concede = { type: 'concede', from: 'a', to: 'b', term: 1, clusterId: 'x' }
    const winner = { clusterId: 'y', commit: 3, lastTerm: 1, lastIndex: 3, commands: true }
    expect(parseMessage({ ...concede, winner })).toEqual({ ...concede, winner })
  })

  it('rejects malformed messages and entries from peers with a DecodeError', () => {
    const append = {
      type: 'append',
      from: 'a',
      to: 'b',
      term: 2,
      clusterId: 'x',
      prevIndex: 1,
      prevTerm: 1,
      entries: [command(2, 2)],
      commit: 1,
      seq: 0,
      quiet: false,
    }
    expect(parseMessage(append)).toEqual(append)
    const bad: unknown[] = [
      null,
      [],
      { ...append, type: 'gossip' },
      { ...append, term: -1 },
      { ...append, term: 1.5 },
      { ...append, from: 7 },
      { ...append, entries: 'x' },
      { ...append, entries: [command(3, 2)] }, // does not follow prevIndex
      { ...append, entries: [{ index: 2, term: 2, kind: 'command', data: 'text' }] },
      { ...append, entries: [{ index: 2, term: 2, kind: 'config', config: { voters: ['a'] } }] }, // no clusterId
      { ...append, entries: [{ index: 2, term: 2, kind: 'poison' }] },
      { type: 'voteResponse', from: 'a', to: 'b', term: 1, clusterId: 'x', preVote: false, answer: 'maybe' },
      { type: 'hello', from: 'a', to: 'b', term: 1, clusterId: 'x', commit: 1, lastIndex: 1, lastTerm: 1 },
      { type: 'concede', from: 'a', to: 'b', term: 1, clusterId: 'x', winner: { clusterId: 'y' } },
    ]
    for (const value of bad) expect(() => parseMessage(value), JSON.stringify(value)).toThrow(DecodeError)
    // Stored entries narrow the same way, keeping only known fields.
    expect(parseEntry({ index: 4, term: 1, kind: 'noop', extra: 1 })).toEqual({
      index: 4,
      term: 1,
      kind: 'noop',
    })
  })
})
