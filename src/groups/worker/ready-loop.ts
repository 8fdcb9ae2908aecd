import type { RaftNode } from '../raft/raft.ts'
import type { Ready } from '../raft/types.ts'
import { Pacer, TickTimer } from './pacing.ts'
import { ReadyGate } from './ready-gate.ts'
import type { Runtime } from './runtime.ts'

/** What the loop drives: the core's Ready and tick calls, and the worker's handling of each Ready. */
export interface ReadyLoopInit {
  readonly node: Pick<RaftNode, 'hasReady' | 'ready' | 'tick' | 'nextTickAt'>
  readonly rt: Runtime
  /** Closed or halted: the loop neither runs nor ticks any more. */
  stopped(): boolean
  /** Persists, sends and applies one Ready, then advances the core past it. */
  handle(rd: Ready): Promise<void>
  /** The loop threw: the worker cannot go on. */
  fail(err: unknown): void
}

/**
 * When the worker takes Ready batches from its core: soon after something changed (`kick`), one loop
 * at a time, and on the core's own tick timer.
 *
 * Why one loop: a Ready must be handled in full (persisted, sent, applied, advanced) before the next is
 * taken, and handling waits for the disk. A kick while the loop runs starts nothing: the running loop
 * picks up every change stepped into the core meanwhile, and no second loop overtakes the first.
 *
 * Gotchas: the loop runs in a microtask, or a macrotask when microtasks alone ran too long (Pacer).
 * Calls into the core that must not happen while a Ready is being handled go through `gate`. The tick
 * timer is re-armed after every loop, at the core's next deadline (at most a second away).
 */
export class ReadyLoop {
  /** Holds back calls into the core while a Ready is being handled (see ReadyGate). */
  readonly gate = new ReadyGate()
  readonly #init: ReadyLoopInit
  readonly #pacer: Pacer
  readonly #tick: TickTimer
  #driving = false

  constructor(init: ReadyLoopInit) {
    this.#init = init
    this.#pacer = new Pacer(init.rt)
    this.#tick = new TickTimer(init.rt)
  }

  /**
   * Runs the loop soon (see Pacer). A kick while it runs needs nothing more: the loop asks the core for
   * another Ready after each one it handled, and only ends when there is none.
   */
  kick(): void {
    if (this.#init.stopped() || this.#driving) return
    this.#driving = true
    this.#pacer.schedule(() => {
      this.#drive().catch((err) => this.#init.fail(err))
    })
  }

  /** Runs the loop now, to its end; for the start, which replays the store before it returns. */
  runNow(): Promise<void> {
    this.#driving = true
    return this.#drive()
  }

  /** For a caller whose command committed: a pause when the event loop starves (see Pacer). */
  breathe(): Promise<void> | undefined {
    return this.#pacer.breathe()
  }

  /** No more ticks: the worker stopped. */
  stop(): void {
    this.#tick.disarm()
  }

  async #drive(): Promise<void> {
    const init = this.#init
    try {
      while (!init.stopped() && init.node.hasReady()) {
        this.gate.begin()
        try {
          await init.handle(init.node.ready())
        } finally {
          this.gate.end()
        }
      }
    } finally {
      this.#driving = false
      this.#armTick()
    }
  }

  /** Keeps the tick timer armed for the core's next tick (see TickTimer). */
  #armTick(): void {
    if (this.#init.stopped()) {
      this.#tick.disarm()
      return
    }
    const { node, rt } = this.#init
    const wait = Math.min(1000, Math.max(0, node.nextTickAt() - rt.now()))
    this.#tick.arm(wait, this.#onTick)
  }

  readonly #onTick = (): void => {
    if (this.#init.stopped()) return
    this.#init.node.tick(this.#init.rt.now())
    this.kick()
    if (!this.#driving) this.#armTick()
  }
}
