import { base64url, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose'
import { concatBytes, fromHex, utf8 } from '../primitives/bytes.ts'
import { Digest } from '../primitives/digest.ts'
import { InvalidArgumentError } from '../primitives/errors.ts'

/**
 * Keys of the JWT ticket validator and issuer. All cryptography is the `jose` library's (WebCrypto),
 * so the same code runs in Node and in browsers.
 */

/** The JWS algorithms tickets may use. */
export type JwtAlgorithm = 'HS256' | 'HS384' | 'HS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA'
/** The JWS algorithms with a shared secret (JwtSigningKey.hmac / JwtVerifyingKey.hs256...). */
export type HmacAlgorithm = 'HS256' | 'HS384' | 'HS512'
/** The JWS algorithms with a key pair: ECDSA on P-256/P-384/P-521 and Ed25519. */
export type AsymmetricAlgorithm = 'ES256' | 'ES384' | 'ES512' | 'EdDSA'

const CURVES = {
  ES256: { crv: 'P-256', size: 32 },
  ES384: { crv: 'P-384', size: 48 },
  ES512: { crv: 'P-521', size: 66 },
} as const
type EcAlgorithm = keyof typeof CURVES

/** What a verifying key is made of, in the form the fingerprint and the import need. */
type Material =
  | { kind: 'secret'; secret: Uint8Array }
  | { kind: 'jwk'; jwk: JWK }
  | { kind: 'raw-ec'; raw: Uint8Array; crv: string }

/**
 * A key that verifies JWT tickets: an HMAC secret (HS*) or a public key (ES*, EdDSA). Give several to
 * `Jwt` to rotate keys.
 *
 * Gotchas:
 * - A key's fingerprint (blake3 of its canonical bytes) is part of the validator's signature and so of
 *   the GroupId of groups that require the validator: a weak HMAC secret can be guessed offline from
 *   it. Use 32 random bytes (`JwtSigningKey.generate` or `crypto.getRandomValues`).
 * - A string secret is taken as UTF-8 bytes; use `fromHex` for hex.
 * - Compressed EC points (33 bytes for P-256) import in Node but not in every browser: pass a JWK or an
 *   uncompressed point (0x04 ‖ x ‖ y) for code that runs in browsers.
 */
export class JwtVerifyingKey {
  /** The JWS algorithm tokens verified with this key must use. */
  readonly alg: JwtAlgorithm
  /** blake3 of the key's canonical bytes (the compressed point for EC keys). */
  readonly fingerprint: Digest
  readonly #material: Material
  #imported: Promise<CryptoKey | Uint8Array> | undefined

  private constructor(alg: JwtAlgorithm, material: Material, canonical: Uint8Array) {
    this.alg = alg
    this.#material = material
    this.fingerprint = Digest.fromParts('mosaik.tickets.jwt.key', alg, canonical)
  }

  /** An HMAC key (HS256, HS384 or HS512); a string is taken as UTF-8. */
  static hmac(alg: HmacAlgorithm, secret: Uint8Array | string): JwtVerifyingKey {
    const bytes = typeof secret === 'string' ? utf8(secret) : Uint8Array.from(secret)
    if (bytes.length === 0) throw new InvalidArgumentError('an HMAC secret cannot be empty')
    return new JwtVerifyingKey(alg, { kind: 'secret', secret: bytes }, bytes)
  }

  /** An HS256 key; a string is taken as UTF-8. */
  static hs256(secret: Uint8Array | string): JwtVerifyingKey {
    return JwtVerifyingKey.hmac('HS256', secret)
  }

  /** An HS384 key; a string is taken as UTF-8. */
  static hs384(secret: Uint8Array | string): JwtVerifyingKey {
    return JwtVerifyingKey.hmac('HS384', secret)
  }

  /** An HS512 key; a string is taken as UTF-8. */
  static hs512(secret: Uint8Array | string): JwtVerifyingKey {
    return JwtVerifyingKey.hmac('HS512', secret)
  }

  /** A P-256 public key: SEC1 bytes (uncompressed or compressed), their hex, or a JWK. */
  static es256(publicKey: Uint8Array | string | JWK): JwtVerifyingKey {
    return JwtVerifyingKey.#ec('ES256', publicKey)
  }

  /** A P-384 public key: SEC1 bytes, their hex, or a JWK. */
  static es384(publicKey: Uint8Array | string | JWK): JwtVerifyingKey {
    return JwtVerifyingKey.#ec('ES384', publicKey)
  }

  /** A P-521 public key: SEC1 bytes, their hex, or a JWK. */
  static es512(publicKey: Uint8Array | string | JWK): JwtVerifyingKey {
    return JwtVerifyingKey.#ec('ES512', publicKey)
  }

  /** An Ed25519 public key: 32 raw bytes, their hex, or a JWK. */
  static eddsa(publicKey: Uint8Array | string | JWK): JwtVerifyingKey {
    if (!(publicKey instanceof Uint8Array) && typeof publicKey !== 'string') {
      return JwtVerifyingKey.fromJwk(publicKey, 'EdDSA')
    }
    const raw = bytesOf(publicKey)
    if (raw.length !== 32) throw new InvalidArgumentError('an Ed25519 public key is 32 bytes')
    const jwk: JWK = { kty: 'OKP', crv: 'Ed25519', x: base64url.encode(raw) }
    return new JwtVerifyingKey('EdDSA', { kind: 'jwk', jwk }, raw)
  }

  /** A key from a JWK (public parts only are kept); `alg` defaults to the JWK's own or its curve's. */
  static fromJwk(jwk: JWK, alg?: JwtAlgorithm): JwtVerifyingKey {
    const algorithm = alg ?? algorithmOf(jwk)
    if (algorithm.startsWith('HS')) {
      if (jwk.kty !== 'oct' || typeof jwk.k !== 'string')
        throw new InvalidArgumentError('an HMAC JWK needs k')
      return JwtVerifyingKey.hmac(algorithm as HmacAlgorithm, base64url.decode(jwk.k))
    }
    if (algorithm === 'EdDSA') {
      if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') {
        throw new InvalidArgumentError('an EdDSA JWK needs kty OKP, crv Ed25519 and x')
      }
      const raw = base64url.decode(jwk.x)
      const pub: JWK = { kty: 'OKP', crv: 'Ed25519', x: jwk.x }
      return new JwtVerifyingKey('EdDSA', { kind: 'jwk', jwk: pub }, raw)
    }
    const { crv, size } = CURVES[algorithm as EcAlgorithm]
    if (jwk.kty !== 'EC' || jwk.crv !== crv || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
      throw new InvalidArgumentError(`an ${algorithm} JWK needs kty EC, crv ${crv}, x and y`)
    }
    const x = base64url.decode(jwk.x)
    const y = base64url.decode(jwk.y)
    if (x.length !== size || y.length !== size) throw new InvalidArgumentError(`bad ${crv} coordinates`)
    const pub: JWK = { kty: 'EC', crv, x: jwk.x, y: jwk.y }
    return new JwtVerifyingKey(algorithm, { kind: 'jwk', jwk: pub }, compressed(x, y))
  }

  static #ec(alg: EcAlgorithm, publicKey: Uint8Array | string | JWK): JwtVerifyingKey {
    if (!(publicKey instanceof Uint8Array) && typeof publicKey !== 'string') {
      return JwtVerifyingKey.fromJwk(publicKey, alg)
    }
    const { crv, size } = CURVES[alg]
    const raw = bytesOf(publicKey)
    if (raw.length === 1 + 2 * size && raw[0] === 4) {
      const x = raw.subarray(1, 1 + size)
      const y = raw.subarray(1 + size)
      const jwk: JWK = { kty: 'EC', crv, x: base64url.encode(x), y: base64url.encode(y) }
      return new JwtVerifyingKey(alg, { kind: 'jwk', jwk }, compressed(x, y))
    }
    if (raw.length === 1 + size && (raw[0] === 2 || raw[0] === 3)) {
      return new JwtVerifyingKey(alg, { kind: 'raw-ec', raw, crv }, raw)
    }
    throw new InvalidArgumentError(
      `an ${alg} public key is a ${1 + 2 * size}- or ${1 + size}-byte SEC1 point`,
    )
  }

  /** @internal The key in the form jose verifies with (imported once). */
  key(): Promise<CryptoKey | Uint8Array> {
    this.#imported ??= importVerifying(this.alg, this.#material)
    return this.#imported
  }

  /** The algorithm and the short fingerprint (never the key itself), for logs. */
  toString(): string {
    return `JwtVerifyingKey(${this.alg} ${this.fingerprint.short()})`
  }
}

