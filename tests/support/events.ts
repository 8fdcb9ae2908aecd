import type { Discovery, DiscoveryEvents } from '../../platform/node/index.ts'
import type { Emitter } from '../../src/primitives/events.ts'

/** Anything that emits events the SDK's way: `on` returns the unsubscribe function. */
export interface Emits<E> {
  on<K extends keyof E>(event: K, listener: (payload: E[K]) => void): () => void
}

/** What the implementations take: the overloads above keep callers typed. */
interface AnyEmitter {
  // biome-ignore lint/suspicious/noExplicitAny: every emitter's `on`, whatever its event map
  on(event: any, listener: (payload: any) => void): () => void
}

/** Resolves with the first event `event` whose payload satisfies `match`. */
export function nextEvent<E extends { [P in keyof E]: unknown }, K extends keyof E>(
  emitter: Emitter<E>,
  event: K,
  match?: (payload: E[K]) => boolean,
): Promise<E[K]>
/** The same for a node's discovery (it forwards the events of an emitter it holds). */
export function nextEvent<K extends keyof DiscoveryEvents>(
  emitter: Discovery,
  event: K,
  match?: (payload: DiscoveryEvents[K]) => boolean,
): Promise<DiscoveryEvents[K]>
/** The same for handles that forward their events (producers, consumers): name the event map. */
export function nextEvent<E, K extends keyof E>(
  emitter: Emits<E>,
  event: K,
  match?: (payload: E[K]) => boolean,
): Promise<E[K]>
export function nextEvent<E, K extends keyof E>(
  emitter: AnyEmitter,
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
): { items: E[K][]; stop: () => void }
export function record<K extends keyof DiscoveryEvents>(
  emitter: Discovery,
  event: K,
): { items: DiscoveryEvents[K][]; stop: () => void }
export function record<E, K extends keyof E>(
  emitter: AnyEmitter,
  event: K,
): { items: E[K][]; stop: () => void } {
  const items: E[K][] = []
  const stop = emitter.on(event, (p) => items.push(p))
  return { items, stop }
}
