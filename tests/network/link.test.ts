import * as varint from 'uint8-varint'
import { afterEach, describe, expect, it } from 'vitest'
import { CloseCode, FrameTooLargeError, LinkClosedError } from '../../platform/node/index.ts'
import type { Link } from '../../src/transport/link.ts'
import { INITIAL_CREDIT, MAX_WINDOW } from '../../src/transport/link.ts'
import { Nodes, type Transport } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'

describe.each<Transport>(['memory', 'quic', 'tcp'])('Link over %s', (transport) => {
  const nodes = new Nodes(transport)
  afterEach(() => nodes.closeAll())

  /** Two nodes and a pair of connected links on a test protocol. */
  async function pair(maxFrameSize?: number): Promise<{ client: Link; server: Link }> {
    const a = await nodes.create({ maxFrameSize })
    const b = await nodes.create({ maxFrameSize })
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

  it('delivers messages in order, both ways', async () => {
    const { client, server } = await pair()
    for (let i = 0; i < 1000; i++) void client.send({ i })
    for (let i = 0; i < 1000; i++) expect(await server.recv()).toEqual({ i })
    await server.send(['done'])
    expect(await client.recv()).toEqual(['done'])
  })

  it('tells the remote why it closed', async () => {
    const { client, server } = await pair()
    await server.close(CloseCode.StreamNotAllowed, 'not for you')
    const close = await within(secs(5), client.closed)
    expect(close).toEqual({ code: CloseCode.StreamNotAllowed, reason: 'not for you', remote: true })
    await expect(client.recv()).rejects.toBeInstanceOf(LinkClosedError)
    await expect(client.send('late')).rejects.toMatchObject({ closeCode: CloseCode.StreamNotAllowed })
  })

  it('closes a link whose writer sends beyond the credit it was granted, with ProtocolViolation', async () => {
    const { client, server } = await pair()
    // Frames written past the client's own accounting: the server never read, so it granted nothing
    // beyond the initial window, which one frame may overshoot once.
    const body = new Uint8Array(40 * 1024)
    const frame = new Uint8Array([...varint.encode(body.length + 1), 0, ...body])
    for (let i = 0; i < 3; i++) client.stream.send(frame)
    const close = await within(secs(5), server.closed)
    expect(close.code).toBe(CloseCode.ProtocolViolation)
    expect(close.reason).toMatch(/beyond granted credit/)
    expect(server.queuedReceives).toBeLessThanOrEqual(2)
    expect(INITIAL_CREDIT).toBeLessThan(2 * body.length)
  })

  it('refuses to send an oversized frame and stays open', async () => {
    const { client, server } = await pair(1024)
    await expect(client.sendBytes(new Uint8Array(2048))).rejects.toBeInstanceOf(FrameTooLargeError)
    await client.send('still here')
    expect(await server.recv()).toBe('still here')
  })

  it('stops a writer whose reader stops reading, and resumes it when the reader catches up', async () => {
    const { client, server } = await pair()
    const chunk = new Uint8Array(64 * 1024)
    let sent = 0
    const writer = (async () => {
      for (let i = 0; i < 64; i++) {
        await client.sendBytes(chunk)
        sent++
      }
    })()
    // The reader reads nothing yet: the writer must stall at the credit window, not buffer 4 MiB.
    await within(
      secs(5),
      new Promise<void>((resolve) => {
        const check = () => (client.queuedSends > 0 ? resolve() : setTimeout(check, 5))
        check()
      }),
    )
    expect(sent * chunk.length).toBeLessThanOrEqual(INITIAL_CREDIT + chunk.length)
    let received = 0
    while (received < 64) {
      const payload = await server.recvBytes()
      expect(payload.length).toBe(chunk.length)
      received++
    }
    await within(secs(10), writer)
    expect(sent).toBe(64)
  })

  it('tells a writer how far its reader has read, and grows the window of a reader that keeps up', async () => {
    // The server writes, the client reads (the handshake in pair() went the other way).
    const { client, server } = await pair()
    await server.sendBytes(new Uint8Array(INITIAL_CREDIT))
    const next = server.sendBytes(new Uint8Array(1))
    // The initial window is spent and nothing was read: the writer waits and knows nothing yet.
    expect(server.queuedSends).toBe(1)
    expect(server.remoteConsumed).toBe(0)
    // Reading the window grants it back, widened: the waiting frame goes, and the writer knows.
    expect((await client.recvBytes()).length).toBe(INITIAL_CREDIT)
    await within(secs(5), next)
    expect(server.remoteConsumed).toBe(INITIAL_CREDIT)
    expect(client.receiveWindow).toBe(2 * INITIAL_CREDIT)
    // A reader that keeps up widens its window to the full size, and the writer never overruns it
    // (a frame beyond the granted credit would close the link).
    const chunk = new Uint8Array(16 * 1024)
    const total = (4 * MAX_WINDOW) / chunk.length
    const writer = (async () => {
      for (let i = 0; i < total; i++) await server.sendBytes(chunk)
    })()
    expect((await client.recvBytes()).length).toBe(1)
    for (let i = 0; i < total; i++) expect((await client.recvBytes()).length).toBe(chunk.length)
    await within(secs(10), writer)
    expect(client.receiveWindow).toBe(MAX_WINDOW)
    expect(server.remoteConsumed).toBeGreaterThan(INITIAL_CREDIT)
    expect(server.remoteConsumed).toBeLessThanOrEqual(server.bytesSent)
    expect(client.isClosed).toBe(false)
  })

  it('never reports reads by a reader that only writes', async () => {
    const { client, server } = await pair()
    await server.sendBytes(new Uint8Array(INITIAL_CREDIT))
    const next = server.sendBytes(new Uint8Array(1))
    // Data flows the other way, and the server reads it; the client reads nothing.
    await client.sendBytes(new Uint8Array(INITIAL_CREDIT))
    const more = client.sendBytes(new Uint8Array(1))
    expect((await server.recvBytes()).length).toBe(INITIAL_CREDIT)
    await within(secs(5), more)
    // The server read all but the frame just sent (and pair()'s hello, reported with this grant).
    expect(client.remoteConsumed).toBe(client.bytesSent - 1)
    expect(server.remoteConsumed).toBe(0)
    expect(server.queuedSends).toBe(1)
    await client.recvBytes()
    await within(secs(5), next)
    expect(server.remoteConsumed).toBe(INITIAL_CREDIT)
  })

  it('reports a transport failure as UnexpectedClose', async () => {
    const { client, server } = await pair()
    server.stream.abort(new Error('boom'))
    const close = await within(secs(5), client.closed)
    expect(close.code).toBe(CloseCode.UnexpectedClose)
    expect(close.remote).toBe(true)
  })
})