async function importVerifying(alg: JwtAlgorithm, m: Material): Promise<CryptoKey | Uint8Array> {
  switch (m.kind) {
    case 'secret':
      return m.secret
    case 'jwk':
      return importJWK(m.jwk, alg)
    case 'raw-ec':
      return crypto.subtle.importKey(
        'raw',
        m.raw as Uint8Array<ArrayBuffer>,
        { name: 'ECDSA', namedCurve: m.crv },
        false,
        ['verify'],
      )
  }
}

/**
 * A key that signs JWT tickets (`JwtTicketBuilder`): an HMAC secret, or a private key whose public
 * half (`verifyingKey`) goes to the validators.
 *
 * Gotcha: `generate` creates an extractable key so `toJwk` can persist it; keep that JWK secret.
 */
export class JwtSigningKey {
  /** The JWS algorithm this key signs with. */
  readonly alg: JwtAlgorithm
  /** The key validators need to accept this key's tickets. */
  readonly verifyingKey: JwtVerifyingKey
  readonly #key: Uint8Array | CryptoKey | JWK
  #imported: Promise<CryptoKey | Uint8Array> | undefined

  private constructor(alg: JwtAlgorithm, key: Uint8Array | CryptoKey | JWK, verifyingKey: JwtVerifyingKey) {
    this.alg = alg
    this.#key = key
    this.verifyingKey = verifyingKey
  }

