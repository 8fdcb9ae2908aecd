import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { type Codec, Digest, encodeCanonical } from '../../platform/node/index.ts'
import { CellMachine } from '../../src/collections/cell.ts'
import type { CollectionMachine } from '../../src/collections/machine.ts'
import { MapMachine } from '../../src/collections/map.ts'
import { PriorityQueueMachine } from '../../src/collections/priority-queue-machine.ts'
import { SetMachine } from '../../src/collections/set.ts'
import { ValueCodec } from '../../src/collections/values.ts'
import { VecMachine } from '../../src/collections/vec.ts'
import { CommandRefusal } from '../../src/groups/state-machine.ts'
import {
  check,
  count,
  decodesOrRefuses,
  hostileBytes,
  PURE_RUNS,
  printCounts,
  timeoutFor,
} from './support.ts'

/**
 * Collection commands as any member may propose them: a collection's key is its public store id, so
 * the bytes in its log are whatever a member sent. Each kind's command codec must refuse what is not
 * one of its commands (DecodeError), and whatever it accepts must apply, or be refused with a
 * MosaikError before it changes anything, and leave two replicas in the same state: no replica skips
 * the commands after it or drifts from the others.
 */

const runs = PURE_RUNS
const timeout = timeoutFor(runs, 2)
const store = Digest.from('fuzz-store')
const codec = new ValueCodec<unknown>()
const b = (v: unknown) => encodeCanonical(v)
const [k1, k2, v1, p1, p2] = [b('a'), b('b'), b(1), b(5), b(9)]

type AnyMachine = CollectionMachine<readonly unknown[]> & { codecs: { command: Codec<readonly unknown[]> } }

/** Each kind: a fresh replica, and commands it takes. */
const KINDS: { name: string; replica: () => AnyMachine; valid: unknown[] }[] = [
  {
    name: 'Map',
    replica: () => new MapMachine(store, codec, codec) as unknown as AnyMachine,
    valid: [['set', k1, v1], ['extend', [[k1, v1]]], ['remove', [k1, k2]], ['cas', k1, null, v1], ['clear']],
  },
  {
    name: 'Set',
    replica: () => new SetMachine(store, codec) as unknown as AnyMachine,
    valid: [['add', k1], ['extend', [k1, k2]], ['remove', [k1]], ['clear']],
  },
  {
    name: 'Vec',
    replica: () => new VecMachine(store, codec) as unknown as AnyMachine,
    valid: [
      ['pushBack', v1],
      ['pushFront', v1],
      ['insert', 0, v1],
      ['extend', [v1, v1]],
      ['popBack'],
      ['remove', 0],
      ['swap', 0, 1],
      ['truncate', 1],
      ['clear'],
    ],
  },
  {
    name: 'Cell',
    replica: () => new CellMachine(store, codec, false) as unknown as AnyMachine,
    valid: [['write', v1], ['cas', null, v1], ['clear']],
  },
  {
    name: 'PriorityQueue',
    replica: () =>
      new PriorityQueueMachine(
        store,
        { p: codec, k: codec, v: codec },
        3,
        undefined,
      ) as unknown as AnyMachine,
    valid: [
      ['insert', p1, k1, v1],
      ['extend', [[p1, k1, v1]]],
      ['updatePriority', k1, p2],
      ['updateValue', k1, v1],
      ['cas', k1, v1, null],
      ['remove', [k1]],
      ['removeRange', [p1, true], null],
      ['clear'],
    ],
  },
]

afterAll(() => printCounts('collections'))

describe('fuzz: collection commands', () => {
  it.each(KINDS)(
    '$name: the codec refuses what is not a command; what it accepts applies alike on two replicas',
    async ({ name, replica, valid }) => {
      const ctx = [{ index: 1, term: 1 }]
      await check(
        `collections ${name}`,
        fc.property(hostileBytes(valid), (bytes) => {
          count(`collections ${name}`)
          const [one, two] = [replica(), replica()]
          // Some state first, so removals and updates find something to work on.
          for (const command of valid.slice(0, 2)) one.applyBatch([command as never], ctx)
          for (const command of valid.slice(0, 2)) two.applyBatch([command as never], ctx)
          const command = decodesOrRefuses(() => one.codecs.command.decode(bytes))
          if (command === undefined) return
          // Only a MosaikError (a priority that does not decode) may refuse it there, before any change.
          decodesOrRefuses(() => one.applyCommand(command, ctx[0]!))
          const [result] = two.applyBatch([two.codecs.command.decode(bytes)], ctx)
          expect(two.snapshot()).toEqual(one.snapshot())
          if (result instanceof CommandRefusal) count(`collections ${name} refused at apply`)
        }),
        runs,
      )
    },
    timeout,
  )
})
