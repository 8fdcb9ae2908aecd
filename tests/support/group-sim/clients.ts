/**
 * The simulated group's clients: on every member, from the moment its worker starts, they write and
 * read strongly at random, and every call goes into a History for the linearizability checker. At the
 * end, `checkOutcome` holds the final state against what the clients were told.
 */

import { History } from '../linearizability.ts'
import { checkListInOrder } from '../list-order.ts'
import type { Prng, Simulation } from '../sim-network.ts'
import type { ListInput, ListOutput, ListResult } from './list-machine.ts'
import type { ListWorker, SimMember } from './members.ts'

export interface ClientOptions {
  /** Pause between two calls of one client (ms of simulated time). */
  thinkMs: readonly [number, number]
  /** Share of writes among the calls. */
  writeRatio: number
  /** Clients calling through each member at once (default 1). */
  perMember?: number
}

export interface OpRecord {
  client: string
  input: ListInput
  callAt: number
  returnAt?: number
  outcome: 'pending' | 'ok' | 'fail' | 'unknown'
  output?: ListOutput
  error?: string
}

export interface SimClientsInit {
  readonly sim: Simulation
  readonly prng: Prng
  readonly options: Partial<ClientOptions> | undefined
  /** Mixes an event into the run's hash. */
  mix(text: string): void
  /** Something a scenario checks it reached (a write refused with BUSY). */
  observe(what: string): void
}

export class SimClients {
  readonly history = new History<ListInput, ListOutput>()
  readonly ops: OpRecord[] = []
  /** Values whose write was acknowledged / certainly failed / of unknown outcome. */
  readonly acked = new Set<number>()
  readonly failed = new Set<number>()
  readonly unknown = new Set<number>()
  readonly #init: SimClientsInit
  #nextValue = 0
  #running = true

  constructor(init: SimClientsInit) {
    this.#init = init
  }

  get #now(): number {
    return this.#init.sim.now
  }

  stop(): void {
    this.#running = false
  }

  /** Whether any client call is still waiting for its outcome. */
  busy(): boolean {
    return this.ops.some((o) => o.outcome === 'pending')
  }

  /** Calls through `worker` until the clients stop or this incarnation of `m` ends. */
  async run(m: SimMember, incarnation: number, worker: ListWorker): Promise<void> {
    const prng = this.#init.prng
    const think = this.#init.options?.thinkMs ?? [1, 30]
    const writeRatio = this.#init.options?.writeRatio ?? 0.6
    while (this.#running && m.incarnation === incarnation && !worker.halted && !worker.closed) {
      await this.sleep(prng.between(think[0], think[1]))
      if (!this.#running || m.incarnation !== incarnation || worker.halted) return
      if (prng.chance(writeRatio)) await this.write(m, worker)
      else await this.read(m, worker)
    }
  }

  /** One write through `worker`, recorded in the history. True when acknowledged. */
  async write(m: SimMember, worker: ListWorker): Promise<boolean> {
    const value = ++this.#nextValue
    const input: ListInput = { kind: 'write', value }
    const { id, rec } = this.#invoke(m.id, input)
    const outcome = await Promise.race([
      worker.execute([{ v: value }]).then(
        () => ({ ok: true as const }),
        (err: Error) => ({ ok: false as const, err }),
      ),
      m.crashed.then(() => undefined),
    ])
    rec.returnAt = this.#now
    if (outcome === undefined) {
      rec.outcome = 'unknown'
      rec.error = 'crashed'
      this.history.unknown(id)
      this.unknown.add(value)
    } else if (outcome.ok) {
      rec.outcome = 'ok'
      rec.output = null
      this.history.ok(id, null)
      this.acked.add(value)
    } else if (['OFFLINE', 'GROUP_BUSY'].includes((outcome.err as { code?: string }).code ?? '')) {
      // Both promise that nothing was appended: the write must never take effect.
      if ((outcome.err as { code?: string }).code === 'GROUP_BUSY') this.#init.observe('busy')
      rec.outcome = 'fail'
      rec.error = outcome.err.message
      this.history.fail(id)
      this.failed.add(value)
    } else {
      rec.outcome = 'unknown'
      rec.error = `${(outcome.err as { code?: string }).code}: ${outcome.err.message}`
      this.history.unknown(id)
      this.unknown.add(value)
    }
    this.#init.mix(`w${m.id}${value}${rec.outcome}`)
    return rec.outcome === 'ok'
  }

  /** One strong read through `worker`, recorded in the history; its result when it succeeded. */
  async read(m: SimMember, worker: ListWorker): Promise<ListResult | undefined> {
    const { id, rec } = this.#invoke(m.id, { kind: 'read' })
    const outcome = await Promise.race([
      worker.query('value', 'strong').then(
        (r) => ({ ok: true as const, result: r.result }),
        (err: Error) => ({ ok: false as const, err }),
      ),
      m.crashed.then(() => undefined),
    ])
    rec.returnAt = this.#now
    // A read has no effect: a failed one is left out.
    if (outcome === undefined || !outcome.ok) {
      rec.outcome = 'fail'
      rec.error = outcome === undefined ? 'crashed' : outcome.err.message
      this.history.fail(id)
      this.#init.mix(`r${m.id}fail`)
      return undefined
    }
    rec.outcome = 'ok'
    rec.output = outcome.result
    this.history.ok(id, outcome.result)
    this.#init.mix(`r${m.id}${outcome.result[0]}:${outcome.result[1]}`)
    return outcome.result
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#init.sim.after(ms, resolve))
  }

  #invoke(client: string, input: ListInput): { id: number; rec: OpRecord } {
    const id = this.history.invoke(client, input)
    const rec: OpRecord = { client, input, callAt: this.#now, outcome: 'pending' }
    this.ops.push(rec)
    return { id, rec }
  }

  /**
   * Checks the history and the acknowledged writes against `final`, the values applied in order;
   * values held by `keptBy` (members halted with their data) do not count as lost. Returns problems.
   */
  checkOutcome(
    final: readonly number[],
    options: { linearizable?: boolean; keptBy?: SimMember[] } = {},
  ): string[] {
    const problems: string[] = []
    const seen = new Set<number>()
    for (const v of final) {
      if (seen.has(v)) problems.push(`value ${v} was applied twice`)
      seen.add(v)
      if (this.failed.has(v))
        problems.push(`value ${v} was applied though its write failed (OfflineError or GroupBusyError)`)
      if (!this.acked.has(v) && !this.unknown.has(v) && !this.failed.has(v) && !this.#pendingWrite(v))
        problems.push(`value ${v} was applied but never written`)
    }
    const kept = new Set<number>()
    for (const m of options.keptBy ?? []) for (const v of m.machine?.values ?? []) kept.add(v)
    const lost = [...this.acked].filter((v) => !seen.has(v) && !kept.has(v))
    if (lost.length > 0) {
      problems.push(
        `acknowledged writes lost: ${lost.slice(0, 20).join(', ')}${lost.length > 20 ? ', …' : ''}`,
      )
    }
    if (options.linearizable !== false) {
      // In the order every member applied (checked as they applied): exact, and linear in the history.
      const broken = checkListInOrder(this.history.operations(), final)
      if (broken !== undefined) problems.push(`history not linearizable: ${broken}`)
    }
    return problems
  }

  #pendingWrite(v: number): boolean {
    return this.ops.some((o) => o.input.kind === 'write' && o.input.value === v)
  }
}