  /** An HMAC signing key (HS256, HS384 or HS512); a string is taken as UTF-8. */
  static hmac(alg: HmacAlgorithm, secret: Uint8Array | string): JwtSigningKey {
    const verifying = JwtVerifyingKey.hmac(alg, secret)
    const bytes = typeof secret === 'string' ? utf8(secret) : Uint8Array.from(secret)
    return new JwtSigningKey(alg, bytes, verifying)
  }

  /** An HS256 signing key; a string is taken as UTF-8. */
  static hs256(secret: Uint8Array | string): JwtSigningKey {
    return JwtSigningKey.hmac('HS256', secret)
  }

  /** An HS384 signing key; a string is taken as UTF-8. */
  static hs384(secret: Uint8Array | string): JwtSigningKey {
    return JwtSigningKey.hmac('HS384', secret)
  }

  /** An HS512 signing key; a string is taken as UTF-8. */
  static hs512(secret: Uint8Array | string): JwtSigningKey {
    return JwtSigningKey.hmac('HS512', secret)
  }

  /** A private key from a JWK (with `d`); `alg` defaults to the JWK's own or its curve's. */
  static fromJwk(jwk: JWK, alg?: JwtAlgorithm): JwtSigningKey {
    const algorithm = alg ?? algorithmOf(jwk)
    if (algorithm.startsWith('HS')) {
      if (typeof jwk.k !== 'string') throw new InvalidArgumentError('an HMAC JWK needs k')
      return JwtSigningKey.hmac(algorithm as HmacAlgorithm, base64url.decode(jwk.k))
    }
    if (typeof jwk.d !== 'string') throw new InvalidArgumentError('a private JWK needs d')
    return new JwtSigningKey(algorithm, { ...jwk }, JwtVerifyingKey.fromJwk(jwk, algorithm))
  }

  /** A fresh random key: 32 random bytes for HS256 (64 for HS384/512), a new key pair otherwise. */
  static async generate(alg: JwtAlgorithm): Promise<JwtSigningKey> {
    if (alg.startsWith('HS')) {
      const secret = crypto.getRandomValues(new Uint8Array(alg === 'HS256' ? 32 : 64))
      return JwtSigningKey.hmac(alg as HmacAlgorithm, secret)
    }
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true })
    const verifying = JwtVerifyingKey.fromJwk(await exportJWK(publicKey), alg)
    return new JwtSigningKey(alg, privateKey, verifying)
  }

  /** The private key as a JWK, to persist it (and `fromJwk` it back). */
  async toJwk(): Promise<JWK> {
    const k = this.#key
    if (k instanceof Uint8Array) return { kty: 'oct', k: base64url.encode(k), alg: this.alg }
    if (isCryptoKey(k)) return { ...(await exportJWK(k)), alg: this.alg }
    return { ...k, alg: this.alg }
  }

  /** @internal The key in the form jose signs with (imported once). */
  key(): Promise<CryptoKey | Uint8Array> {
    const k = this.#key
    this.#imported ??= k instanceof Uint8Array || isCryptoKey(k) ? Promise.resolve(k) : importJWK(k, this.alg)
    return this.#imported
  }

  /** The algorithm and the short fingerprint (never the key itself), for logs. */
  toString(): string {
    return `JwtSigningKey(${this.alg} ${this.verifyingKey.fingerprint.short()})`
  }
}

function isCryptoKey(k: unknown): k is CryptoKey {
  return typeof CryptoKey !== 'undefined' && k instanceof CryptoKey
}

function algorithmOf(jwk: JWK): JwtAlgorithm {
  if (typeof jwk.alg === 'string' && isAlgorithm(jwk.alg)) return jwk.alg
  if (jwk.kty === 'oct') return 'HS256'
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA'
  if (jwk.kty === 'EC') {
    for (const [alg, c] of Object.entries(CURVES)) if (c.crv === jwk.crv) return alg as JwtAlgorithm
  }
  throw new InvalidArgumentError(`cannot tell the algorithm of a ${String(jwk.kty)} JWK; pass alg`)
}

export function isAlgorithm(alg: string): alg is JwtAlgorithm {
  return ['HS256', 'HS384', 'HS512', 'ES256', 'ES384', 'ES512', 'EdDSA'].includes(alg)
}

function bytesOf(key: Uint8Array | string): Uint8Array {
  if (key instanceof Uint8Array) return key
  const raw = fromHex(key.startsWith('0x') ? key.slice(2) : key)
  if (!raw) throw new InvalidArgumentError('expected key bytes or their hex')
  return raw
}

/** SEC1 compressed form of a point: the canonical bytes of an EC key (no curve arithmetic). */
function compressed(x: Uint8Array, y: Uint8Array): Uint8Array {
  return concatBytes(new Uint8Array([2 | (y[y.length - 1]! & 1)]), x)
}
