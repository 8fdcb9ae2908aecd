import { compactVerify, decodeProtectedHeader, errors, SignJWT } from 'jose'
import type { PeerEntry } from '../discovery/entry.ts'
import { fromUtf8, utf8 } from '../primitives/bytes.ts'
import { encodeCanonical } from '../primitives/codec.ts'
import { Digest, type DigestLike } from '../primitives/digest.ts'
import { InvalidArgumentError } from '../primitives/errors.ts'
import { type JwtSigningKey, JwtVerifyingKey } from './jwt-keys.ts'
import {
  Expiration,
  InvalidTicketError,
  Ticket,
  type TicketErrorCode,
  type TicketValidator,
} from './ticket.ts'

/** The class of JWT tickets: Digest.from('mosaik.tickets.jwt.v1'), as mosaik's `id!`. */
export const JWT_TICKET_CLASS: Digest = Digest.from('mosaik.tickets.jwt.v1')

/** A JSON value, as custom claims hold. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [k: string]: JsonValue }

/** What a `Jwt` validator accepts. Only `keys` is required. */
export interface JwtPolicy {
  /** Keys that may have signed the ticket; any of them (with the token's `alg`) will do (rotation). */
  readonly keys: readonly JwtVerifyingKey[]
  /** Accepted `iss` values (any of them); empty: any issuer. */
  readonly issuers?: readonly string[]
  /** Accepted `aud` values (the token must name one of them); empty: no audience check. */
  readonly audiences?: readonly string[]
  /** Required `sub`; default: the peer id of the entry that carries the ticket. */
  readonly subject?: string
  /** Claims that must be present with exactly these (JSON) values. */
  readonly claims?: Readonly<Record<string, JsonValue>>
  /** Accept tickets without `exp` (default false: such tickets are refused). */
  readonly allowNonExpiring?: boolean
  /** Refuse tickets whose exp − iat exceeds this (requires both claims). */
  readonly maxLifetimeMs?: number
  /** Refuse tickets issued longer ago than this (requires `iat`); the ticket expires at iat + maxAge. */
  readonly maxAgeMs?: number
  /** Leeway for exp, nbf and age checks against this node's clock (default 0; local, not shared). */
  readonly clockSkewMs?: number
  /**
   * Names the key set in the signature instead of the keys' fingerprints, so keys can be rotated without
   * changing the GroupId of groups that require this validator. Every member must use the same id.
   */
  readonly policyId?: DigestLike
}

/**
 * The built-in JWT ticket validator (mosaik's `Jwt`). A ticket's data is a compact JWS (a JWT) in
 * UTF-8, signed with HS256/384/512, ES256/384/512 or EdDSA (Ed25519).
 *
 * Checks, in mosaik's order: UTF-8; three parts; the header's `alg` matches a configured key; the
 * signature verifies with one of those keys; `iss`; `sub`; `nbf`; `exp` (required unless
 * `allowNonExpiring`); lifetime; age; `aud`; custom claims. Each refusal is an InvalidTicketError with
 * a stable code (TICKET_EXPIRED, TICKET_WRONG_ISSUER...).
 *
 * When to use: an issuer (your backend, an operator's CLI) decides which peers may produce, consume or
 * join; peers carry the token in their entry (`net.discovery.addTicket(await builder.build(net.peerId))`).
 *
 * Gotchas:
 * - The subject defaults to the carrier's peer id, so a token copied out of the catalog is useless to
 *   another peer. Set `subject` only if tokens are bound to peers some other way.
 * - Expiry is checked against this node's clock: peers with skewed clocks disagree near the edges.
 *   `clockSkewMs` widens the window (and delays the disconnect at expiry by as much).
 * - The validator's `signature` covers the keys, issuers, audiences, subject, lifetime, age, claims and
 *   flags, and groups derive it into their GroupId: members that differ in any of them (including a key
 *   being rotated in) form different groups, unless they share a `policyId`.
 */
