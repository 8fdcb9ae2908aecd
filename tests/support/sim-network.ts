/**
 * Deterministic simulation for distributed tests: a seeded PRNG, a virtual clock with an event queue,
 * and a message network with random delays (hence reordering), drops, duplication and partitions.
 * Nothing here reads the real clock or Math.random, so a seed replays a run exactly.
 */

// ---------------------------------------------------------------------------------------------------
// PRNG

/** sfc32, seeded through splitmix32: fast, small, good enough for test schedules. */
export class Prng {
  #a: number
  #b: number
  #c: number
  #d: number

  constructor(seed: number) {
    let s = seed >>> 0
    const split = () => {
      s = (s + 0x9e3779b9) | 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      return (z ^ (z >>> 16)) >>> 0
    }
    this.#a = split()
    this.#b = split()
    this.#c = split()
    this.#d = split()
    for (let i = 0; i < 12; i++) this.next()
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0
    this.#d = (this.#d + 1) | 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) | 0
    this.#c = (this.#c << 21) | (this.#c >>> 11)
    this.#c = (this.#c + t) | 0
    return (t >>> 0) / 4294967296
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  between(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo)
  }

  chance(p: number): boolean {
    return p > 0 && this.next() < p
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list')
    return items[this.int(items.length)]!
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items]
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      ;[out[i], out[j]] = [out[j]!, out[i]!]
    }
    return out
  }

  /** An independent generator, so that one consumer's draws do not shift another's. */
  fork(): Prng {
    return new Prng(Math.floor(this.next() * 4294967296))
  }
}

// ---------------------------------------------------------------------------------------------------
// Virtual time

interface Scheduled {
  at: number
  seq: number
  run: () => void
}

/** A virtual clock and an event queue (a binary heap ordered by time, then by scheduling order). */
export class Simulation {
  readonly prng: Prng
  #now = 0
  #seq = 0
  readonly #heap: Scheduled[] = []

  constructor(seed: number) {
    this.prng = new Prng(seed)
  }

  get now(): number {
    return this.#now
  }

  at(time: number, run: () => void): void {
    this.#push({ at: Math.max(time, this.#now), seq: this.#seq++, run })
  }

  after(delay: number, run: () => void): void {
    this.at(this.#now + delay, run)
  }

  /** Runs every event due up to `time`, then moves the clock there. */
  runUntil(time: number): void {
    while (this.#heap.length > 0 && this.#heap[0]!.at <= time) this.#runNext()
    if (time > this.#now) this.#now = time
  }

  /** Runs events until `done()` holds (checked after each) or `time` is reached; returns done(). */
  runUntilTrue(done: () => boolean, time: number): boolean {
    if (done()) return true
    while (this.#heap.length > 0 && this.#heap[0]!.at <= time) {
      this.#runNext()
      if (done()) return true
    }
    if (time > this.#now) this.#now = time
    return done()
  }

  /**
   * Runs the next event if one is due by `time` and returns true; otherwise moves the clock to `time`
   * and returns false. An async driver calls it once per event, settling promises in between.
   */
  step(time: number): boolean {
    if (this.#heap.length > 0 && this.#heap[0]!.at <= time) {
      this.#runNext()
      return true
    }
    if (time > this.#now) this.#now = time
    return false
  }

  #runNext(): void {
    const event = this.#pop()!
    this.#now = event.at
    event.run()
  }

  #push(item: Scheduled): void {
    const heap = this.#heap
    heap.push(item)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(heap[i]!, heap[parent]!)) break
      ;[heap[i], heap[parent]] = [heap[parent]!, heap[i]!]
      i = parent
    }
  }

  #pop(): Scheduled | undefined {
    const heap = this.#heap
    const top = heap[0]
    const last = heap.pop()
    if (top === undefined || last === undefined || heap.length === 0) return top
    heap[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let smallest = i
      if (l < heap.length && before(heap[l]!, heap[smallest]!)) smallest = l
      if (r < heap.length && before(heap[r]!, heap[smallest]!)) smallest = r
      if (smallest === i) break
      ;[heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!]
      i = smallest
    }
    return top
  }
}

