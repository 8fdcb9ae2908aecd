import { Fifo } from '../primitives/fifo.ts'
import type { Link } from '../transport/link.ts'
import type { ChannelRecord } from './channel.ts'
import { packBatch, varintLength } from './wire.ts'

/** Target size of one batch message: small datums are packed together up to this many bytes. */
const MAX_BATCH_BYTES = 32 * 1024
const noop = () => {}

/** One consumer's subscription: its link and its queue of encoded datums not yet written. */
export class Subscription {
  readonly record: ChannelRecord
  readonly link: Link
  readonly queue = new Fifo<Uint8Array>()
  /** A batch waits in the link for credit; nothing more is written until it goes. */
  stalled = false
  removed = false
  /** Since when this queue has been full while another consumer kept up. */
  fullSince: number | undefined
  /** Found lagging with disconnectLagging off: it no longer holds the producer back. */
  lagging = false
  /** The link's payload bytes sent before the first datum (the handshake's answer). */
  dataFrom = 0

  get queued(): number {
    return this.queue.length
  }

  /** True once the consumer has read datums, not just the handshake (as its credit grants report). */
  get hasRead(): boolean {
    return this.link.remoteConsumed > this.dataFrom
  }

  constructor(record: ChannelRecord, link: Link) {
    this.record = record
    this.link = link
  }

  /**
   * Writes the queue to the link as batch messages until the queue or the credit ends. A queue that
   * drained below half of `bufferSize` is no longer full (nor lagging); `resume` runs once a stalled
   * batch has gone out.
   */
  flush(bufferSize: number, resume: () => void): void {
    if (this.stalled || this.removed) return
    const link = this.link
    if (link.isClosed) return
    const queue = this.queue
    // Only what is queued now goes out in this call.
    let left = queue.length
    while (left > 0) {
      let size = 0
      let datumBytes = 0
      let stop = 0
      do {
        const len = queue.at(stop)!.length
        const rec = varintLength(len) + len
        if (stop > 0 && size + rec > MAX_BATCH_BYTES) break
        size += rec
        datumBytes += len
        stop++
      } while (stop < left && size < MAX_BATCH_BYTES)
      const batch = packBatch(queue, 0, stop, size)
      queue.drop(stop)
      left -= stop
      this.record.datums += stop
      this.record.bytes += datumBytes
      const written = link.sendBytes(batch)
      if (link.queuedSends > 0) {
        // Out of credit (the consumer is behind) or the transport buffer is full: resume on its grant.
        this.stalled = true
        written.then(() => {
          this.stalled = false
          resume()
        }, noop)
        break
      }
    }
    if (queue.length <= bufferSize >> 1) {
      this.fullSince = undefined
      this.lagging = false
    }
  }
}
