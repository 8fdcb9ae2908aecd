import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { InvalidArgumentError } from '../primitives/errors.ts'

/**
 * Checks an address a node is asked to dial by (bootstrap, `discovery.dial`, `syncWith`): a multiaddr
 * whose last part is `/p2p/<peer id>`, so the peer can be authenticated. Returns the peer id.
 *
 * Gotchas: only the form is checked, never reachability. Throws InvalidArgumentError naming the
 * address and what is wrong with it.
 */
export function checkPeerAddress(address: string, what = 'address'): string {
  if (typeof address !== 'string' || address === '') {
    throw new InvalidArgumentError(
      `${what} ${describe(address)} is not a multiaddr: expected a non-empty string`,
    )
  }
  let components: ReturnType<ReturnType<typeof multiaddr>['getComponents']>
  try {
    components = multiaddr(address).getComponents()
  } catch (err) {
    throw new InvalidArgumentError(`${what} '${address}' is not a multiaddr: ${(err as Error).message}`, {
      cause: err,
    })
  }
  const last = components[components.length - 1]
  if (last?.name !== 'p2p' || last.value === undefined) {
    throw new InvalidArgumentError(
      `${what} '${address}' does not end with /p2p/<peer id>: the peer id is needed to authenticate the peer`,
    )
  }
  return checkPeerId(last.value, `${what} '${address}'`)
}

/** Checks a peer id or a multiaddr ending with `/p2p/<peer id>`; returns the peer id. */
export function checkPeer(peer: string, what = 'peer'): string {
  if (typeof peer === 'string' && peer.startsWith('/')) return checkPeerAddress(peer, `${what} address`)
  try {
    if (typeof peer !== 'string' || peer === '') throw new Error('expected a non-empty string')
    return peerIdFromString(peer).toString()
  } catch (err) {
    throw new InvalidArgumentError(
      `${what} ${describe(peer)} is neither a multiaddr (those start with '/') nor a peer id: ${(err as Error).message}`,
      { cause: err },
    )
  }
}

function checkPeerId(id: string, where: string): string {
  try {
    return peerIdFromString(id).toString()
  } catch (err) {
    throw new InvalidArgumentError(`${where} has an invalid peer id '${id}': ${(err as Error).message}`, {
      cause: err,
    })
  }
}

/** The peer id a multiaddr or id names (`.../p2p/<id>` or a bare id), if it names one. */
export function peerOfAddress(address: string): string | undefined {
  return address.startsWith('/') ? splitPeer(address)?.peer : address
}

/** Drops a trailing `/p2p/<id>` so the peer store records a transport address. */
export function stripPeer(address: string): string {
  return splitPeer(address)?.transport ?? address
}

/** A multiaddr ending with `/p2p/<id>`, split into the address before it and the id. */
function splitPeer(address: string): { transport: string; peer: string } | undefined {
  const i = address.lastIndexOf('/p2p/')
  if (i < 0) return undefined
  const peer = address.slice(i + 5)
  return peer.includes('/') ? undefined : { transport: address.slice(0, i), peer }
}

function describe(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : String(value)
}
