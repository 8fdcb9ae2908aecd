import type { StreamMuxerFactory } from '@libp2p/interface'
import { yamux } from '@libp2p/yamux'
import { upstreamFixes } from './upstream-fixes.ts'

type YamuxInit = NonNullable<Parameters<typeof yamux>[0]>

/** yamux's StreamState.Established. */
const ESTABLISHED = 3

/** What the wrapper reads and replaces on a yamux stream (fields of YamuxStream, not public API). */
interface WindowedStream {
  state?: unknown
  recvWindow?: unknown
  recvWindowCapacity?: unknown
  sendWindowUpdate?: () => void
}

/**
 * libp2p's yamux, with window updates sent when half the receive window is used instead of after
 * every data frame.
 *
 * `@libp2p/yamux` 8 answers each data frame it receives with a WindowUpdate frame: one more
 * transport message (encrypted on its own under Noise) for every message a stream carries, so a
 * request/response over yamux costs four transport messages instead of two. Go's yamux, and the
 * spec's intent, send the update once the unused window fell below half; this wrapper does that for
 * established streams and leaves every other case (opening, closing, paused, window auto-tuning) to
 * yamux itself. The sender still has at least half a window (128 KiB at first) in hand, so
 * throughput is not bounded by it.
 *
 * Gotchas: it replaces `_newStream` on each muxer and `sendWindowUpdate` on each stream, which are
 * yamux internals. Where they are missing the muxer is left as yamux made it (correct, only chattier);
 * `upstreamFixes` counts both outcomes and tests/network/upstream-fixes.test.ts pins them.
 */
export function lazyWindowYamux(init?: YamuxInit): () => StreamMuxerFactory {
  const make = yamux(init)
  return () => {
    const inner = make()
    const wrapped: StreamMuxerFactory = Object.create(inner)
    wrapped.createStreamMuxer = (maConn) => {
      const muxer = inner.createStreamMuxer(maConn)
      const m = muxer as unknown as { _newStream?: (...args: unknown[]) => unknown }
      const newStream = m._newStream
      if (typeof newStream !== 'function') {
        upstreamFixes.yamuxStreamsKept++
        return muxer
      }
      m._newStream = (...args) => withLazyWindowUpdates(newStream.apply(muxer, args))
      return muxer
    }
    return wrapped
  }
}

function withLazyWindowUpdates<S>(stream: S): S {
  const s = stream as WindowedStream
  const eager = s.sendWindowUpdate
  if (
    typeof eager !== 'function' ||
    typeof s.recvWindow !== 'number' ||
    typeof s.recvWindowCapacity !== 'number'
  ) {
    upstreamFixes.yamuxStreamsKept++
    return stream
  }
  upstreamFixes.yamuxStreamsLazy++
  s.sendWindowUpdate = () => {
    if (s.state === ESTABLISHED && (s.recvWindowCapacity as number) * 2 >= (s.recvWindow as number)) return
    eager.call(s)
  }
  return stream
}
