import type { Stream } from '@libp2p/interface'

/**
 * Waits until a raw libp2p stream whose `send()` answered false may be written again, as the raw
 * baselines' writers must, or rejects once `signal` aborts or the stream closes first.
 *
 * Why not `stream.onDrain()`: in libp2p 3 (`@libp2p/utils` 7.4) it keeps the promise of the first
 * drain and never makes a new one, so after a stream's first drain it resolves at once. A writer that
 * follows the documented `if (!stream.send(x)) await stream.onDrain()` then never waits again: over
 * QUIC, a raw baseline of 150 000 datums of 1 KiB sat in the stream's write buffer and went out in 12
 * writes, the largest 131 MB, where this wait gives 4 840 writes of 32 KiB. A baseline that buffers
 * without bound is not one an application could run; mosaik's Link keeps at most 1 MiB queued.
 */
export function drained(stream: Stream, signal?: AbortSignal): Promise<void> {
  if (!stream.writableNeedsDrain) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
      if (err) reject(err)
      else resolve()
    }
    const onDrain = () => done()
    const onClose = () => done(new Error('the stream closed before it drained'))
    const onAbort = () => done(signal?.reason as Error)
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    if (signal?.aborted) onAbort()
    else signal?.addEventListener('abort', onAbort)
  })
}
