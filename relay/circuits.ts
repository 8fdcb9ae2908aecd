/**
 * What the relay measures and caps on relayed connections ("circuits") beyond what libp2p's
 * circuit-relay-v2 server does itself: how many are open, how many bytes they carried, a cap on
 * circuits open at once, and a cap on relayed bytes per second summed over all of them.
 *
 * How it works: the server relays a circuit by piping the source peer's HOP stream into the
 * destination peer's STOP stream. `CircuitMeter.attach` wraps the server's `handleConnect` (to see
 * the HOP stream once it is piped) and `stopHop` (to see the STOP stream), and counts every byte the
 * relay reads from either. The circuit cap is enforced through the connection gater's
 * `denyOutboundRelayedConnection`, which the server consults before it opens a circuit; a circuit it
 * let through counts against the cap from then on, while its STOP stream is still being opened, so
 * requests arriving together cannot all pass before the first is open. The rate
 * cap is a token bucket (one second of burst) charged by every byte the server forwards: what it
 * cannot pay for waits in a per-stream queue and goes out at the rate, the server's pipe is held
 * meanwhile (its `send` answers false until the queue empties and the meter fires 'drain'), and
 * every relayed stream is paused (`stream.pause()`, so the muxers stop granting window and the
 * senders stall). Nothing is dropped, and nothing passes beyond the budget.
 *
 * Gotchas: the wrapped methods are the server's (`@libp2p/circuit-relay-v2` 4.x); if a later release
 * renames them, `attach` reports `false` and only byte counts and the rate cap go missing, the
 * libp2p-enforced caps still hold.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { ConnectionGater, Stream } from '@libp2p/interface'

/** One `handleConnect` call: whether the gater admitted it, and the STOP stream it opened. */
interface CircuitCall {
  admitted: boolean
  destination?: Stream
}

interface RelayServerLike {
  handleConnect?: (args: { stream: { unwrap(): unknown } }, options: unknown) => Promise<void>
  stopHop?: (args: unknown, options: unknown) => Promise<Stream | undefined>
}

export interface CircuitMeterOptions {
  /** Circuits open at once; 0 = no cap. */
  maxCircuits: number
  /** Relayed bytes per second over all circuits; 0 = no cap. */
  maxBytesPerSecond: number
  now?: () => number
}

export class CircuitMeter {
  /** Circuits opened since start (a STOP stream accepted by its destination). */
  opened = 0
  /** Circuits refused because `maxCircuits` were open. */
  refused = 0
  /** Bytes the relay read from relayed streams, both directions. */
  bytes = 0
  /** Times the rate cap paused relayed traffic. */
  throttled = 0
  readonly #options: CircuitMeterOptions
  readonly #destinations = new Set<Stream>()
  readonly #streams = new Set<Stream>()
  /** Bytes the bucket could not pay for yet, per stream, with the stream's own send. */
  readonly #queues = new Map<Stream, { send: Stream['send']; chunks: Uint8Array[] }>()
  readonly #now: () => number
  /** The `handleConnect` call the code running now belongs to (the gater is consulted inside it). */
  readonly #call = new AsyncLocalStorage<CircuitCall>()
  /** Circuits admitted by the gater and not open (or failed) yet: they hold a slot of the cap. */
  #admitted = 0
  #tokens: number
  #refilledAt: number
  /** Set while throttling: relayed streams are paused and queues flush at the rate. */
  #flushTimer: ReturnType<typeof setTimeout> | undefined

  constructor(options: CircuitMeterOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
    this.#tokens = options.maxBytesPerSecond
    this.#refilledAt = this.#now()
  }

