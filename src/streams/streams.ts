import type { Discovery } from '../discovery/discovery.ts'
import type { NetworkContext } from '../network/context.ts'

/** Options of the streams subsystem, node-wide. */
export type StreamsOptions = {}

/**
 * Typed pub/sub between the nodes of a network (mosaik's streams). Placeholder until the subsystem
 * lands: it only owns its lifecycle.
 */
export class Streams {
  readonly #ctx: NetworkContext
  readonly #discovery: Discovery

  private constructor(ctx: NetworkContext, discovery: Discovery) {
    this.#ctx = ctx
    this.#discovery = discovery
  }

  static async start(
    ctx: NetworkContext,
    discovery: Discovery,
    _options: StreamsOptions = {},
  ): Promise<Streams> {
    return new Streams(ctx, discovery)
  }

  /** Closes every producer and consumer of this node. */
  async stop(): Promise<void> {
    void this.#ctx
    void this.#discovery
  }
}
