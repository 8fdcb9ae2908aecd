import type { Emitter } from '../../src/primitives/events.ts'

/** Anything that emits events the SDK's way: `on` returns the unsubscribe function. */
export interface Emits<E> {
  on<K extends keyof E>(event: K, listener: (payload: E[K]) => void): () => void
}

/** Resolves with the first event `event` whose payload satisfies `match`. */
export function nextEvent<E extends { [P in keyof E]: unknown }, K extends keyof E>(
  emitter: Emitter<E>,
  event: K,
  match?: (payload: E[K]) => boolean,
): Promise<E[K]>
/** The same for handles that forward their events (producers, consumers): name the event map. */
export function nextEvent<E, K extends keyof E>(
  emitter: Emits<E>,
  event: K,
  match?: (payload: E[K]) => boolean,
): Promise<E[K]>
export function nextEvent<E, K extends keyof E>(
  emitter: Emits<E>,
  event: K,
  match: (payload: E[K]) => boolean = () => true,
): Promise<E[K]> {
  return new Promise((resolve) => {
    const off = emitter.on(event, (payload) => {
      if (!match(payload)) return
      off()
      resolve(payload)
    })
  })
}

/** Records every payload of `event` until `stop()` is called. */
export function record<E extends { [P in keyof E]: unknown }, K extends keyof E>(
  emitter: Emitter<E>,
  event: K,
): { items: E[K][]; stop: () => void } {
  const items: E[K][] = []
  const stop = emitter.on(event, (p) => items.push(p))
  return { items, stop }
}
