import type { AbortOptions } from '../primitives/abort.ts'
import type { Watch } from '../primitives/watch.ts'
import type { Catalog, PeerInfo } from './catalog.ts'

/** What the conditions read: the current catalog. */
interface CatalogSource {
  catalog(): Catalog
}

/**
 * Awaitable conditions on the catalog. Each resolves as soon as it holds (at once if it already does)
 * and takes an AbortSignal.
 */
export class DiscoveryConditions {
  readonly #discovery: CatalogSource
  readonly #changes: Watch<number>

  constructor(discovery: CatalogSource, changes: Watch<number>) {
    this.#discovery = discovery
    this.#changes = changes
  }

  /** Resolves with the catalog once `predicate` holds for it. */
  async catalog(predicate: (catalog: Catalog) => boolean, options?: AbortOptions): Promise<Catalog> {
    await this.#changes.until(() => predicate(this.#discovery.catalog()), options)
    return this.#discovery.catalog()
  }

  /** Resolves once at least `n` peers (optionally matching `filter`) are in the catalog. */
  peers(
    n: number,
    filter: (peer: PeerInfo) => boolean = () => true,
    options?: AbortOptions,
  ): Promise<Catalog> {
    return this.catalog((c) => c.peers().filter(filter).length >= n, options)
  }

  /** Resolves once `peerId` is in the catalog. */
  peer(peerId: string, options?: AbortOptions): Promise<PeerInfo> {
    return this.catalog((c) => c.has(peerId), options).then((c) => c.get(peerId)!)
  }

  /** Resolves once `peerId` is no longer in the catalog. */
  gone(peerId: string, options?: AbortOptions): Promise<Catalog> {
    return this.catalog((c) => !c.has(peerId), options)
  }
}