export class Jwt implements TicketValidator {
  readonly class: Digest = JWT_TICKET_CLASS
  readonly signature: Digest
  /** The policy this validator enforces (every builder method returns a new Jwt with a changed copy). */
  readonly policy: Readonly<JwtPolicy>

  constructor(policy: JwtVerifyingKey | readonly JwtVerifyingKey[] | JwtPolicy) {
    const p: JwtPolicy =
      policy instanceof JwtVerifyingKey
        ? { keys: [policy] }
        : Array.isArray(policy)
          ? { keys: policy }
          : (policy as JwtPolicy)
    if (!p.keys || p.keys.length === 0)
      throw new InvalidArgumentError('a Jwt validator needs at least one key')
    for (const n of [p.maxLifetimeMs, p.maxAgeMs, p.clockSkewMs]) {
      if (n !== undefined && !(n >= 0 && Number.isFinite(n))) {
        throw new InvalidArgumentError(`Jwt durations must be finite and ≥ 0, got ${n}`)
      }
    }
    this.policy = Object.freeze({ ...p, keys: [...p.keys] })
    this.signature = policySignature(this.class, this.policy)
  }

  /** A validator accepting tickets signed with `key`. */
  static with(key: JwtVerifyingKey): Jwt {
    return new Jwt(key)
  }

  /** Also accept tickets signed with `key` (key rotation). */
  addKey(key: JwtVerifyingKey): Jwt {
    return this.#with({ keys: [...this.policy.keys, key] })
  }

  /** Also accept tickets whose `iss` is `issuer` (no issuer added: any issuer). */
  allowIssuer(issuer: string): Jwt {
    return this.#with({ issuers: [...(this.policy.issuers ?? []), issuer] })
  }

  /** Also accept tickets whose `aud` names `audience` (none added: no audience check). */
  allowAudience(audience: string): Jwt {
    return this.#with({ audiences: [...(this.policy.audiences ?? []), audience] })
  }

  /** Require `sub` to be `subject` instead of the peer id of the entry carrying the ticket. */
  requireSubject(subject: string): Jwt {
    return this.#with({ subject })
  }

  /** Require claim `name` with exactly this (JSON) value. */
  requireClaim(name: string, value: JsonValue): Jwt {
    return this.#with({ claims: { ...this.policy.claims, [name]: value } })
  }

  /** Accept tickets without `exp` (refused by default). */
  allowNonExpiring(): Jwt {
    return this.#with({ allowNonExpiring: true })
  }

  /** Refuse tickets whose exp − iat exceeds `ms` (both claims required). */
  maxLifetime(ms: number): Jwt {
    return this.#with({ maxLifetimeMs: ms })
  }

  /** Refuse tickets issued more than `ms` ago (requires `iat`); the ticket expires at iat + ms. */
  maxAge(ms: number): Jwt {
    return this.#with({ maxAgeMs: ms })
  }

  /** Leeway in ms for exp, nbf and age checks against this node's clock (default 0). */
  clockSkew(ms: number): Jwt {
    return this.#with({ clockSkewMs: ms })
  }

  /** Name the key set by `id` in the signature, so keys rotate without changing GroupIds. */
  policyId(id: DigestLike): Jwt {
    return this.#with({ policyId: id })
  }

  #with(change: Partial<JwtPolicy>): Jwt {
    return new Jwt({ ...this.policy, ...change })
  }

  /**
   * The checks run in mosaik's order, each refusing with its own code; when a token has several faults,
   * the first check that fails decides the error.
   */
  async validate(data: Uint8Array, entry: PeerEntry, now = Date.now()): Promise<Expiration> {
    const p = this.policy
    const token = tokenOf(data)
    const claims = await verifyWithAny(token, keysForAlgorithm(token, p.keys))
    checkIssuer(p, claims)
    checkSubject(claims, p.subject ?? entry.peerId)
    const expiration = checkTimes(p, claims, now)
    checkAudience(p, claims)
    checkClaims(p, claims)
    return expiration
  }

  toString(): string {
    return `Jwt(${this.signature.short()})`
  }
}

