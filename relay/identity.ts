/**
 * The relay's identity: an Ed25519 key in a file, so its peer id (and so the `/p2p/<id>` part of
 * every bootstrap address that names it) survives restarts.
 *
 * Gotchas:
 * - The file is created with mode 0600, fsynced, and linked into place only where no file is: a key
 *   file is never replaced. One that is unreadable or not a key stops the relay (IdentityFileError):
 *   a fresh key would silently give it another peer id, and strand every peer bootstrapping from it.
 * - A key file readable by others is used but reported, since whoever reads it can impersonate the relay.
 */
import { link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { MosaikError } from '../platform/node/index.ts'

/** The key file exists but cannot be used (unreadable, or not a libp2p private key); it is left as it is. */
export class IdentityFileError extends MosaikError {
  /** The key file. */
  readonly file: string
  constructor(file: string, reason: string, options?: ErrorOptions) {
    super(
      'RELAY_IDENTITY',
      `${file} ${reason}. It was left as it is: restore it, or move it away to start with a new ` +
        'identity (a new peer id: every bootstrap address naming this relay would change)',
      options,
    )
    this.file = file
  }
}

export interface LoadedIdentity {
  key: PrivateKey
  created: boolean
  /** The file's mode allows group or others to read it. */
  exposed: boolean
}

export async function loadOrCreateIdentity(file: string): Promise<LoadedIdentity> {
  const held = await readIdentity(file)
  if (held) return held
  await mkdir(dirname(file), { recursive: true })
  const key = await generateKeyPair('Ed25519')
  if (!(await writeSecretFile(file, privateKeyToProtobuf(key), false))) {
    // another process created it meanwhile: its key is the identity now
    return loadOrCreateIdentity(file)
  }
  return { key, created: true, exposed: false }
}

/** The identity in `file`, or undefined when there is no such file. */
async function readIdentity(file: string): Promise<LoadedIdentity | undefined> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new IdentityFileError(file, `cannot be read (${(err as Error).message})`, { cause: err })
  }
  let key: PrivateKey
  try {
    key = privateKeyFromProtobuf(bytes)
  } catch (err) {
    const what =
      bytes.length === 0 ? 'is empty' : `does not hold a libp2p private key (${(err as Error).message})`
    throw new IdentityFileError(file, what, { cause: err })
  }
  const mode = (await stat(file)).mode & 0o777
  return { key, created: false, exposed: (mode & 0o077) !== 0 }
}

/**
 * Writes `bytes` to `file` with mode 0600, durably: a temporary file, fsynced, then moved into place
 * and the directory fsynced. With `replace` false it is linked into place, so a file that appeared
 * meanwhile is kept: then it returns false.
 */
export async function writeSecretFile(
  file: string,
  bytes: Uint8Array | string,
  replace: boolean,
): Promise<boolean> {
  const tmp = `${file}.${process.pid}.tmp`
  let placed = true
  try {
    await writeSynced(tmp, bytes, 'w')
    if (replace) await rename(tmp, file)
    else placed = await linkNew(tmp, file, bytes)
  } finally {
    await rm(tmp, { force: true })
  }
  await syncDirectory(dirname(file))
  return placed
}

/** Makes a rename or link in `dir` durable; where directories cannot be synced (Windows), skipped. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>>
  try {
    handle = await open(dir, 'r')
  } catch (err) {
    if (unsyncable(err)) return
    throw err
  }
  try {
    await handle.sync()
  } catch (err) {
    if (!unsyncable(err)) throw err
  } finally {
    await handle.close()
  }
}

const unsyncable = (err: unknown) =>
  ['EISDIR', 'EPERM', 'EINVAL'].includes((err as NodeJS.ErrnoException).code ?? '')

/** Links `tmp` to `file` unless a file is there (false); without hard links, writes it exclusively. */
async function linkNew(tmp: string, file: string, bytes: Uint8Array | string): Promise<boolean> {
  try {
    await link(tmp, file)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return false
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw err
  }
  // a file system without hard links (as in dir-lock.ts): a crash may leave it partial, and refused
  try {
    await writeSynced(file, bytes, 'wx')
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
}

async function writeSynced(path: string, bytes: Uint8Array | string, flag: 'w' | 'wx'): Promise<void> {
  const fh = await open(path, flag, 0o600)
  try {
    await fh.writeFile(bytes)
    await fh.chmod(0o600) // the umask may have narrowed it further, never widened; make it exact
    await fh.sync()
  } finally {
    await fh.close()
  }
}
