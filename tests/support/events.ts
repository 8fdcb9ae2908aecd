import type { Emitter } from '../../src/primitives/events.ts'

/** Resolves with the first event `event` whose payload satisfies `match`. */
export function nextEvent<E extends { [P in keyof E]: unknown }, K extends keyof E>(
  emitter: Emitter<E>,
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
