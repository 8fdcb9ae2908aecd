import { base64url, CompactSign, exportJWK, generateKeyPair } from 'jose'
import { describe, expect, it } from 'vitest'
import {
  Digest,
  Expiration,
  InvalidTicketError,
  JWT_TICKET_CLASS,
  Jwt,
  type JwtAlgorithm,
  JwtSigningKey,
  JwtTicketBuilder,
  JwtVerifyingKey,
  Ticket,
  type TicketErrorCode,
  validateTicket,
  validateTickets,
} from '../../platform/node/index.ts'
import { utf8 } from '../../src/primitives/bytes.ts'
import { entryOf } from './support.ts'

const PEER = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'
const entry = entryOf(PEER)
const HOUR = 3_600_000

async function refusal(p: Promise<unknown>): Promise<TicketErrorCode> {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidTicketError)
    return (err as InvalidTicketError).code
  }
  throw new Error('the ticket was accepted')
}

async function tokenData(builder: JwtTicketBuilder, peer = PEER): Promise<Uint8Array> {
  return (await builder.build(peer)).data
}

describe('JWT tickets: algorithms', () => {
  const algorithms: JwtAlgorithm[] = ['HS256', 'HS384', 'HS512', 'ES256', 'ES384', 'ES512', 'EdDSA']
  it.each(algorithms)(
    '%s: a ticket built with the signing key validates with its verifying key',
    async (alg) => {
      const key = await JwtSigningKey.generate(alg)
      const exp = Date.now() + HOUR
      const ticket = await new JwtTicketBuilder(key).expiresAt(exp).build(PEER)
      expect(ticket.class.equals(JWT_TICKET_CLASS)).toBe(true)
      const expiration = await new Jwt(key.verifyingKey).validate(ticket.data, entry)
      expect(Math.abs(expiration.at! - exp)).toBeLessThanOrEqual(500)
      const other = await JwtSigningKey.generate(alg)
      expect(await refusal(new Jwt(other.verifyingKey).validate(ticket.data, entry))).toBe(
        'TICKET_BAD_SIGNATURE',
      )
    },
  )

  it('a token whose alg has no configured key is refused as unsupported', async () => {
    const hs = JwtSigningKey.hs256('secret')
    const es = await JwtSigningKey.generate('ES256')
    const data = await tokenData(new JwtTicketBuilder(hs).expiresIn(HOUR))
    expect(await refusal(new Jwt(es.verifyingKey).validate(data, entry))).toBe('TICKET_UNSUPPORTED_ALGORITHM')
  })

  it('a configured key this runtime cannot import is named in the refusal, not taken for a forged ticket', async () => {
    const key = await JwtSigningKey.generate('EdDSA')
    const data = await tokenData(new JwtTicketBuilder(key).expiresIn(HOUR))
    // As a runtime without Ed25519 in WebCrypto would fail to import any EdDSA key.
    const broken = JwtVerifyingKey.fromJwk({ kty: 'OKP', crv: 'Ed25519', x: 'AAAA' }, 'EdDSA')
    const refused = new Jwt(broken).validate(data, entry)
    await expect(refused).rejects.toMatchObject({ code: 'TICKET_BAD_SIGNATURE' })
    await expect(refused).rejects.toThrow(/keys this runtime could not import: EdDSA/)
    // With a usable key beside it, the ticket validates.
    await new Jwt([broken, key.verifyingKey]).validate(data, entry)
  })

  it('EC keys import from JWK, uncompressed and compressed SEC1 (hex too) with one fingerprint', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true })
    const jwk = await exportJWK(publicKey)
    const x = base64url.decode(jwk.x!)
    const y = base64url.decode(jwk.y!)
    const uncompressed = new Uint8Array([4, ...x, ...y])
    const compressed = new Uint8Array([2 | (y[31]! & 1), ...x])
    const keys = [
      JwtVerifyingKey.es256(jwk),
      JwtVerifyingKey.es256(uncompressed),
      JwtVerifyingKey.es256(Buffer.from(compressed).toString('hex')),
    ]
    expect(new Set(keys.map((k) => k.fingerprint.toString())).size).toBe(1)
    const signing = JwtSigningKey.fromJwk({ ...(await exportJWK(privateKey)) }, 'ES256')
    const data = await tokenData(new JwtTicketBuilder(signing).expiresIn(HOUR))
    for (const k of keys) await new Jwt(k).validate(data, entry)
  })

  it('signing keys round-trip through JWK', async () => {
    const key = await JwtSigningKey.generate('EdDSA')
    const back = JwtSigningKey.fromJwk(await key.toJwk())
    expect(back.verifyingKey.fingerprint.equals(key.verifyingKey.fingerprint)).toBe(true)
    const data = await tokenData(new JwtTicketBuilder(back).expiresIn(HOUR))
    await new Jwt(key.verifyingKey).validate(data, entry)
  })
})

