/**
 * A minimal typed event emitter. `on` returns an unsubscribe function so listeners are easy to release
 * when a handle closes. Listener errors are isolated: one failing listener never stops the others.
 */
export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  #listeners = new Map<keyof Events, Set<(payload: never) => void>>()

  on<K extends keyof Events>(event: K, listener: (payload: Events[K]) => void): () => void {
    let set = this.#listeners.get(event)
    if (!set) {
      set = new Set()
      this.#listeners.set(event, set)
    }
    set.add(listener as (payload: never) => void)
    return () => this.off(event, listener)
  }

  off<K extends keyof Events>(event: K, listener: (payload: Events[K]) => void): void {
    this.#listeners.get(event)?.delete(listener as (payload: never) => void)
  }

  once<K extends keyof Events>(event: K, listener: (payload: Events[K]) => void): () => void {
    const off = this.on(event, (payload) => {
      off()
      listener(payload)
    })
    return off
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const set = this.#listeners.get(event)
    if (!set) return
    for (const listener of [...set]) {
      try {
        ;(listener as (p: Events[K]) => void)(payload)
      } catch (err) {
        queueMicrotask(() => {
          throw err
        })
      }
    }
  }

  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.size ?? 0
  }

  removeAllListeners(): void {
    this.#listeners.clear()
  }
}
