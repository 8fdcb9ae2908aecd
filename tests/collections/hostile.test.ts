/**
 * A member that proposes what is not a command. A collection's group key is its public store id, so
 * without tickets any peer of the network can join it and propose any bytes. The writers' replicas
 * refuse such commands (they do not decode to one of the collection's commands), apply everything
 * else, and stay identical.
 */
import { describe, expect, it } from 'vitest'
import {
  CommandRefusedError,
  collections,
  Digest,
  decodeCanonical,
  encodeCanonical,
  GroupKey,
} from '../../platform/node/index.ts'
import { within } from '../support/time.ts'
import { consensus, groupOf, online, reach, sid, T, useNodes } from './support.ts'

const pool = useNodes(3)

describe('collections and a hostile member', () => {
  it('a Map refuses commands of the wrong shape from a member, and its replicas stay identical', async () => {
    const [n0, n1, n2] = pool.nets
    const id = sid()
    const writers = [n0!, n1!].map((n) =>
      pool.track(collections.Map.writer<string, number>(n, id, { consensus })),
    )
    await online(...writers)
    const before = await writers[0]!.set('a', 1)
    await reach(before, ...writers)

    // The Map's group, joined with a machine of the same signature that proposes whatever it is given.
    const { signature } = groupOf(writers[0]!).stateMachine as unknown as { signature: Digest }
    const rogue = await n2!.groups.join({
      key: GroupKey.fromSecret(Digest.from(id)),
      consensus,
      stateMachine: {
        signature,
        codecs: { command: { encode: encodeCanonical, decode: decodeCanonical } },
        apply: () => undefined,
        query: () => null,
        snapshot: () => new Uint8Array(0),
        restore: () => {},
      },
    })
    await within(T, rogue.when.online(), 'the rogue member is online')
    const garbage: unknown[] = [
      ['remove', 5],
      ['set', 'a', 'b'],
      ['extend', [[new Uint8Array(1)]]],
      ['cas', new Uint8Array(1)],
      ['drop-table'],
      { set: 1 },
      'clear',
    ]
    // Sent together with an honest write, so they share the writers' runs of commits.
    const [, honest] = await Promise.all([
      Promise.allSettled(garbage.map((g) => rogue.execute(g))),
      writers[1]!.set('b', 2),
    ])
    const last = await writers[0]!.set('c', 3)
    await reach(last, ...writers)
    for (const w of writers) {
      expect(Object.fromEntries(w.entries())).toEqual({ a: 1, b: 2, c: 3 })
      expect(w.version).toBe(last)
    }
    expect(honest).toBeLessThan(last)
    // The writers saw each of them committed and refused.
    const refusedAt = await Promise.allSettled(garbage.map((g) => groupOf(writers[0]!).execute(g as never)))
    for (const r of refusedAt) {
      expect(r.status).toBe('rejected')
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(CommandRefusedError)
    }
  })
})
