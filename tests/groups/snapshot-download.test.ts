import { describe, expect, it } from 'vitest'
import {
  hedged,
  MAX_HEDGES,
  SNAPSHOT_CHUNK,
  SnapshotDownload,
} from '../../src/groups/worker/snapshot-download.ts'
import type { Timers } from '../../src/primitives/time.ts'

/** Timers a test fires by hand: `fire()` runs every timer not cancelled. */
function manualTimers() {
  const armed = new Set<() => void>()
  const delays: number[] = []
  const timers: Timers = {
    setTimeout(fn, ms) {
      armed.add(fn)
      delays.push(ms)
      return () => armed.delete(fn)
    },
  }
  return {
    timers,
    delays,
    get armed() {
      return armed.size
    },
    fire() {
      const due = [...armed]
      armed.clear()
      for (const fn of due) fn()
    },
  }
}

function deferred<T>() {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

const settle = () => new Promise<void>((r) => setImmediate(r))

describe('hedged requests', () => {
  it('a call that settles in time is made once and its timer cancelled', async () => {
    const t = manualTimers()
    let calls = 0
    const result = hedged(async () => ++calls, 100, t.timers)
    expect(await result).toBe(1)
    expect(calls).toBe(1)
    expect(t.armed).toBe(0)
  })

  it('a call still pending at the hedge is made again, and the first answer wins', async () => {
    const t = manualTimers()
    const attempts = [deferred<string>(), deferred<string>()]
    let calls = 0
    const result = hedged(() => attempts[calls++]!.promise, 100, t.timers)
    t.fire()
    expect(calls).toBe(2)
    attempts[1]!.resolve('second')
    attempts[0]!.resolve('first')
    expect(await result).toBe('second')
  })

  it('hedges again at doubling delays while nothing settles, at most MAX_HEDGES times', async () => {
    const t = manualTimers()
    const attempts = Array.from({ length: MAX_HEDGES + 1 }, () => deferred<string>())
    let calls = 0
    const result = hedged(() => attempts[calls++]!.promise, 100, t.timers)
    for (let i = 0; i < MAX_HEDGES + 2; i++) t.fire()
    // The answer of the first call and then of the first hedge were lost: a later hedge answers.
    expect(calls).toBe(MAX_HEDGES + 1)
    expect(t.delays).toEqual(Array.from({ length: MAX_HEDGES }, (_, i) => 100 * 2 ** i))
    expect(t.armed).toBe(0)
    attempts[MAX_HEDGES]!.resolve('late hedge')
    expect(await result).toBe('late hedge')
  })

  it('rejects once every call failed, with the last error', async () => {
    const t = manualTimers()
    const attempts = [deferred<string>(), deferred<string>()]
    let calls = 0
    const result = hedged(() => attempts[calls++]!.promise, 100, t.timers)
    t.fire()
    attempts[0]!.reject(new Error('lost'))
    await settle()
    attempts[1]!.reject(new Error('timed out'))
    await expect(result).rejects.toThrow('timed out')
  })

  it('a call that fails before the hedge rejects at once, without a second call', async () => {
    const t = manualTimers()
    let calls = 0
    const result = hedged(
      async () => {
        calls++
        throw new Error('refused')
      },
      100,
      t.timers,
    )
    await expect(result).rejects.toThrow('refused')
    expect(t.armed).toBe(0)
    expect(calls).toBe(1)
  })
})

describe('a snapshot downloaded in chunks from several members', () => {
  const size = Math.floor(2.5 * SNAPSHOT_CHUNK)
  const snapshot = Uint8Array.from({ length: size }, (_, i) => (i * 7 + (i >> 9)) & 0xff)
  const chunkAt = (off: number) => snapshot.subarray(off, off + SNAPSHOT_CHUNK)

  /** A download whose sources answer by `serve`; records who was asked for what. */
  function download(serve: (peer: string, off: number) => unknown, bonded = (_peer: string) => true) {
    const asked: [string, number][] = []
    const d = new SnapshotDownload(
      size,
      async (peer, off) => {
        asked.push([peer, off])
        await Promise.resolve()
        const answer = serve(peer, off)
        if (answer instanceof Error) throw answer
        return answer
      },
      bonded,
    )
    return { d, asked }
  }

  it('assembles the bytes from every source, each chunk fetched once', async () => {
    const { d, asked } = download((_peer, off) => chunkAt(off))
    d.addSource('a')
    d.addSource('b')
    expect(await d.complete()).toBe(true)
    expect(d.data).toEqual(snapshot)
    expect(asked.map(([, off]) => off).sort((x, y) => x - y)).toEqual([0, SNAPSHOT_CHUNK, 2 * SNAPSHOT_CHUNK])
    expect(new Set(asked.map(([peer]) => peer))).toEqual(new Set(['a', 'b']))
  })

  it('a chunk a source fails to serve goes to another source', async () => {
    const { d, asked } = download((peer, off) => (peer === 'a' ? new Error('gone') : chunkAt(off)))
    d.addSource('a')
    d.addSource('b')
    expect(await d.complete()).toBe(true)
    expect(d.data).toEqual(snapshot)
    expect(asked.filter(([peer]) => peer === 'a')).toHaveLength(1) // a stopped at its first failure
  })

  it('a chunk that is not bytes or runs past the end counts as a failure', async () => {
    const { d, asked } = download((peer, off) => {
      if (peer === 'long') return new Uint8Array(size + 1)
      if (peer === 'text') return 'not bytes'
      return chunkAt(off)
    })
    d.addSource('long')
    d.addSource('text')
    d.addSource('b')
    expect(await d.complete()).toBe(true)
    expect(d.data).toEqual(snapshot)
    expect(asked.filter(([peer]) => peer !== 'b')).toHaveLength(2) // each bad source asked once
  })

  it('is incomplete when every source stopped with chunks left', async () => {
    const { d } = download((_peer, off) => (off === SNAPSHOT_CHUNK ? new Error('gone') : chunkAt(off)))
    d.addSource('a')
    d.addSource('b')
    expect(await d.complete()).toBe(false)
  })

  it('asks nothing of a source that is no longer bonded, and adds each source once', async () => {
    const { d, asked } = download(
      (_peer, off) => chunkAt(off),
      (peer) => peer !== 'gone',
    )
    d.addSource('gone')
    d.addSource('a')
    d.addSource('a')
    expect(await d.complete()).toBe(true)
    expect(asked.map(([peer]) => peer)).toEqual(['a', 'a', 'a'])
  })

  it('an empty snapshot is complete at once', async () => {
    const d = new SnapshotDownload(
      0,
      async () => {
        throw new Error('never asked')
      },
      () => true,
    )
    expect(await d.complete()).toBe(true)
    expect(d.data).toHaveLength(0)
  })

  it('stops waiting when the fetch is abandoned', async () => {
    const never = deferred<Uint8Array>()
    const d = new SnapshotDownload(
      size,
      () => never.promise,
      () => true,
    )
    d.addSource('a')
    const abandon = new AbortController()
    const done = d.complete({ signal: abandon.signal })
    abandon.abort()
    await expect(done).rejects.toThrow()
  })
})