/**
 * Issues JWT tickets (mosaik's `JwtTicketBuilder`). `iat` defaults to the time of `build`, `sub` to the
 * peer id passed to `build`; `exp` is set only by `expiresAt` / `expiresIn`.
 *
 * @example
 * const key = await JwtSigningKey.generate('ES256')
 * const ticket = await new JwtTicketBuilder(key).issuer('ops').expiresIn(3_600_000).build(net.peerId)
 * await net.discovery.addTicket(ticket)
 * // validators: new Jwt(key.verifyingKey).allowIssuer('ops')
 *
 * Gotcha: times are JWT NumericDates (seconds); `exp` is rounded to the nearest second.
 */
export class JwtTicketBuilder {
  readonly #key: JwtSigningKey
  #issuer: string | undefined
  #subject: string | undefined
  #audience: string | string[] | undefined
  #expiresAt: number | undefined
  #expiresIn: number | undefined
  #issuedAt: number | undefined
  #notBefore: number | undefined
  #tokenId: string | undefined
  readonly #claims: Record<string, JsonValue> = {}

  constructor(key: JwtSigningKey) {
    this.#key = key
  }

  /** Sets `iss`. */
  issuer(issuer: string): this {
    this.#issuer = issuer
    return this
  }

  /** Sets `sub` (default: the peer id the ticket is built for). */
  subject(subject: string): this {
    this.#subject = subject
    return this
  }

  /** Sets `aud` (one audience or several). */
  audience(audience: string | readonly string[]): this {
    this.#audience = typeof audience === 'string' ? audience : [...audience]
    return this
  }

  /** Sets `exp` to a fixed time (replaces `expiresIn`). */
  expiresAt(at: Expiration | Date | number): this {
    this.#expiresAt = at instanceof Expiration ? at.at : typeof at === 'number' ? at : at.getTime()
    this.#expiresIn = undefined
    return this
  }

  /** Expires `ms` after the ticket is built. */
  expiresIn(ms: number): this {
    this.#expiresIn = ms
    this.#expiresAt = undefined
    return this
  }

  /** Sets `iat` (default: when the ticket is built). */
  issuedAt(at: Date | number): this {
    this.#issuedAt = typeof at === 'number' ? at : at.getTime()
    return this
  }

  /** Sets `nbf`: the ticket is refused before this time. */
  notBefore(at: Date | number): this {
    this.#notBefore = typeof at === 'number' ? at : at.getTime()
    return this
  }

  /** Sets `jti`, the token id. */
  tokenId(id: string): this {
    this.#tokenId = id
    return this
  }

  /** A custom claim (registered claims are set with their own methods). */
  claim(name: string, value: JsonValue): this {
    this.#claims[name] = value
    return this
  }

