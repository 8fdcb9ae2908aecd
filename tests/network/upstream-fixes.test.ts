import { Socket } from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { upstreamFixes } from '../../src/network/upstream-fixes.ts'
import type { Link } from '../../src/transport/link.ts'
import { Nodes, type Transport } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'

/**
 * The Noise and yamux wrappers (src/network/noise.ts, yamux.ts) replace library internals. These tests
 * fail when a libp2p upgrade renamed them (the fix would silently stop applying), and check that data
 * still flows whole through both where the windows fill up, and leaves a message per socket write.
 */
describe.each<Transport>(['memory', 'tcp'])('Noise and yamux fixes over %s', (transport) => {
  const nodes = new Nodes(transport)
  afterEach(() => nodes.closeAll())

  async function pair(): Promise<{ client: Link; server: Link }> {
    const a = await nodes.create()
    const b = await nodes.create()
    const protocol = b.context.protocol('test/1')
    const accepted = new Promise<Link>((resolve) => {
      void b.context.handle(protocol, async (link) => {
        resolve(link)
        await link.closed
      })
    })
    const client = await a.context.openLink(b.addresses[0]!, protocol)
    await client.send('hello')
    const server = await within(secs(5), accepted)
    expect(await server.recv()).toBe('hello')
    return { client, server }
  }

  it('applies to every connection and stream', async () => {
    const before = { ...upstreamFixes }
    await pair()
    expect(upstreamFixes.noiseDecodersReplaced).toBeGreaterThan(before.noiseDecodersReplaced)
    expect(upstreamFixes.yamuxStreamsLazy).toBeGreaterThan(before.yamuxStreamsLazy)
    expect(upstreamFixes.noiseDecodersKept).toBe(0)
    expect(upstreamFixes.noiseEncodersJoined).toBeGreaterThan(before.noiseEncodersJoined)
    expect(upstreamFixes.noiseEncodersKept).toBe(0)
    expect(upstreamFixes.yamuxStreamsKept).toBe(0)
  })

  it('carries 8 MiB whole and in order past a reader that lags, in frames of every size', async () => {
    const { client, server } = await pair()
    // Frame sizes cross Noise's 65 535-byte message limit and yamux's window halves.
    const sizes = [1, 100, 1199, 1200, 4096, 65_519, 65_535, 65_536, 200_000]
    const frames: Uint8Array[] = []
    let total = 0
    for (let i = 0; total < 8 * 1024 * 1024; i++) {
      const f = new Uint8Array(sizes[i % sizes.length]!)
      for (let k = 0; k < f.length; k += 997) f[k] = (i + k) & 0xff
      f[f.length - 1] = i & 0xff
      frames.push(f)
      total += f.length
    }
    const writer = (async () => {
      for (const f of frames) await client.sendBytes(f)
    })()
    // The writer runs ahead of the reader (up to a full Link window, past yamux's first 256 KiB),
    // and the reader yields a macrotask now and then so the transport's buffers fill between reads.
    for (let i = 0; i < frames.length; i++) {
      // Noise decrypts messages from 1 200 bytes with node:crypto, which hands back Buffers.
      expect(new Uint8Array(await within(secs(10), server.recvBytes()))).toEqual(frames[i])
      if (i % 16 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    await within(secs(10), writer)
  })

  it.runIf(transport === 'tcp')('writes each transport message to the socket in one piece', async () => {
    const { client, server } = await pair()
    const write = vi.spyOn(Socket.prototype, 'write')
    try {
      for (let i = 0; i < 50; i++) {
        await client.send(`ping ${i}`)
        expect(await within(secs(5), server.recv())).toBe(`ping ${i}`)
      }
      // Noise's 2-byte length prefix used to leave as a write (a TCP segment) of its own.
      const sizes = write.mock.calls.map(([chunk]) => (chunk as Uint8Array).byteLength)
      expect(sizes.length).toBeGreaterThanOrEqual(50)
      expect(sizes.filter((n) => n === 2)).toEqual([])
    } finally {
      write.mockRestore()
    }
  })
})
