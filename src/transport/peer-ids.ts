import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'

/**
 * Parses a peer id from its string form, remembering the most recent ones. Throws like
 * `peerIdFromString` for a string that is not a peer id.
 *
 * Why: discovery looks up the same peers thousands of times while a network forms (an entry's
 * provenance, its connections, its signing key), and each parse is a base58 decode, after which
 * libp2p base58-encodes the fresh PeerId again to key its connection map. A remembered PeerId has
 * both done once. PeerIds are immutable values, so one cache serves every node of the process.
 */
export function peerIdOf(id: string): PeerId {
  let peer = cache.get(id)
  if (peer === undefined) {
    peer = peerIdFromString(id)
    peer.toString() // computes and keeps its string form, which libp2p's maps key by
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!)
    cache.set(id, peer)
  }
  return peer
}

/** Peer ids remembered at most; past it the oldest parsed is forgotten first. */
const MAX_CACHED = 4096
const cache = new Map<string, PeerId>()
