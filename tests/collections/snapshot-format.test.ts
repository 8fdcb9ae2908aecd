/** The packed snapshot format collections share: items of byte strings, each behind a varint length. */
import { serialize } from 'node:v8'
import { describe, expect, it } from 'vitest'
import { DecodeError, Digest } from '../../platform/node/index.ts'
import { CommandReader, packItems, SNAPSHOT_FORMAT, unpackItems } from '../../src/collections/machine.ts'
import { PriorityQueueMachine } from '../../src/collections/priority-queue-machine.ts'
import { SetMachine } from '../../src/collections/set.ts'
import { keyBytes, latin1, ValueCodec } from '../../src/collections/values.ts'
import { VecMachine } from '../../src/collections/vec.ts'

const bytes = (n: number, fill = 7) => new Uint8Array(n).fill(fill)

describe('collection snapshot format', () => {
  it('packs items behind shortest-form varint lengths and unpacks them', () => {
    const items = [0, 1, 127, 128, 300, 20_000].map((n) => [bytes(n), bytes(1, n & 0xff)])
    const packed = packItems(2, items)
    expect(unpackItems(2, packed)).toEqual(items)
    expect([...packItems(1, [[bytes(300)]]).subarray(0, 4)]).toEqual([SNAPSHOT_FORMAT, 1, 0xac, 0x02])
  })

  it('refuses a cut varint, a longer form and a length past the end', () => {
    const head = [SNAPSHOT_FORMAT, 1]
    for (const tail of [
      [0x80],
      [0x81, 0x00, 7],
      [0x05, 1, 2],
      [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ]) {
      expect(() => unpackItems(1, new Uint8Array([...head, ...tail])), String(tail)).toThrow(DecodeError)
    }
    expect(() => unpackItems(2, new Uint8Array([SNAPSHOT_FORMAT, 2, 0]))).toThrow(DecodeError) // half an item
  })
})

describe('byte strings as latin1 strings', () => {
  // Every byte value, in runs long enough for the native decoder, which differs from latin1 at
  // 0x80-0x9f; and in short runs, which are sliced out of the whole.
  const every = Uint8Array.from({ length: 512 }, (_, i) => i & 0xff)
  const byHand = (b: Uint8Array) => Array.from(b, (c) => String.fromCharCode(c)).join('')

  it('maps each byte to the character of the same code, short or long, sliced or not', () => {
    for (const [start, end] of [
      [0, 512],
      [0x80, 0xa0],
      [0x7e, 0x82],
      [0x9f, 0xa1],
      [3, 3],
      [0x85, 0x85 + 12],
      [0x85, 0x85 + 13],
    ] as const) {
      const expected = byHand(every.subarray(start, end))
      expect(latin1(every, start, end)).toBe(expected)
      expect(keyBytes(expected)).toEqual(every.subarray(start, end))
    }
    const ascii = new TextEncoder().encode('plain ascii, long enough for the native decoder')
    expect(latin1(ascii, 0, ascii.length)).toBe(byHand(ascii))
    // Kept one byte per character (V8 serializes such a string with the tag '"'), as replicas hold
    // 100k of these keys: a two-byte string would double them.
    expect(serialize(latin1(every, 0, 512))[2]).toBe(0x22)
  })

  it('reads the byte strings of a command as views of its bytes', () => {
    // [h'80 81 … 9f', h'00 … 0b'] in canonical CBOR: two byte strings in an array.
    const high = every.subarray(0x80, 0xa0)
    const low = every.subarray(0, 12)
    const command = new Uint8Array([0x82, 0x58, high.length, ...high, 0x40 | low.length, ...low])
    const r = new CommandReader(command)
    r.array(2)
    const [a, b] = [r.byteString(), r.byteString()]
    expect([a, b]).toEqual([high, low])
    expect(a.buffer).toBe(command.buffer)
    expect(r.at).toBe(command.length)
  })
})

describe('Set commands', () => {
  const commands = new SetMachine(Digest.zero(), new ValueCodec<string>()).codecs.command
  const [a, b, c] = ['a', 'bb', ''].map((s) => new TextEncoder().encode(s))

  it('read the members of an extend as ranges of the command, and the others as views', () => {
    const extend = commands.encode(['extend', [a!, b!, c!]])
    const decoded = commands.decode(extend)
    expect(decoded[0]).toBe('extend')
    const { bytes, ranges } = decoded[1] as { bytes: Uint8Array; ranges: Int32Array }
    expect(bytes).toBe(extend)
    expect([0, 2, 4].map((j) => bytes.slice(ranges[j], ranges[j + 1]))).toEqual([a, b, c])
    // Encoded again, ranges are the list they were read from: the same bytes.
    expect(commands.encode(decoded)).toEqual(extend)
    const others: Parameters<typeof commands.encode>[0][] = [['add', b!], ['remove', [a!, c!]], ['clear']]
    for (const command of others) {
      expect(commands.decode(commands.encode(command))).toEqual(command)
    }
  })

  it('leave a command in another form to the strict decoder, which refuses a malformed one', () => {
    // ["add", h'61'] with the array header in a longer form than canonical: the reader gives up, and
    // the strict decoder refuses the non-minimal header.
    const longer = new Uint8Array([0x98, 0x02, 0x63, 0x61, 0x64, 0x64, 0x41, 0x61])
    expect(() => commands.decode(longer)).toThrow(DecodeError)
    const trailing = new Uint8Array([...commands.encode(['add', a!]), 0x00])
    expect(() => commands.decode(trailing)).toThrow(DecodeError)
    // An extend claiming more members than it has bytes for.
    expect(() =>
      commands.decode(new Uint8Array([0x82, 0x66, ...new TextEncoder().encode('extend'), 0x99, 0xff, 0xff])),
    ).toThrow(DecodeError)
  })
})

describe('PriorityQueue commands', () => {
  const codec = new ValueCodec<string>()
  const commands = new PriorityQueueMachine(Digest.zero(), { p: codec, k: codec, v: codec }, 10, undefined)
    .codecs.command
  const [a, b, c] = ['a', 'bb', ''].map((s) => new TextEncoder().encode(s))

  it('read the triples of an extend as ranges of the command, an insert as views, the others strictly', () => {
    const extend = commands.encode([
      'extend',
      [
        [a!, b!, c!],
        [c!, a!, b!],
      ],
    ])
    const decoded = commands.decode(extend)
    expect(decoded[0]).toBe('extend')
    const { bytes, ranges } = decoded[1] as { bytes: Uint8Array; ranges: Int32Array }
    expect(bytes).toBe(extend)
    expect([0, 2, 4, 6, 8, 10].map((j) => bytes.slice(ranges[j], ranges[j + 1]))).toEqual([a, b, c, c, a, b])
    // Encoded again, ranges are the list they were read from: the same bytes.
    expect(commands.encode(decoded)).toEqual(extend)
    const insert = commands.encode(['insert', a!, b!, c!])
    const read = commands.decode(insert)
    expect(read).toEqual(['insert', a, b, c])
    expect((read[1] as Uint8Array).buffer).toBe(insert.buffer)
    const others: Parameters<typeof commands.encode>[0][] = [
      ['updatePriority', a!, b!],
      ['updateValue', a!, c!],
      ['cas', a!, b!, null],
      ['remove', [a!, c!]],
      ['removeRange', [a!, true], null],
      ['clear'],
    ]
    for (const command of others) expect(commands.decode(commands.encode(command))).toEqual(command)
  })

  it('leave a command in another form to the strict decoder, which refuses a malformed one', () => {
    const trailing = new Uint8Array([...commands.encode(['insert', a!, b!, c!]), 0x00])
    expect(() => commands.decode(trailing)).toThrow(DecodeError)
    // An extend claiming more triples than it has bytes for.
    expect(() =>
      commands.decode(new Uint8Array([0x82, 0x66, ...new TextEncoder().encode('extend'), 0x99, 0xff, 0xff])),
    ).toThrow(DecodeError)
    // A triple of two: the reader gives up, the strict decoder reads it, and its shape is refused.
    const pair = commands.encode(['extend', [[a!, b!] as never]])
    expect(() => commands.decode(pair)).toThrow(DecodeError)
  })
})

describe('PriorityQueue snapshots', () => {
  it('pack exactly the triples of their entries in ascending order', () => {
    const codec = new ValueCodec<number>()
    const q = new PriorityQueueMachine(Digest.zero(), { p: codec, k: codec, v: codec }, 10, undefined)
    const e = (n: number) => codec.encodeUnchecked(n)
    q.applyCommand([
      'extend',
      [
        [e(5), e(1), e(10)],
        [e(-1), e(2), e(20)],
        [e(5), e(3), e(300)],
      ],
    ])
    expect(q.snapshot()).toEqual(
      packItems(3, [
        [e(-1), e(2), e(20)],
        [e(5), e(1), e(10)],
        [e(5), e(3), e(300)],
      ]),
    )
  })
})

describe('Vec commands and snapshots', () => {
  const codec = new ValueCodec<string>()
  const vec = () => new VecMachine(Digest.zero(), codec)
  const commands = vec().codecs.command
  const [a, b, c] = ['a', 'bb', ''].map((s) => codec.encodeUnchecked(s))

  it('read the elements of an extend as ranges of the command, a push as a view, the others strictly', () => {
    const extend = commands.encode(['extend', [a!, b!, c!]])
    const decoded = commands.decode(extend)
    const { bytes, ranges } = decoded[1] as { bytes: Uint8Array; ranges: Int32Array }
    expect(bytes).toBe(extend)
    expect([0, 2, 4].map((j) => bytes.slice(ranges[j], ranges[j + 1]))).toEqual([a, b, c])
    expect(commands.encode(decoded)).toEqual(extend)
    const push = commands.encode(['pushFront', b!])
    expect(commands.decode(push)).toEqual(['pushFront', b])
    const others: Parameters<typeof commands.encode>[0][] = [
      ['pushBack', a!],
      ['insert', 1, c!],
      ['popFront'],
      ['remove', 0],
      ['swap', 0, 1],
      ['truncate', 2],
      ['clear'],
    ]
    for (const command of others) expect(commands.decode(commands.encode(command))).toEqual(command)
    const trailing = new Uint8Array([...commands.encode(['pushBack', a!]), 0x00])
    expect(() => commands.decode(trailing)).toThrow(DecodeError)
  })

  it('pack exactly the items of their elements, and read them back, from the log or from a snapshot', () => {
    const v = vec()
    v.applyCommand(commands.decode(commands.encode(['extend', [a!, b!]])))
    v.applyCommand(['pushFront', c!])
    const snapshot = v.snapshot()
    expect(snapshot).toEqual(packItems(1, [[c!], [a!], [b!]]))
    const restored = vec()
    restored.restore(snapshot)
    expect(restored.items.map((i) => i.value)).toEqual(['', 'a', 'bb'])
    expect(restored.snapshot()).toEqual(snapshot)
    expect(() => restored.restore(packItems(2, [[a!, b!]]))).toThrow(DecodeError)
    expect(restored.items.map((i) => i.value)).toEqual(['', 'a', 'bb'])
  })
})
