import type { Uint8ArrayList } from 'uint8arraylist'
import { concatBytes } from '../primitives/bytes.ts'

/**
 * Splits a byte stream into `varint(length) ‖ body` frames, as libp2p's LengthPrefixedDecoder does,
 * without its per-message cost: that one reads the length prefix byte by byte through a
 * Uint8ArrayList and ends every message by catching the RangeError thrown at the end of its buffer
 * (an Error with a captured stack, tens of microseconds in a browser, on every datum's path).
 *
 * Here a message that holds whole frames is cut into views of itself; only a frame split across
 * messages is buffered, and joined once, when its last byte has arrived.
 *
 * Errors keep libp2p's names: `InvalidMessageLengthError` for a length prefix over `maxDataLength`
 * (or malformed), `InvalidParametersError` for more than `maxBufferSize` bytes buffered.
 */
export class FrameDecoder {
  #maxDataLength: number
  #maxBufferSize: number
  /** Bytes of an unfinished frame, in arrival order. */
  #pending: Uint8Array[] = []
  #pendingBytes = 0
  /** Bytes the unfinished frame needs in all (prefix included); 0 while its prefix is incomplete. */
  #need = 0

  constructor(init: { maxDataLength: number; maxBufferSize: number }) {
    this.#maxDataLength = init.maxDataLength
    this.#maxBufferSize = init.maxBufferSize
  }

  /** Changes the limits for the bytes still to come (a protocol past its handshake takes larger frames). */
  setLimits(init: { maxDataLength: number; maxBufferSize: number }): void {
    this.#maxDataLength = init.maxDataLength
    this.#maxBufferSize = init.maxBufferSize
  }

  /** The frame bodies completed by `data` (empty frames are skipped). */
  *decode(data: Uint8Array | Uint8ArrayList): Generator<Uint8Array> {
    const bytes = data instanceof Uint8Array ? data : data.subarray()
    if (this.#pendingBytes === 0) {
      yield* this.#scan(bytes)
      return
    }
    this.#pending.push(bytes)
    this.#pendingBytes += bytes.length
    if (this.#pendingBytes > this.#maxBufferSize) {
      throw named('InvalidParametersError', `buffer over ${this.#maxBufferSize} bytes`)
    }
    if (this.#need > this.#pendingBytes) return
    const joined = this.#pending.length === 1 ? this.#pending[0]! : concatBytes(...this.#pending)
    this.#pending = []
    this.#pendingBytes = 0
    this.#need = 0
    yield* this.#scan(joined)
  }

  *#scan(buf: Uint8Array): Generator<Uint8Array> {
    const end = buf.length
    let off = 0
    while (off < end) {
      // The length prefix: an unsigned LEB128 varint.
      let length = 0
      let shift = 1
      let p = off
      let complete = false
      while (p < end) {
        const b = buf[p++]!
        length += (b & 0x7f) * shift
        if (b < 0x80) {
          complete = true
          break
        }
        shift *= 128
        if (p - off >= 8) throw named('InvalidMessageLengthError', 'length prefix too long')
      }
      if (length > this.#maxDataLength) throw named('InvalidMessageLengthError', 'Invalid message length')
      if (!complete) break
      const frameEnd = p + length
      if (frameEnd > end) {
        this.#need = frameEnd - off
        break
      }
      if (length > 0) yield buf.subarray(p, frameEnd)
      off = frameEnd
    }
    if (off < end) {
      const rest = buf.subarray(off)
      if (rest.length > this.#maxBufferSize) {
        throw named('InvalidParametersError', `buffer over ${this.#maxBufferSize} bytes`)
      }
      this.#pending = [rest]
      this.#pendingBytes = rest.length
    }
  }
}

function named(name: string, message: string): Error {
  const err = new Error(message)
  err.name = name
  return err
}