function before(a: Scheduled, b: Scheduled): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}

// ---------------------------------------------------------------------------------------------------
// Network

export interface LinkConditions {
  minDelayMs: number
  maxDelayMs: number
  dropRate: number
  duplicateRate: number
}

export const RELIABLE: LinkConditions = { minDelayMs: 1, maxDelayMs: 5, dropRate: 0, duplicateRate: 0 }

/**
 * Point-to-point messages between named endpoints. Each message gets its own random delay, so
 * messages overtake each other; a partition (or a detached endpoint) drops messages both when they are
 * sent and when they would arrive.
 */
export class SimNetwork<M> {
  conditions: LinkConditions
  readonly #sim: Simulation
  readonly #prng: Prng
  readonly #handlers = new Map<string, (message: M, from: string) => void>()
  /** Partition group per endpoint; endpoints in different groups cannot talk. Absent means group 0. */
  #groups = new Map<string, number>()
  /** Links cut in addition to partitions, as "a|b" with a < b. */
  readonly #cut = new Set<string>()
  /** Extra drop rates of messages from or to particular endpoints (a slow or lossy node). */
  readonly #lossy = new Map<string, number>()
  /** Messages a test loses on purpose, for losses no partition can make (one way, or by kind). */
  #lose: ((message: M, from: string, to: string) => boolean) | undefined
  sent = 0
  delivered = 0

  constructor(sim: Simulation, conditions: LinkConditions = RELIABLE) {
    this.#sim = sim
    this.#prng = sim.prng.fork()
    this.conditions = conditions
  }

  attach(id: string, handler: (message: M, from: string) => void): void {
    this.#handlers.set(id, handler)
  }

  detach(id: string): void {
    this.#handlers.delete(id)
  }

  send(from: string, to: string, message: M): void {
    this.sent++
    if (!this.connected(from, to)) return
    if (this.#lose?.(message, from, to)) return
    const c = this.conditions
    if (this.#prng.chance(c.dropRate)) return
    if (this.#lossy.size > 0) {
      const extra = Math.max(this.#lossy.get(from) ?? 0, this.#lossy.get(to) ?? 0)
      if (extra > 0 && this.#prng.chance(extra)) return
    }
    const copies = this.#prng.chance(c.duplicateRate) ? 2 : 1
    for (let i = 0; i < copies; i++) {
      this.#sim.after(this.#prng.between(c.minDelayMs, c.maxDelayMs), () => {
        const handler = this.#handlers.get(to)
        if (handler === undefined || !this.connected(from, to)) return
        this.delivered++
        handler(message, from)
      })
    }
  }

  connected(a: string, b: string): boolean {
    if ((this.#groups.get(a) ?? 0) !== (this.#groups.get(b) ?? 0)) return false
    return this.#cut.size === 0 || !this.#cut.has(a < b ? `${a}|${b}` : `${b}|${a}`)
  }

  /** Splits the endpoints into groups that cannot reach each other (unlisted ones form group 0). */
  partition(groups: readonly (readonly string[])[]): void {
    this.#groups = new Map()
    groups.forEach((group, i) => {
      for (const id of group) this.#groups.set(id, i + 1)
    })
  }

  /** Drops this share of the messages from or to `id`, besides `conditions.dropRate` (0 clears it). */
  setDropRate(id: string, rate: number): void {
    if (rate > 0) this.#lossy.set(id, rate)
    else this.#lossy.delete(id)
  }

  /** Loses every message sent while `lose` says so (undefined: none). */
  lose(lose: ((message: M, from: string, to: string) => boolean) | undefined): void {
    this.#lose = lose
  }

  /** Cuts the link between two endpoints (both directions). */
  cut(a: string, b: string): void {
    this.#cut.add(a < b ? `${a}|${b}` : `${b}|${a}`)
  }

  heal(): void {
    this.#groups = new Map()
    this.#cut.clear()
  }
}