describe('JWT tickets: claims', () => {
  const key = JwtSigningKey.hs256('claims-secret')
  const jwt = Jwt.with(key.verifyingKey)
  const builder = () => new JwtTicketBuilder(key).expiresIn(HOUR)

  it('expired and not-yet-valid tickets are refused; the clock-skew leeway widens both', async () => {
    const now = Date.now()
    const expired = await tokenData(builder().expiresAt(now - 2_000))
    expect(await refusal(jwt.validate(expired, entry))).toBe('TICKET_EXPIRED')
    const early = await tokenData(builder().notBefore(now + 60_000))
    expect(await refusal(jwt.validate(early, entry))).toBe('TICKET_NOT_YET_VALID')
    const lenient = jwt.clockSkew(120_000)
    const expiration = await lenient.validate(expired, entry)
    expect(expiration.isExpired()).toBe(false)
    await lenient.validate(early, entry)
    expect(lenient.signature.equals(jwt.signature)).toBe(true)
  })

  it('a ticket without exp is refused unless non-expiring tickets are allowed', async () => {
    const data = await tokenData(new JwtTicketBuilder(key))
    expect(await refusal(jwt.validate(data, entry))).toBe('TICKET_NO_EXPIRY')
    expect((await jwt.allowNonExpiring().validate(data, entry)).isNever).toBe(true)
  })

  it('issuer, audience and subject must match', async () => {
    const data = await tokenData(builder().issuer('ops').audience(['net-a', 'net-b']))
    await jwt.allowIssuer('other').allowIssuer('ops').allowAudience('net-b').validate(data, entry)
    expect(await refusal(jwt.allowIssuer('other').validate(data, entry))).toBe('TICKET_WRONG_ISSUER')
    expect(await refusal(jwt.allowAudience('net-c').validate(data, entry))).toBe('TICKET_WRONG_AUDIENCE')
    // The subject defaults to the carrier's peer id: a copied ticket is useless to another peer.
    const thief = entryOf('12D3KooWSomeOtherPeerSomeOtherPeerSomeOtherPeerXYZ')
    expect(await refusal(jwt.validate(data, thief))).toBe('TICKET_WRONG_SUBJECT')
    const fixed = await tokenData(builder().subject('service-a'))
    await jwt.requireSubject('service-a').validate(fixed, thief)
    expect(await refusal(jwt.validate(fixed, entry))).toBe('TICKET_WRONG_SUBJECT')
  })

  it('custom claims compare as JSON values, whatever their key order', async () => {
    const data = await tokenData(
      builder()
        .claim('role', 'writer')
        .claim('scope', { b: [1, 2], a: true }),
    )
    await jwt
      .requireClaim('role', 'writer')
      .requireClaim('scope', { a: true, b: [1, 2] })
      .validate(data, entry)
    expect(await refusal(jwt.requireClaim('role', 'admin').validate(data, entry))).toBe(
      'TICKET_CLAIM_MISMATCH',
    )
    expect(await refusal(jwt.requireClaim('tier', 1).validate(data, entry))).toBe('TICKET_CLAIM_MISMATCH')
  })

  it('max lifetime and max age bound the ticket; max age also bounds its expiration', async () => {
    const now = Date.now()
    const long = await tokenData(
      builder()
        .issuedAt(now)
        .expiresAt(now + 2 * HOUR),
    )
    expect(await refusal(jwt.maxLifetime(HOUR).validate(long, entry))).toBe('TICKET_LIFETIME_TOO_LONG')
    await jwt.maxLifetime(3 * HOUR).validate(long, entry)
    const old = await tokenData(builder().issuedAt(now - 10 * 60_000))
    expect(await refusal(jwt.maxAge(60_000).validate(old, entry))).toBe('TICKET_TOO_OLD')
    const fresh = await tokenData(builder().issuedAt(now))
    const expiration = await jwt.maxAge(60_000).validate(fresh, entry)
    expect(expiration.at).toBeLessThanOrEqual(Math.floor(now / 1000) * 1000 + 60_000)
  })

  it('malformed tickets are refused as malformed, tampered ones as badly signed', async () => {
    const bad = [new Uint8Array([0xff, 0xfe]), utf8('a.b'), utf8('not-base64.e30.sig'), utf8('...')]
    for (const data of bad) expect(await refusal(jwt.validate(data, entry))).toBe('TICKET_MALFORMED')
    const notJson = await new CompactSign(utf8('not json'))
      .setProtectedHeader({ alg: 'HS256' })
      .sign(utf8('claims-secret'))
    expect(await refusal(jwt.validate(utf8(notJson), entry))).toBe('TICKET_MALFORMED')
    // Signed, but with times that are not numbers.
    for (const claim of ['exp', 'nbf', 'iat']) {
      const claims = { sub: PEER, exp: Date.now() / 1000 + 7200, [claim]: 'soon' }
      const signed = await new CompactSign(utf8(JSON.stringify(claims)))
        .setProtectedHeader({ alg: 'HS256' })
        .sign(utf8('claims-secret'))
      expect(await refusal(jwt.validate(utf8(signed), entry))).toBe('TICKET_MALFORMED')
    }
    const token = new TextDecoder().decode(await tokenData(builder()))
    const [header, , signature] = token.split('.')
    const payload = base64url.encode(JSON.stringify({ sub: PEER, exp: Date.now() / 1000 + 7200 }))
    expect(await refusal(jwt.validate(utf8(`${header}.${payload}.${signature}`), entry))).toBe(
      'TICKET_BAD_SIGNATURE',
    )
  })
})

