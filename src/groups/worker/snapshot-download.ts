import type { AbortOptions } from '../../primitives/abort.ts'
import { DecodeError } from '../../primitives/errors.ts'
import { Fifo } from '../../primitives/fifo.ts'
import type { Timers } from '../../primitives/time.ts'
import { Watch } from '../../primitives/watch.ts'

/** Bytes fetched per request. */
export const SNAPSHOT_CHUNK = 256 * 1024

/**
 * One snapshot's bytes, fetched in chunks from every member that offers it, all at once: each source
 * takes the next chunk nobody has fetched yet, so a fast member serves more of them than a slow one.
 *
 * Gotchas: a source stops at its first failed chunk (the chunk goes back for the others) or once it is
 * no longer bonded. When every source has stopped with chunks left, the download is incomplete; the
 * bytes are not checked here (the caller compares the hash the members agreed on).
 */
export class SnapshotDownload {
  readonly data: Uint8Array
  readonly #fetchChunk: (peer: string, offset: number) => Promise<unknown>
  readonly #bonded: (peer: string) => boolean
  readonly #chunks = new Fifo<number>()
  readonly #total: number
  readonly #sources = new Set<string>()
  #received = 0
  #running = 0
  /** Bumped whenever a chunk arrives or a source stops. */
  readonly #progress = new Watch(0)

  constructor(
    size: number,
    fetchChunk: (peer: string, offset: number) => Promise<unknown>,
    bonded: (peer: string) => boolean,
  ) {
    this.data = new Uint8Array(size)
    this.#fetchChunk = fetchChunk
    this.#bonded = bonded
    for (let off = 0; off < size; off += SNAPSHOT_CHUNK) this.#chunks.push(off)
    this.#total = this.#chunks.length
  }

  /** Fetches chunks from `peer` too, from now on (once per peer). */
  addSource(peer: string): void {
    if (this.#sources.has(peer)) return
    this.#sources.add(peer)
    void this.#fetchFrom(peer)
  }

  /** Resolves once every chunk arrived (true) or every source stopped short (false). */
  async complete(options: AbortOptions = {}): Promise<boolean> {
    await this.#progress.until(() => this.#received === this.#total || this.#running === 0, options)
    return this.#received === this.#total
  }

  async #fetchFrom(peer: string): Promise<void> {
    this.#running++
    try {
      while (this.#chunks.length > 0 && this.#bonded(peer)) {
        const off = this.#chunks.shift()!
        try {
          const part = await this.#fetchChunk(peer, off)
          if (!(part instanceof Uint8Array) || off + part.length > this.data.length) {
            throw new DecodeError('bad chunk')
          }
          this.data.set(part, off)
          this.#received++
          this.#progress.set(this.#progress.value + 1)
        } catch {
          this.#chunks.push(off)
          return
        }
      }
    } finally {
      this.#running--
      this.#progress.set(this.#progress.value + 1)
    }
  }
}

/** Most extra calls {@link hedged} makes for one request. */
export const MAX_HEDGES = 3

/**
 * Calls `call`, and again each time the calls so far have not settled after `hedgeMs`, then twice
 * that, then four times (at most {@link MAX_HEDGES} extra calls); resolves with the first success,
 * rejects when every call made failed. A chunk request or its answer lost on a bond that stays up
 * would otherwise hold the whole install for the request's timeout (sized for a 256 KiB chunk on a
 * slow link), long after the network healed. One hedge was not enough: a short cut that swallowed the
 * answer and then, a partition later, the hedge held an install for the whole timeout. The doubling
 * bounds what a merely slow link pays to a few chunks more.
 */
export function hedged<T>(call: () => Promise<T>, hedgeMs: number, timers: Timers): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let pending = 0
    let hedges = 0
    let settled = false
    let cancelHedge = () => {}
    const run = () => {
      pending++
      call().then(
        (value) => {
          if (settled) return
          settled = true
          cancelHedge()
          resolve(value)
        },
        (err: unknown) => {
          if (settled || --pending > 0) return
          settled = true
          cancelHedge()
          reject(err)
        },
      )
    }
    const armHedge = (delayMs: number) => {
      cancelHedge = timers.setTimeout(() => {
        if (settled) return
        hedges++
        run()
        if (hedges < MAX_HEDGES) armHedge(2 * delayMs)
      }, delayMs)
    }
    run()
    armHedge(hedgeMs)
  })
}
