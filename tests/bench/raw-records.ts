/**
 * The raw libp2p side of the streams throughput baselines: the SDK's batch framing (varint-prefixed
 * records packed into 32 KiB writes) written and counted on a bare libp2p stream, with nothing of the
 * SDK's on the way. Shared by the in-process rows and the two-process ones.
 */
import { setImmediate as yieldMacrotask } from 'node:timers/promises'
import type { Stream } from '@libp2p/interface'
import { concatBytes } from '../../src/primitives/bytes.ts'
import { packBatch, varintLength } from '../../src/streams/wire.ts'
import { drained } from './drain.ts'

/** Frames `count` datums as varint-prefixed records, packed into 32 KiB writes like the SDK's batches. */
export async function rawSend(stream: Stream, datum: Uint8Array, count: number): Promise<void> {
  const per = Math.max(1, Math.floor((32 * 1024) / (datum.length + varintLength(datum.length))))
  const group = Array.from({ length: per }, () => datum)
  for (let sent = 0; sent < count; ) {
    const k = Math.min(per, count - sent)
    const chunk = packBatch(group, 0, k, k * (datum.length + varintLength(datum.length)))
    if (!stream.send(chunk)) await drained(stream)
    sent += k
    await yieldMacrotask()
  }
}

/**
 * Calls `onCount` with the records received so far each time a message of `stream` completes some:
 * the receiving half of the baseline, which walks the varints and decodes nothing.
 */
export function countRecords(stream: Stream, onCount: (received: number) => void): void {
  let received = 0
  let pending: Uint8Array = new Uint8Array(0)
  stream.addEventListener('message', (evt) => {
    const bytes = evt.data.subarray()
    pending = pending.length === 0 ? bytes : concatBytes(pending, bytes)
    let off = 0
    let records = 0
    while (off < pending.length) {
      let len = 0
      let shift = 1
      let byte = 0
      const start = off
      do {
        if (off >= pending.length) break
        byte = pending[off++]!
        len += (byte & 0x7f) * shift
        shift *= 128
      } while (byte >= 0x80)
      if (byte >= 0x80 || off + len > pending.length) {
        off = start
        break
      }
      off += len
      records++
    }
    pending = pending.subarray(off)
    if (records === 0) return
    received += records
    onCount(received)
  })
}
