import { createHmac } from 'node:crypto'
import { expect } from 'vitest'
import {
  type Consumer,
  type ConsumerEvents,
  Digest,
  type Network,
  type PeerInfo,
  type Producer,
  type ProducerEvents,
  type Ticket,
} from '../../platform/node/index.ts'
import { fromUtf8, utf8 } from '../../src/primitives/bytes.ts'
import type { Link } from '../../src/transport/link.ts'
import { nextEvent } from '../support/events.ts'
import { secs, within } from '../support/time.ts'

/** Fast reconnects for tests: the defaults wait 0.25-0.75 s before the first retry. */
/** The streams protocol of `net`, for raw links. */
export const protocolOf = (net: Network) => net.context.protocol('streams/1')

/** A raw subscription handshake for `stream` on `network`, with `criteria` as the consumer's. */
export const handshake = (network: Digest, stream: Digest, criteria: unknown = new Map()) => [
  1,
  network.bytes,
  stream.bytes,
  criteria,
]

/** Opens a raw subscription link from `from` to `to`'s producer of `stream`; resolves once admitted. */
export async function subscribe(from: Network, to: Network, stream: Digest): Promise<Link> {
  const link = await from.context.openLink(to.peerId, protocolOf(to))
  await link.send(handshake(to.networkId, stream))
  expect(await link.recv({ signal: AbortSignal.timeout(secs(5)) })).toEqual([
    to.networkId.bytes,
    stream.bytes,
  ])
  return link
}

export const FAST_BACKOFF = { initialMs: 30, maxIntervalMs: 300 }

export const producerEvent = <T, K extends keyof ProducerEvents>(
  p: Producer<T>,
  event: K,
  match?: (payload: ProducerEvents[K]) => boolean,
) => nextEvent<ProducerEvents, K>(p, event, match)

export const consumerEvent = <T, K extends keyof ConsumerEvents>(
  c: Consumer<T>,
  event: K,
  match?: (payload: ConsumerEvents[K]) => boolean,
) => nextEvent<ConsumerEvents, K>(c, event, match)

/** Receives `n` datums (bounded by a scaled timeout). */
export async function take<T>(consumer: Consumer<T>, n: number, timeoutMs = secs(10)): Promise<T[]> {
  const out: T[] = []
  const signal = AbortSignal.timeout(timeoutMs)
  while (out.length < n) out.push(await consumer.recv({ signal }))
  return out
}

/** Waits until every node's catalog lists all the others. */
export async function converge(nets: readonly Network[]): Promise<void> {
  await within(
    secs(15),
    Promise.all(nets.map((n) => n.discovery.when.peers(nets.length - 1))),
    'catalogs converge',
  )
}

/** Waits until `observer` sees `subject`'s entry satisfy `predicate` (e.g. after addTags). */
export async function sees(
  observer: Network,
  subject: Network,
  predicate: (peer: PeerInfo) => boolean,
  what = 'entry update',
): Promise<void> {
  await within(
    secs(10),
    observer.discovery.when.catalog((c) => {
      const p = c.get(subject.peerId)
      return p !== undefined && predicate(p)
    }),
    what,
  )
}

/** Resolves after the current macrotask queue drains: lets in-flight reactions to an event run. */
export const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

// ---- tickets: a hand-rolled HS256 JWT in the peer entry, as mosaik's ticket tests ----------------

export const JWT_CLASS = Digest.from('jwt')
const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url')

export function jwt(secret: string, claims: { sub: string; exp: number; iss?: string }): Ticket {
  const header = b64url(utf8(JSON.stringify({ alg: 'HS256', typ: 'JWT' })))
  const body = b64url(utf8(JSON.stringify({ iss: 'mosaik-tests', ...claims })))
  const signature = createHmac('sha256', secret).update(`${header}.${body}`).digest('base64url')
  return { class: JWT_CLASS, data: utf8(`${header}.${body}.${signature}`) }
}

/** A `require` predicate: the peer carries a JWT signed with `secret`, for itself, not expired. */
export function hasValidJwt(secret: string): (peer: PeerInfo) => boolean {
  return (peer) =>
    peer.tickets.some((t) => {
      if (!t.class.equals(JWT_CLASS)) return false
      const [header, body, signature] = fromUtf8(t.data).split('.')
      if (!header || !body || !signature) return false
      const expected = createHmac('sha256', secret).update(`${header}.${body}`).digest('base64url')
      if (expected !== signature) return false
      const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'))
      return claims.sub === peer.id && claims.exp * 1000 > Date.now()
    })
}

/** Puts a JWT for `net` in its entry (valid for an hour, or already expired). */
export async function giveJwt(net: Network, secret: string, expired = false, tag = ''): Promise<void> {
  const exp = Math.floor(Date.now() / 1000) + (expired ? -3600 : 3600)
  const ticket = jwt(secret, { sub: net.peerId, exp, iss: tag || 'mosaik-tests' })
  await net.discovery.updateLocal((e) => ({ tickets: [...e.tickets, ticket] }))
}
