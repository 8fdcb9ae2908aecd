import type { StreamId } from '../primitives/digest.ts'
import { MosaikError } from '../primitives/errors.ts'

/**
 * `net.streams.producer(def)` was called for a stream id this node already produces. `existing` is a
 * new handle on that producer (the same one `getOrCreateProducer(def)` would return): close it when done, like any
 * handle.
 */
export class StreamAlreadyExistsError<P = unknown> extends MosaikError {
  /** The stream id already produced. */
  readonly streamId: StreamId
  /** A new handle on the existing producer; close it when done. */
  readonly existing: P
  constructor(streamId: StreamId, existing: P) {
    super('ALREADY_EXISTS', `this node already produces stream ${streamId.short()}`)
    this.streamId = streamId
    this.existing = existing
  }
}