  /** The signed compact JWT for `peerId`. */
  async token(peerId: string, now = Date.now()): Promise<string> {
    const iatMs = this.#issuedAt ?? now
    const expMs = this.#expiresAt ?? (this.#expiresIn === undefined ? undefined : now + this.#expiresIn)
    const payload: Record<string, unknown> = { ...this.#claims }
    payload.iat = Math.floor(iatMs / 1000)
    payload.sub = this.#subject ?? peerId
    if (this.#issuer !== undefined) payload.iss = this.#issuer
    if (this.#audience !== undefined) payload.aud = this.#audience
    if (expMs !== undefined) payload.exp = Math.round(expMs / 1000)
    if (this.#notBefore !== undefined) payload.nbf = Math.floor(this.#notBefore / 1000)
    if (this.#tokenId !== undefined) payload.jti = this.#tokenId
    return new SignJWT(payload)
      .setProtectedHeader({ alg: this.#key.alg, typ: 'JWT' })
      .sign(await this.#key.key())
  }

  /** A JWT ticket for `peerId` (its data is the token in UTF-8). */
  async build(peerId: string, now = Date.now()): Promise<Ticket> {
    return Ticket.create(JWT_TICKET_CLASS, utf8(await this.token(peerId, now)))
  }
}

function refuse(code: TicketErrorCode, message: string): InvalidTicketError {
  return new InvalidTicketError(code, `JWT ticket refused: ${message}`)
}

/** A token's claims, as the verified payload holds them. */
type Claims = Record<string, unknown>

/** The compact JWT in `data`: UTF-8 text in three parts. */
function tokenOf(data: Uint8Array): string {
  let token: string
  try {
    token = fromUtf8(data)
  } catch {
    throw refuse('TICKET_MALFORMED', 'ticket is not UTF-8')
  }
  if (token.split('.').length !== 3) throw refuse('TICKET_MALFORMED', 'a JWT has three parts')
  return token
}

/** The configured keys for the algorithm the token's header names; none is a refusal. */
function keysForAlgorithm(token: string, keys: readonly JwtVerifyingKey[]): JwtVerifyingKey[] {
  let alg: string | undefined
  try {
    alg = decodeProtectedHeader(token).alg
  } catch {
    throw refuse('TICKET_MALFORMED', 'bad JWT header')
  }
  const matching = keys.filter((k) => k.alg === alg)
  if (matching.length === 0)
    throw refuse('TICKET_UNSUPPORTED_ALGORITHM', `no key for algorithm ${String(alg)}`)
  return matching
}

function checkIssuer(p: JwtPolicy, claims: Claims): void {
  if (p.issuers?.length && !(typeof claims.iss === 'string' && p.issuers.includes(claims.iss))) {
    throw refuse('TICKET_WRONG_ISSUER', `issuer ${JSON.stringify(claims.iss)} is not accepted`)
  }
}

function checkSubject(claims: Claims, subject: string): void {
  if (claims.sub !== subject) throw refuse('TICKET_WRONG_SUBJECT', `subject is not ${subject}`)
}

/**
 * nbf, then exp, then lifetime and age; returns when the ticket expires. Each date is read (and refused
 * if it is not a number) only once the checks before it passed, so that order decides the error too.
 */
function checkTimes(p: JwtPolicy, claims: Claims, now: number): Expiration {
  const skew = p.clockSkewMs ?? 0
  checkNotBefore(claims, now, skew)
  const exp = checkExpiry(p, claims, now, skew)
  const iat = numericDate(claims, 'iat')
  if (p.maxLifetimeMs !== undefined) checkLifetime(p.maxLifetimeMs, exp, iat)
  const expiration = exp === undefined ? Expiration.never() : Expiration.at(exp * 1000 + skew)
  if (p.maxAgeMs === undefined) return expiration
  return expiration.min(ageLimit(p.maxAgeMs, iat, now, skew))
}

function checkNotBefore(claims: Claims, now: number, skew: number): void {
  const nbf = numericDate(claims, 'nbf')
  if (nbf !== undefined && nbf * 1000 > now + skew)
    throw refuse('TICKET_NOT_YET_VALID', 'ticket is not valid yet')
}

/** The `exp` claim, required unless the policy allows non-expiring tickets, and not yet reached. */
function checkExpiry(p: JwtPolicy, claims: Claims, now: number, skew: number): number | undefined {
  const exp = numericDate(claims, 'exp')
  if (exp === undefined && !p.allowNonExpiring) throw refuse('TICKET_NO_EXPIRY', 'ticket has no exp')
  if (exp !== undefined && exp * 1000 + skew <= now) throw refuse('TICKET_EXPIRED', 'ticket has expired')
  return exp
}

/** A maximum lifetime needs both `exp` and `iat`: a ticket missing one of them is refused. */
function checkLifetime(maxLifetimeMs: number, exp: number | undefined, iat: number | undefined): void {
  if (exp === undefined || iat === undefined || (exp - iat) * 1000 > maxLifetimeMs) {
    throw refuse('TICKET_LIFETIME_TOO_LONG', `ticket lifetime exceeds ${maxLifetimeMs} ms`)
  }
}

/** Refuses a ticket issued more than `maxAgeMs` ago (or without `iat`); else when it gets too old. */
function ageLimit(maxAgeMs: number, iat: number | undefined, now: number, skew: number): Expiration {
  if (iat === undefined || now - iat * 1000 > maxAgeMs + skew) {
    throw refuse('TICKET_TOO_OLD', `ticket is older than ${maxAgeMs} ms`)
  }
  return Expiration.at(iat * 1000 + maxAgeMs + skew)
}

/** `aud` (one string or an array) must name one of the accepted audiences, if any are configured. */
function checkAudience(p: JwtPolicy, claims: Claims): void {
  const accepted = p.audiences
  if (!accepted?.length) return
  const aud = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : []
  if (!aud.some((a) => typeof a === 'string' && accepted.includes(a))) {
    throw refuse('TICKET_WRONG_AUDIENCE', 'ticket is not for an accepted audience')
  }
}

/** Required custom claims compare as JSON with sorted keys, so key order does not matter. */
function checkClaims(p: JwtPolicy, claims: Claims): void {
  for (const [name, value] of Object.entries(p.claims ?? {})) {
    if (!(name in claims) || stableJson(claims[name]) !== stableJson(value)) {
      throw refuse('TICKET_CLAIM_MISMATCH', `claim ${name} does not match`)
    }
  }
}

/** Verifies the signature with the first key that accepts it; returns the claims. */
async function verifyWithAny(token: string, keys: readonly JwtVerifyingKey[]): Promise<Claims> {
  const unusable: string[] = []
  for (const key of keys) {
    let material: CryptoKey | Uint8Array
    try {
      material = await key.key()
    } catch (err) {
      // A key this runtime cannot import verifies nothing; another key may. Said below if none did.
      unusable.push(`${key.alg}: ${(err as Error).message}`)
      continue
    }
    let payload: Uint8Array
    try {
      payload = (await compactVerify(token, material, { algorithms: [key.alg] })).payload
    } catch (err) {
      if (err instanceof errors.JWSSignatureVerificationFailed) continue
      if (err instanceof errors.JOSEError && !(err instanceof errors.JOSENotSupported)) {
        throw refuse('TICKET_MALFORMED', err.message)
      }
      throw refuse('TICKET_BAD_SIGNATURE', (err as Error).message)
    }
    let claims: unknown
    try {
      claims = JSON.parse(fromUtf8(payload))
    } catch {
      throw refuse('TICKET_MALFORMED', 'payload is not JSON')
    }
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
      throw refuse('TICKET_MALFORMED', 'payload is not a JSON object')
    }
    return claims as Claims
  }
  // A misconfigured key must not read as forged tickets: say which keys could not be used.
  const why = unusable.length > 0 ? ` (keys this runtime could not import: ${unusable.join('; ')})` : ''
  throw refuse('TICKET_BAD_SIGNATURE', `no configured key verifies the signature${why}`)
}

function numericDate(claims: Claims, name: string): number | undefined {
  const v = claims[name]
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw refuse('TICKET_MALFORMED', `${name} is not a number`)
  return v
}

/** JSON with sorted object keys: equal values give equal strings. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(v) ?? 'null'
}

/**
 * The policy digest: the same policy gives the same signature on every node, whatever the order keys,
 * issuers, audiences or claims were given in. The clock-skew leeway is local and not included.
 */
function policySignature(cls: Digest, p: JwtPolicy): Digest {
  const keys =
    p.policyId !== undefined
      ? [Digest.from(p.policyId).bytes]
      : [...new Set(p.keys.map((k) => `${k.alg}:${k.fingerprint}`))].sort()
  const claims = Object.keys(p.claims ?? {})
    .sort()
    .map((k) => [k, stableJson(p.claims![k])])
  return cls.derive(
    encodeCanonical([
      'mosaik.tickets.jwt.policy.v1',
      keys,
      p.allowNonExpiring === true,
      [...new Set(p.issuers ?? [])].sort(),
      [...new Set(p.audiences ?? [])].sort(),
      p.subject ?? null,
      p.maxLifetimeMs ?? null,
      p.maxAgeMs ?? null,
      claims,
    ]),
  )
}
