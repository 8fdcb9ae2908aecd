import type { DigestLike } from '../primitives/digest.ts'
import type { CollectionsComponents } from './base.ts'
import { type CellOptions, CellReader, CellWriter, OnceReader, OnceWriter } from './cell.ts'
import { type MapOptions, MapReader, MapWriter } from './map.ts'
import { type PriorityQueueOptions, PriorityQueueReader, PriorityQueueWriter } from './priority-queue.ts'
import { type SetOptions, SetReader, SetWriter } from './set.ts'
import { type VecOptions, VecReader, VecWriter } from './vec.ts'

export {
  type CollectionOptions,
  InvalidValueError,
  OutOfRangeError,
  type ValueType,
  type Version,
} from './base.ts'
export { type CellOptions, CellReader, CellWriter, OnceReader, OnceWriter } from './cell.ts'
export { type MapOptions, MapReader, MapWriter } from './map.ts'
export {
  type PriorityQueueOptions,
  PriorityQueueReader,
  PriorityQueueWriter,
  type PriorityRange,
  type QueueEntry,
} from './priority-queue.ts'
export { type SetOptions, SetReader, SetWriter } from './set.ts'
export { type VecOptions, VecReader, VecWriter } from './vec.ts'

/**
 * Replicated collections: each instance is a group named by its store id. Writers vote in it (except
 * in a browser, where they write through the voters as observers); readers join as observers and never
 * vote. Reads are synchronous on the local replica; every mutation returns a `Promise<Version>` that
 * resolves once committed on this node, and any replica can `await when.reaches(version)`.
 *
 * When to use: shared state that every node reads locally and a few nodes write (registries,
 * configuration, order books, leaderboards).
 *
 * Gotchas:
 * - A collection is CP, like its group: without a reachable leader, mutations fail with OfflineError
 *   (carrying the value back) while reads keep serving the local replica.
 * - Keys and values compare by canonical encoding, so objects work as keys; a custom codec must be
 *   deterministic.
 * - A group of readers only has no leader: at least one writer must be running for anything to commit.
 *
 * @example
 * const m = collections.Map.writer<string, number>(net, 'balances')
 * await m.when.online()
 * const v = await m.set('alice', 100)
 * const r = collections.Map.reader<string, number>(other, 'balances')
 * await r.when.reaches(v); r.get('alice') // 100
 */
export const collections = {
  /** Opens a replicated Map by store id. */
  Map: {
    /** A handle that writes: this node votes in the collection's group (a browser writes as an observer). */
    writer: <K, V>(net: CollectionsComponents, storeId: DigestLike, options?: MapOptions<K, V>) =>
      new MapWriter<K, V>(net, storeId, 'writer', options),
    /** A read-only handle: this node replicates as an observer and never votes. */
    reader: <K, V>(net: CollectionsComponents, storeId: DigestLike, options?: MapOptions<K, V>) =>
      new MapReader<K, V>(net, storeId, 'reader', options),
  },
  /** Opens a replicated Vec (a list) by store id. */
  Vec: {
    /** A handle that writes: this node votes in the collection's group (a browser writes as an observer). */
    writer: <T>(net: CollectionsComponents, storeId: DigestLike, options?: VecOptions<T>) =>
      new VecWriter<T>(net, storeId, 'writer', options),
    /** A read-only handle: this node replicates as an observer and never votes. */
    reader: <T>(net: CollectionsComponents, storeId: DigestLike, options?: VecOptions<T>) =>
      new VecReader<T>(net, storeId, 'reader', options),
  },
  /** Opens a replicated Set by store id. */
  Set: {
    /** A handle that writes: this node votes in the collection's group (a browser writes as an observer). */
    writer: <T>(net: CollectionsComponents, storeId: DigestLike, options?: SetOptions<T>) =>
      new SetWriter<T>(net, storeId, 'writer', options),
    /** A read-only handle: this node replicates as an observer and never votes. */
    reader: <T>(net: CollectionsComponents, storeId: DigestLike, options?: SetOptions<T>) =>
      new SetReader<T>(net, storeId, 'reader', options),
  },
  /** Opens a replicated Cell (one value, or empty) by store id. */
  Cell: {
    /** A handle that writes: this node votes in the collection's group (a browser writes as an observer). */
    writer: <T>(net: CollectionsComponents, storeId: DigestLike, options?: CellOptions<T>) =>
      new CellWriter<T>(net, storeId, 'writer', options),
    /** A read-only handle: this node replicates as an observer and never votes. */
    reader: <T>(net: CollectionsComponents, storeId: DigestLike, options?: CellOptions<T>) =>
      new CellReader<T>(net, storeId, 'reader', options),
  },
  /** Opens a replicated Once (a value written at most once) by store id. */
  Once: {
    /** A handle that writes: this node votes in the collection's group (a browser writes as an observer). */
    writer: <T>(net: CollectionsComponents, storeId: DigestLike, options?: CellOptions<T>) =>
      new OnceWriter<T>(net, storeId, 'writer', options),
    /** A read-only handle: this node replicates as an observer and never votes. */
    reader: <T>(net: CollectionsComponents, storeId: DigestLike, options?: CellOptions<T>) =>
      new OnceReader<T>(net, storeId, 'reader', options),
  },
  /** Opens a replicated PriorityQueue by store id. */
  PriorityQueue: {
    /** A handle that writes: this node votes in the collection's group (a browser writes as an observer). */
    writer: <P, K, V>(
      net: CollectionsComponents,
      storeId: DigestLike,
      options?: PriorityQueueOptions<P, K, V>,
    ) => new PriorityQueueWriter<P, K, V>(net, storeId, 'writer', options),
    /** A read-only handle: this node replicates as an observer and never votes. */
    reader: <P, K, V>(
      net: CollectionsComponents,
      storeId: DigestLike,
      options?: PriorityQueueOptions<P, K, V>,
    ) => new PriorityQueueReader<P, K, V>(net, storeId, 'reader', options),
  },
} as const
