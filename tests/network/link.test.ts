import { afterEach, describe, expect, it } from 'vitest'
import { CloseCode, FrameTooLargeError, LinkClosedError } from '../../platform/node/index.ts'
import type { Link } from '../../src/transport/link.ts'
import { INITIAL_CREDIT } from '../../src/transport/link.ts'
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

  it('reports a transport failure as UnexpectedClose', async () => {
    const { client, server } = await pair()
    server.stream.abort(new Error('boom'))
    const close = await within(secs(5), client.closed)
    expect(close.code).toBe(CloseCode.UnexpectedClose)
    expect(close.remote).toBe(true)
  })
})
