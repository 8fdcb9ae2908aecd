import {
  Digest,
  Jwt,
  JwtSigningKey,
  JwtTicketBuilder,
  type Network,
  PeerEntry,
  type PeerInfo,
  type Ticket,
} from '../../platform/node/index.ts'
import { equalBytes } from '../../src/primitives/bytes.ts'
import { secs, within } from '../support/time.ts'

/** mosaik's test issuer and secret (tests/common/ticket.rs): the secret is blake3 of a string. */
export const DEFAULT_ISSUER = 'mosaik-tests'
export const DEFAULT_SECRET = 'mosaik-tests-secret'

export function jwtSecret(s: string = DEFAULT_SECRET): Uint8Array {
  return Digest.from(s).bytes
}

/** An HS256 builder for `issuer`, expiring in an hour unless told otherwise. */
export function jwtBuilder(issuer = DEFAULT_ISSUER, secret = DEFAULT_SECRET): JwtTicketBuilder {
  return new JwtTicketBuilder(JwtSigningKey.hs256(jwtSecret(secret))).issuer(issuer).expiresIn(3_600_000)
}

/** The validator matching `jwtBuilder(issuer, secret)`. */
export function jwtValidator(issuer = DEFAULT_ISSUER, secret = DEFAULT_SECRET): Jwt {
  return Jwt.with(JwtSigningKey.hs256(jwtSecret(secret)).verifyingKey).allowIssuer(issuer)
}

/** An entry for unit tests of validators (only the peer id and the tickets matter). */
export function entryOf(peerId: string, tickets: Ticket[] = []): PeerEntry {
  return new PeerEntry({
    peerId,
    network: Digest.from('tickets-unit'),
    version: { start: 1, update: 1 },
    tickets,
  })
}

/** Gives `net` a ticket from `builder` and waits until `observers` see it in its entry. */
export async function giveTicket(
  net: Network,
  builder: JwtTicketBuilder,
  observers: readonly Network[] = [],
): Promise<Ticket> {
  const ticket = await builder.build(net.peerId)
  await net.discovery.addTicket(ticket)
  await seeTickets(net, observers, ticket)
  return ticket
}

/** Waits until every observer's catalog holds `subject`'s entry with exactly `predicate` true. */
export async function sees(
  observers: readonly Network[],
  subject: Network,
  predicate: (peer: PeerInfo) => boolean,
  what = 'entry update',
): Promise<void> {
  await within(
    secs(10),
    Promise.all(
      observers.map((o) =>
        o.discovery.when.catalog((c) => {
          const p = c.get(subject.peerId)
          return p !== undefined && predicate(p)
        }),
      ),
    ),
    what,
  )
}

function seeTickets(subject: Network, observers: readonly Network[], ticket: Ticket): Promise<void> {
  return sees(
    observers,
    subject,
    (p) => p.tickets.some((t) => t.class.equals(ticket.class) && equalBytes(t.data, ticket.data)),
    'ticket in the entry',
  )
}