  /** Circuits open now. */
  get active(): number {
    for (const s of this.#destinations) if (s.status !== 'open') this.#destinations.delete(s)
    return this.#destinations.size
  }

  /** The gater methods that enforce `maxCircuits`. */
  gater(): Pick<ConnectionGater, 'denyOutboundRelayedConnection'> {
    return {
      denyOutboundRelayedConnection: () => {
        const max = this.#options.maxCircuits
        if (max > 0 && this.active + this.#admitted >= max) {
          this.refused++
          return true
        }
        const call = this.#call.getStore()
        if (call !== undefined && !call.admitted) {
          call.admitted = true
          this.#admitted++
        }
        return false
      },
    }
  }

  /** Starts measuring the circuits of `server` (the `circuitRelayServer` service); false if it cannot. */
  attach(server: unknown): boolean {
    const relay = server as RelayServerLike
    const handleConnect = relay.handleConnect?.bind(relay)
    const stopHop = relay.stopHop?.bind(relay)
    if (!handleConnect || !stopHop) return false
    // Which circuit a STOP stream (and a gater call) belongs to: the handleConnect call it is in.
    relay.stopHop = async (args, options) => {
      const destination = await stopHop(args, options)
      const current = this.#call.getStore()
      if (destination && current) current.destination = destination
      return destination
    }
    relay.handleConnect = (args, options) => {
      const current: CircuitCall = { admitted: false }
      return this.#call.run(current, async () => {
        try {
          await handleConnect(args, options)
          // Only now, with the server's pipe reading both streams, may another reader listen: a
          // 'message' listener added earlier would take bytes the pipe then never sees.
          if (current.destination?.status !== 'open') return
          this.opened++
          this.#destinations.add(current.destination)
          this.#track(current.destination)
          this.#track(args.stream.unwrap() as Stream)
        } finally {
          // (after the add: the slot passes from admitted to active with no gap)
          if (current.admitted) this.#admitted--
        }
      })
    }
    return true
  }

  stop(): void {
    clearTimeout(this.#flushTimer)
    this.#flushTimer = undefined
    this.#queues.clear()
    this.#streams.clear()
    this.#destinations.clear()
  }

  #track(stream: Stream): void {
    if (this.#streams.has(stream)) return
    this.#streams.add(stream)
    stream.addEventListener('message', (evt) => {
      this.bytes += evt.data.byteLength
    })
    stream.addEventListener('close', () => {
      this.#streams.delete(stream)
      this.#destinations.delete(stream)
      this.#queues.delete(stream)
    })
    if (this.#options.maxBytesPerSecond <= 0) return
    // The server's pipe forwards with `if (!send(chunk)) await 'drain'`. What the bucket cannot
    // pay for now waits in this stream's queue, the pipe is told false, and `#flush` sends the rest
    // at the rate and then fires 'drain'.
    const send = stream.send.bind(stream)
    stream.send = (chunk) => {
      const data = chunk instanceof Uint8Array ? chunk : chunk.subarray()
      let queue = this.#queues.get(stream)
      if (!queue) {
        this.#refill()
        const now = Math.min(data.byteLength, Math.max(0, Math.floor(this.#tokens)))
        this.#tokens -= now
        if (now === data.byteLength) return send(data)
        if (now > 0) send(data.subarray(0, now))
        queue = { send, chunks: [] }
        this.#queues.set(stream, queue)
        queue.chunks.push(data.subarray(now))
        this.#throttle()
      } else {
        queue.chunks.push(data)
      }
      return false
    }
    if (this.#flushTimer) pause(stream)
  }

  #refill(): void {
    const now = this.#now()
    const rate = this.#options.maxBytesPerSecond
    // At most one second of burst.
    this.#tokens = Math.min(rate, this.#tokens + ((now - this.#refilledAt) / 1000) * rate)
    this.#refilledAt = now
  }

  /** The bucket is empty: stop reading relayed streams (the senders stall) and flush at the rate. */
  #throttle(): void {
    if (this.#flushTimer) return
    this.throttled++
    for (const s of this.#streams) pause(s)
    this.#scheduleFlush()
  }

  #scheduleFlush(): void {
    const rate = this.#options.maxBytesPerSecond
    // Wake when a slice worth sending has accrued.
    const slice = Math.min(FLUSH_SLICE, rate)
    const waitMs = Math.max(1, Math.ceil(((slice - this.#tokens) / rate) * 1000))
    this.#flushTimer = setTimeout(() => this.#flush(), waitMs)
  }

  #flush(): void {
    this.#refill()
    // Round robin over the waiting streams, a slice at a time, while the bucket pays.
    let progressed = true
    while (this.#tokens >= 1 && this.#queues.size > 0 && progressed) {
      progressed = false
      for (const [stream, queue] of this.#queues) {
        const head = queue.chunks[0]
        if (!head) continue
        const n = Math.min(head.byteLength, FLUSH_SLICE, Math.floor(this.#tokens))
        if (n <= 0) break
        if (stream.writeStatus === 'writable') queue.send(head.subarray(0, n))
        this.#tokens -= n
        progressed = true
        if (n === head.byteLength) queue.chunks.shift()
        else queue.chunks[0] = head.subarray(n)
        if (queue.chunks.length === 0) {
          this.#queues.delete(stream)
          if (stream.writeStatus === 'writable') stream.dispatchEvent(new Event('drain'))
        }
      }
    }
    if (this.#queues.size > 0) {
      this.#scheduleFlush()
      return
    }
    this.#flushTimer = undefined
    for (const s of this.#streams) {
      try {
        s.resume()
      } catch {
        // closed meanwhile
      }
    }
  }
}

/** Bytes sent per stream per turn while flushing. */
const FLUSH_SLICE = 16 * 1024

function pause(stream: Stream): void {
  try {
    stream.pause()
  } catch {
    // closing or closed: nothing to hold back
  }
}
