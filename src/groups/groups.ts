import type { Discovery } from '../discovery/discovery.ts'
import type { NetworkContext } from '../network/context.ts'

/** Options of the groups subsystem, node-wide. */
export type GroupsOptions = {}

/** Availability groups: bonded member meshes running Raft. Placeholder until the subsystem lands. */
export class Groups {
  readonly #ctx: NetworkContext
  readonly #discovery: Discovery

  private constructor(ctx: NetworkContext, discovery: Discovery) {
    this.#ctx = ctx
    this.#discovery = discovery
  }

  static async start(
    ctx: NetworkContext,
    discovery: Discovery,
    _options: GroupsOptions = {},
  ): Promise<Groups> {
    return new Groups(ctx, discovery)
  }

  /** Leaves every group of this node. */
  async stop(): Promise<void> {
    void this.#ctx
    void this.#discovery
  }
}
