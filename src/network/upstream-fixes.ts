/**
 * How often the wrappers around Noise and yamux (noise.ts, yamux.ts) could apply their fix, and how
 * often they found the library's internals changed and left it alone. Tests read these to notice a
 * libp2p upgrade that silently disabled a fix.
 */
export const upstreamFixes = {
  /** Secured connections whose Noise decoder was replaced. */
  noiseDecodersReplaced: 0,
  /** Secured connections without the expected `decoder` field (left as Noise made them). */
  noiseDecodersKept: 0,
  /** Secured connections whose outgoing messages leave in one buffer each (length and ciphertext). */
  noiseEncodersJoined: 0,
  /** Secured connections without the expected `encrypt` method (left as Noise made them). */
  noiseEncodersKept: 0,
  /** yamux streams that send window updates at half the window. */
  yamuxStreamsLazy: 0,
  /** yamux muxers or streams without the expected internals (left as yamux made them). */
  yamuxStreamsKept: 0,
}
