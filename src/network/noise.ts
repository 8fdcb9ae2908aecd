import type { ConnectionEncrypter, SecuredConnection } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { Uint8ArrayList } from 'uint8arraylist'
import { upstreamFixes } from './upstream-fixes.ts'

type NoiseFactory = ReturnType<typeof noise>
type NoiseComponents = Parameters<NoiseFactory>[0]

/** What the wrapper reads and replaces on Noise's decoder (a LengthPrefixedDecoder, not public API). */
interface LengthDecoding {
  lengthDecoder?: (data: { length: number }) => number
}

/** Noise's encrypted stream (EncryptedMessageStream, not public API), as far as the wrapper uses it. */
interface Encrypting {
  decoder?: LengthDecoding
  encrypt?: (chunk: Uint8Array | Uint8ArrayList) => Uint8ArrayList
}

/**
 * libp2p's Noise, with two fixes to its secured connections: the frame decoder kept from throwing, and
 * each outgoing message handed on in one piece.
 *
 * `@libp2p/noise` cuts the incoming byte stream into transport messages with `@libp2p/utils`'
 * LengthPrefixedDecoder, whose loop learns that its buffer is empty by catching the RangeError the
 * 2-byte length reader throws: one Error, stack trace included, for every chunk a connection
 * receives. In a three-node group committing one write at a time over TCP or the memory transport that
 * was 12 % of all CPU. The wrapper gives that decoder a length reader that answers "a whole 64 KiB
 * message" instead of throwing when fewer than 2 bytes are buffered: the loop then waits for more
 * bytes, exactly as after the RangeError. Everything else (handshake, ciphers, limits, the bytes
 * already buffered) stays Noise's own.
 *
 * The wrapper also hands each outgoing transport message to the connection in one piece. Noise
 * encrypts a write into its 2-byte length and its ciphertext, two buffers, and TCP writes each with a
 * syscall of its own (WebSockets sends each as a message of its own): with Nagle off, a 2-byte
 * segment and then the rest, two wake-ups of the reader for every message. Joined, a Raft round trip
 * between two processes over TCP takes one segment each way.
 *
 * Gotchas: `decoder.lengthDecoder` and `encrypt` belong to Noise's EncryptedMessageStream and
 * @libp2p/utils, not to their public API. A connection without them is left as Noise made it (correct,
 * only slower); `upstreamFixes` counts both outcomes and tests/network/upstream-fixes.test.ts pins them.
 */
export function fastNoise(
  init?: Parameters<typeof noise>[0],
): (components: NoiseComponents) => ConnectionEncrypter {
  const make = noise(init)
  return (components) => {
    const inner = make(components)
    const wrapped: ConnectionEncrypter = Object.create(inner)
    wrapped.secureInbound = async (connection, options) =>
      withJoinedWrites(withQuietDecoder(await inner.secureInbound(connection, options)))
    wrapped.secureOutbound = async (connection, options) =>
      withJoinedWrites(withQuietDecoder(await inner.secureOutbound(connection, options)))
    return wrapped
  }
}

/** A length no buffer of fewer than 2 bytes can hold, and within the decoder's limit (4 MiB). */
const NOT_YET = 0xffff

function withQuietDecoder<S extends SecuredConnection<unknown>>(secured: S): S {
  const decoder = (secured.connection as Encrypting).decoder
  const readLength = decoder?.lengthDecoder
  if (decoder === undefined || typeof readLength !== 'function') {
    upstreamFixes.noiseDecodersKept++
    return secured
  }
  upstreamFixes.noiseDecodersReplaced++
  decoder.lengthDecoder = (data) => (data.length < 2 ? NOT_YET : readLength(data))
  return secured
}

/**
 * Up to this many bytes, a write's encrypted messages are copied into one buffer: a copy costs less
 * than the syscall it saves. Larger writes (several 64 KiB messages) go out as Noise made them.
 */
const JOIN_LIMIT = 64 * 1024

function withJoinedWrites<S extends SecuredConnection<unknown>>(secured: S): S {
  const connection = secured.connection as Encrypting
  const encrypt = connection.encrypt
  if (typeof encrypt !== 'function') {
    upstreamFixes.noiseEncodersKept++
    return secured
  }
  upstreamFixes.noiseEncodersJoined++
  connection.encrypt = function (chunk) {
    const out = encrypt.call(this, chunk)
    // subarray() copies only when the list holds more than one buffer.
    return out.byteLength > JOIN_LIMIT ? out : new Uint8ArrayList(out.subarray())
  }
  return secured
}
