/**
 * The Node.js entry of mosaik: the isomorphic core plus real transports (QUIC, TCP, WebSockets and an
 * in-process memory transport for tests) and on-disk identity. QUIC loads lazily (see quic.ts): where
 * its native binding is missing, nodes run on TCP and WebSockets.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { memory } from '@libp2p/memory'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { type Platform, registerPlatform } from '../../src/network/platform.ts'
import { registerNativeEd25519, registerNativeEd25519Signer } from '../../src/primitives/ed25519.ts'
import { registerNativeSha256 } from '../../src/primitives/sha256.ts'
import { lockDir } from './dir-lock.ts'
import { FileLogStore } from './file-log-store.ts'
import { loadQuic, quicTransports, withoutUnavailableQuic } from './quic.ts'
import { checkNodeRuntime } from './runtime.ts'
import { loadWebRTC, webRTCTransports, withoutUnavailableWebRTC } from './webrtc.ts'

export * from '../../src/index.ts'
export { FileLogStore, type FileLogStoreOptions } from './file-log-store.ts'
export { QUIC_UNAVAILABLE_WARNING, quicAvailable } from './quic.ts'
export { checkNodeRuntime } from './runtime.ts'
export { WEBRTC_UNAVAILABLE_WARNING } from './webrtc.ts'

/**
 * The Node.js Platform, registered when this entry is imported: QUIC, TCP, WebSockets, circuit relay,
 * WebRTC and memory transports; the identity and group logs on disk under `dataDir`.
 */
export const nodePlatform: Platform = {
  name: 'node',
  checkRuntime: () => checkNodeRuntime(),
  prepare: async () => {
    await Promise.all([loadQuic(), loadWebRTC()])
  },
  transports: () => [
    ...quicTransports(),
    tcp(),
    webSockets(),
    // Browsers reach a full node through a relay it holds a reservation on (`/p2p-circuit`), then
    // upgrade to a direct WebRTC connection signalled over it (`/webrtc`).
    circuitRelayTransport(),
    ...webRTCTransports(),
    memory(),
  ],
  // `/p2p-circuit` reserves a slot on any relay the node connects to (the relays in its bootstrap
  // list, in practice); with no relay around it does nothing.
  defaultListen: () =>
    withoutUnavailableWebRTC(
      withoutUnavailableQuic(['/ip4/0.0.0.0/udp/0/quic-v1', '/ip4/0.0.0.0/tcp/0', '/p2p-circuit', '/webrtc']),
    ),
  lockDataDir: (dataDir) => lockDir(dataDir, 'data directory'),
  loadIdentity,
  openLogStore: (dataDir, name) => FileLogStore.open(join(dataDir, name)),
}

/** Reads `<dataDir>/identity.key`, creating it (mode 0600) on first use, so a node keeps its id. */
async function loadIdentity(dataDir: string): Promise<PrivateKey> {
  const file = join(dataDir, 'identity.key')
  try {
    return privateKeyFromProtobuf(await readFile(file))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  await mkdir(dataDir, { recursive: true })
  const key = await generateKeyPair('Ed25519')
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
  await rename(tmp, file)
  return key
}

registerPlatform(nodePlatform)
registerNativeSha256((data) => {
  const d = createHash('sha256').update(data).digest()
  return new Uint8Array(d.buffer, d.byteOffset, d.length)
})
// An Ed25519 public key as SubjectPublicKeyInfo DER is this fixed prefix and the 32 raw bytes.
const ED25519_SPKI_PREFIX = Uint8Array.from([
  0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
])
registerNativeEd25519((raw) => {
  const spki = new Uint8Array(ED25519_SPKI_PREFIX.length + raw.length)
  spki.set(ED25519_SPKI_PREFIX)
  spki.set(raw, ED25519_SPKI_PREFIX.length)
  const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' })
  return (data, signature) => signature.length === 64 && verify(null, data, key, signature)
})
// An Ed25519 private key as PKCS #8 DER is this fixed prefix and the 32-byte seed.
const ED25519_PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
])
registerNativeEd25519Signer((raw) => {
  const der = new Uint8Array(ED25519_PKCS8_PREFIX.length + 32)
  der.set(ED25519_PKCS8_PREFIX)
  der.set(raw.subarray(0, 32), ED25519_PKCS8_PREFIX.length)
  const key = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' })
  return (data) => {
    const signature = sign(null, data, key)
    return new Uint8Array(signature.buffer, signature.byteOffset, signature.length)
  }
})
