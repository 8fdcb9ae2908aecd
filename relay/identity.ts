/**
 * The relay's identity: an Ed25519 key in a file, so its peer id (and so the `/p2p/<id>` part of
 * every bootstrap address that names it) survives restarts.
 *
 * Gotchas: the file is created with mode 0600 and written atomically (temporary file, then rename);
 * a key file readable by others is used but reported, since whoever reads it can impersonate the relay.
 */
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { MosaikError } from '../platform/node/index.ts'

/** The key file exists but does not hold a libp2p private key. */
export class IdentityFileError extends MosaikError {
  constructor(file: string, options?: ErrorOptions) {
    super('RELAY_IDENTITY', `${file} does not hold a libp2p private key`, options)
  }
}

export interface LoadedIdentity {
  key: PrivateKey
  created: boolean
  /** The file's mode allows group or others to read it. */
  exposed: boolean
}

export async function loadOrCreateIdentity(file: string): Promise<LoadedIdentity> {
  let bytes: Uint8Array | undefined
  try {
    bytes = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (bytes) {
    let key: PrivateKey
    try {
      key = privateKeyFromProtobuf(bytes)
    } catch (err) {
      throw new IdentityFileError(file, { cause: err })
    }
    const mode = (await stat(file)).mode & 0o777
    return { key, created: false, exposed: (mode & 0o077) !== 0 }
  }
  await mkdir(dirname(file), { recursive: true })
  const key = await generateKeyPair('Ed25519')
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
  await chmod(tmp, 0o600) // the umask may have narrowed it further, never widened; make it exact
  await rename(tmp, file)
  return { key, created: true, exposed: false }
}
