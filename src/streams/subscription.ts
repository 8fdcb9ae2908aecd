import type { Link } from '../transport/link.ts'
import type { ChannelRecord } from './channel.ts'
import { packBatch, varintLength } from './wire.ts'

/** Target size of one batch message: small datums are packed together up to this many bytes. */
const MAX_BATCH_BYTES = 32 * 1024
const EMPTY = new Uint8Array(0)
const noop = () => {}

/** One consumer's subscription: its link and its queue of encoded datums not yet written. */
export class Subscription {
  readonly record: ChannelRecord
  readonly link: Link
  queue: Uint8Array[] = []
  head = 0
  /** A batch waits in the link for credit; nothing more is written until it goes. */
  stalled = false
  removed = false
  /** Since when this queue has been full while another consumer kept up. */
  fullSince: number | undefined
  /** Found lagging with disconnectLagging off: it no longer holds the producer back. */
  lagging = false

  get queued(): number {
    return this.queue.length - this.head
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
    const start = this.head
    const end = queue.length
    let head = start
    while (head < end) {
      let size = 0
      let datumBytes = 0
      let stop = head
      do {
        const len = queue[stop]!.length
        const rec = varintLength(len) + len
        if (stop > head && size + rec > MAX_BATCH_BYTES) break
        size += rec
        datumBytes += len
        stop++
      } while (stop < end && size < MAX_BATCH_BYTES)
      const batch = packBatch(queue, head, stop, size)
      this.record.datums += stop - head
      this.record.bytes += datumBytes
      head = stop
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
    if (queue.length - head <= bufferSize >> 1) {
      this.fullSince = undefined
      this.lagging = false
    }
    if (head >= queue.length) {
      queue.length = 0
      this.head = 0
    } else {
      for (let i = start; i < head; i++) queue[i] = EMPTY
      this.head = head
      if (head > 4096 && head * 2 > queue.length) {
        queue.splice(0, head)
        this.head = 0
      }
    }
  }
}