describe('JWT tickets: key rotation and signatures', () => {
  it('a validator with several keys accepts tickets of each; dropping a key refuses its tickets', async () => {
    const old = JwtSigningKey.hs256('old-secret')
    const next = await JwtSigningKey.generate('ES256')
    const both = Jwt.with(old.verifyingKey).addKey(next.verifyingKey)
    const fromOld = await tokenData(new JwtTicketBuilder(old).expiresIn(HOUR))
    const fromNext = await tokenData(new JwtTicketBuilder(next).expiresIn(HOUR))
    await both.validate(fromOld, entry)
    await both.validate(fromNext, entry)
    const rotated = Jwt.with(next.verifyingKey)
    expect(await refusal(rotated.validate(fromOld, entry))).toBe('TICKET_UNSUPPORTED_ALGORITHM')
    const twoHmac = Jwt.with(JwtVerifyingKey.hs256('a')).addKey(old.verifyingKey)
    await twoHmac.validate(fromOld, entry)
  })

  it('the signature depends on the policy, not on the order it was given in', () => {
    const a = JwtVerifyingKey.hs256('a')
    const b = JwtVerifyingKey.hs256('b')
    const base = new Jwt({ keys: [a, b], issuers: ['x', 'y'], claims: { r: 1, s: 2 } })
    const same = new Jwt({ keys: [b, a, b], issuers: ['y', 'x'], claims: { s: 2, r: 1 }, clockSkewMs: 5000 })
    expect(same.signature.equals(base.signature)).toBe(true)
    const variants = [
      new Jwt({ keys: [a] }),
      base.allowAudience('n'),
      base.requireSubject('s'),
      base.requireClaim('r', 2),
      base.allowNonExpiring(),
      base.maxAge(1000),
      base.maxLifetime(1000),
      base.allowIssuer('z'),
    ]
    const all = new Set([base, ...variants].map((v) => v.signature.toString()))
    expect(all.size).toBe(variants.length + 1)
    // A shared policy id keeps the signature through a key rotation.
    expect(
      new Jwt({ keys: [a], policyId: 'ops-v1' }).signature.equals(
        new Jwt({ keys: [b], policyId: 'ops-v1' }).signature,
      ),
    ).toBe(true)
  })
})

describe('tickets on entries', () => {
  it('Ticket.id is class.derive(data)', () => {
    const t = Ticket.create('my-class', utf8('data'))
    expect(Ticket.id(t).equals(Digest.from('my-class').derive(utf8('data')))).toBe(true)
  })

  it('validateTicket takes the latest expiry of valid tickets; validateTickets the earliest over validators', async () => {
    const a = JwtSigningKey.hs256('a')
    const b = JwtSigningKey.hs384('b')
    const now = Date.now()
    const tickets = [
      await new JwtTicketBuilder(a).expiresAt(now + HOUR).build(PEER),
      await new JwtTicketBuilder(a).expiresAt(now + 3 * HOUR).build(PEER),
      await new JwtTicketBuilder(a).expiresAt(now - HOUR).build(PEER),
      await new JwtTicketBuilder(b).expiresAt(now + 2 * HOUR).build(PEER),
    ]
    const e = entryOf(PEER, tickets)
    const va = Jwt.with(a.verifyingKey)
    const vb = Jwt.with(b.verifyingKey)
    expect(Math.round(((await validateTicket(e, va)).at! - now) / HOUR)).toBe(3)
    expect(Math.round(((await e.validateTickets([va, vb])).at! - now) / HOUR)).toBe(2)
    expect((await validateTickets(e, [])).isNever).toBe(true)
    expect(await refusal(validateTicket(entryOf(PEER), va))).toBe('TICKET_MISSING')
    expect(e.ticketsOf(JWT_TICKET_CLASS)).toHaveLength(4)
  })

  it('Expiration orders never last', () => {
    const soon = Expiration.after(1000)
    expect(soon.min(Expiration.never())).toBe(soon)
    expect(Expiration.never().compare(soon)).toBe(1)
    expect(Expiration.alreadyExpired().isExpired()).toBe(true)
    expect(Expiration.never().remaining()).toBe(Number.POSITIVE_INFINITY)
    expect(Expiration.inHours(1).remaining()).toBeGreaterThan(HOUR - 1000)
  })
})
