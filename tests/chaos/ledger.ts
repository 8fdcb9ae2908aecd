import { decodeCanonical, encodeCanonical, type StateMachine } from '../../platform/node/index.ts'

export type LedgerCommand = { key: string; value: string }
export type LedgerQuery = { get: string }

/**
 * A key-value register per key that also keeps every command it applied, in order: the chaos test
 * compares these logs across members (every acknowledged write must be in every one, exactly once)
 * and checks reads of the keys for linearizability.
 */
export class Ledger implements StateMachine<LedgerCommand, LedgerQuery, string | null> {
  readonly signature = 'mosaik-tests/chaos-ledger/v1'
  /** Every applied command as `key=value`, in log order. */
  log: string[] = []
  #values = new Map<string, string>()

  apply(command: LedgerCommand): void {
    this.log.push(`${command.key}=${command.value}`)
    this.#values.set(command.key, command.value)
  }

  query(query: LedgerQuery): string | null {
    return this.#values.get(query.get) ?? null
  }

  snapshot(): Uint8Array {
    return encodeCanonical(this.log)
  }

  restore(snapshot: Uint8Array): void {
    this.log = snapshot.length === 0 ? [] : (decodeCanonical(snapshot) as string[])
    this.#values = new Map()
    for (const entry of this.log) {
      const i = entry.indexOf('=')
      this.#values.set(entry.slice(0, i), entry.slice(i + 1))
    }
  }
}
