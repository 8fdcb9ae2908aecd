/**
 * The relay's WebRTC-direct certificate, kept in a file beside its identity, so the `/certhash/` part
 * of its WebRTC-direct address (which browsers must know in advance) survives restarts.
 *
 * Gotchas:
 * - The certificate lives a year and is replaced at start-up when less than 30 days remain: the
 *   certhash then changes, and browsers need the new address (the relay prints it; a browser that
 *   bootstraps over WebSockets learns it from the relay's catalog entry).
 * - The file holds a private key: it is created with mode 0600, like the identity.
 * - A file that is unreadable, or whose certificate or key is damaged, stops the relay
 *   (CertificateFileError) and is left as it is: a new certificate would change the certhash.
 */
import {
  createHash,
  createPrivateKey,
  type KeyObject,
  X509Certificate as NodeX509Certificate,
  webcrypto,
} from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata polyfill.
import 'reflect-metadata'
import { BasicConstraintsExtension, X509Certificate, X509CertificateGenerator } from '@peculiar/x509'
import { MosaikError } from '../platform/node/index.ts'
import { writeSecretFile } from './identity.ts'

/** What `webRTCDirect({ certificate })` takes: PEM private key (PKCS#8), PEM certificate, certhash. */
export interface WebRTCCertificate {
  privateKey: string
  pem: string
  certhash: string
}

const DAY_MS = 24 * 60 * 60 * 1000
export const CERTIFICATE_LIFESPAN_MS = 365 * DAY_MS
export const CERTIFICATE_RENEW_BEFORE_MS = 30 * DAY_MS

/**
 * The certificate file exists but cannot be used (unreadable, or not a matching certificate and key);
 * it is left as it is.
 */
export class CertificateFileError extends MosaikError {
  /** The certificate file. */
  readonly file: string
  constructor(file: string, reason: string, options?: ErrorOptions) {
    super(
      'RELAY_CERTIFICATE',
      `${file} ${reason}. It was left as it is: restore it, or move it away to have a new one created ` +
        '(a new certhash: browsers would need the new WebRTC-direct address)',
      options,
    )
    this.file = file
  }
}

export async function loadOrCreateWebRTCCertificate(
  file: string,
  now = Date.now(),
): Promise<{ certificate: WebRTCCertificate; created: boolean }> {
  let text: string | undefined
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new CertificateFileError(file, `cannot be read (${(err as Error).message})`, { cause: err })
    }
  }
  // A damaged file is refused (parse throws), never replaced: only a sound one near its end is renewed.
  const held = text === undefined ? undefined : parse(file, text)
  if (held !== undefined && held.notAfter - now > CERTIFICATE_RENEW_BEFORE_MS)
    return { certificate: held.certificate, created: false }
  const certificate = await create(now)
  await mkdir(dirname(file), { recursive: true })
  const contents = `${certificate.privateKey}\n${certificate.pem}\n`
  if (!(await writeSecretFile(file, contents, held !== undefined))) {
    // another process created it meanwhile: its certificate is the one browsers get
    return loadOrCreateWebRTCCertificate(file, now)
  }
  return { certificate, created: true }
}

function parse(file: string, text: string): { certificate: WebRTCCertificate; notAfter: number } {
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/.exec(text)?.[0]
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)?.[0]
  if (!key || !pem) throw new CertificateFileError(file, 'does not hold a PEM private key and certificate')
  let cert: X509Certificate
  let checked: NodeX509Certificate
  try {
    cert = new X509Certificate(pem)
    checked = new NodeX509Certificate(pem)
  } catch (err) {
    throw new CertificateFileError(file, 'holds an unreadable certificate', { cause: err })
  }
  // WebRTC-direct would take a damaged key and fail only in the handshakes, where no operator looks.
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(key)
  } catch (err) {
    throw new CertificateFileError(file, 'holds an unreadable private key', { cause: err })
  }
  if (!checked.checkPrivateKey(privateKey))
    throw new CertificateFileError(file, "holds a private key that is not its certificate's")
  return {
    certificate: { privateKey: key, pem, certhash: certhashOf(new Uint8Array(cert.rawData)) },
    notAfter: cert.notAfter.getTime(),
  }
}

async function create(now: number): Promise<WebRTCCertificate> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair
  // Whole seconds: the X.509 encoding drops milliseconds.
  const notBefore = new Date(Math.floor(now / 1000) * 1000)
  const notAfter = new Date(notBefore.getTime() + CERTIFICATE_LIFESPAN_MS)
  const cert = await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString('hex'),
      name: 'CN=mosaik-relay',
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new BasicConstraintsExtension(false, undefined, true)],
    },
    webcrypto as Crypto,
  )
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey))
  const privateKey = [
    '-----BEGIN PRIVATE KEY-----',
    ...(pkcs8.toString('base64').match(/.{1,64}/g) ?? []),
    '-----END PRIVATE KEY-----',
  ].join('\n')
  return { privateKey, pem: cert.toString('pem'), certhash: certhashOf(new Uint8Array(cert.rawData)) }
}

/** The multibase (base64url, `u`) sha2-256 multihash of the DER certificate, as in `/certhash/`. */
export function certhashOf(der: Uint8Array): string {
  const digest = createHash('sha256').update(der).digest()
  return `u${Buffer.concat([Buffer.from([0x12, 0x20]), digest]).toString('base64url')}`
}
