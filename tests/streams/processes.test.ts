import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { afterEach, describe, expect, it } from 'vitest'
import { toHex } from '../../src/primitives/bytes.ts'
import { Nodes } from '../support/nodes.ts'
import { NodeProcess } from '../support/processes.ts'
import type { StreamsProcessOptions } from '../support/streams-process.ts'
import { secs, within } from '../support/time.ts'

interface Received {
  byRun: Record<string, number>
  disorder: number
}

describe('streams between OS processes over QUIC', () => {
  const nodes = new Nodes('quic')
  const procs: NodeProcess[] = []
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill()))
    await nodes.closeAll()
  })

  const start = async (options: StreamsProcessOptions) => {
    const proc = await NodeProcess.start({ ...options }, undefined, 'streams')
    procs.push(proc)
    return proc
  }

  it('consumers follow a producer process through a SIGKILL and a restart with the same identity', async () => {
    const hub = await nodes.create()
    const network = nodes.network
    const key = toHex(privateKeyToProtobuf(await generateKeyPair('Ed25519')))
    const options = { network, bootstrap: hub.addresses, privateKey: key }

    const producer = await start(options)
    const run1 = await producer.call<string>('produce', { stream: 'ticks', intervalMs: 5 })
    const consumers = await Promise.all([
      start({ network, bootstrap: hub.addresses }),
      start({ network, bootstrap: hub.addresses }),
    ])
    await Promise.all(consumers.map((c) => c.call('consume', { stream: 'ticks' })))
    await producer.call('awaitSubscribed', { stream: 'ticks', n: 2 })
    for (const c of consumers) await c.call('awaitReceived', { stream: 'ticks', run: run1, n: 50 })

    // A crash: no close frame, no departure. The restarted process has the same peer id, a new run
    // and new addresses; consumers must drop the dead connection and subscribe to the new run.
    await producer.kill()
    const restarted = await start(options)
    expect(restarted.peerId).toBe(producer.peerId)
    const run2 = await restarted.call<string>('produce', { stream: 'ticks', intervalMs: 5 })
    expect(run2).not.toBe(run1)
    const results = await within(
      secs(30),
      Promise.all(
        consumers.map((c) =>
          c.call<Received>('awaitReceived', { stream: 'ticks', run: run2, n: 50, timeoutMs: secs(25) }),
        ),
      ),
      'consumers receive from the restarted producer',
    )
    for (const r of results) {
      expect(r.disorder).toBe(0)
      expect(r.byRun[run1]).toBeGreaterThanOrEqual(50)
    }

    // A graceful stop: consumers are told (GracefulShutdown) and drop the producer.
    await restarted.terminate()
    await within(
      secs(15),
      Promise.all(
        consumers.map((c) => c.call('awaitUnsubscribed', { stream: 'ticks', timeoutMs: secs(10) })),
      ),
      'consumers drop the stopped producer',
    )
  })
})
