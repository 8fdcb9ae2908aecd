import * as v8 from 'node:v8'
import * as vm from 'node:vm'
import fc from 'fast-check'
import * as varint from 'uint8-varint'
import { expect } from 'vitest'
import {
  CloseCode,
  decodeCanonical,
  encodeCanonical,
  type LinkClose,
  MosaikError,
} from '../../platform/node/index.ts'
import { FrameDecoder } from '../../src/transport/frame-decoder.ts'
import type { Link } from '../../src/transport/link.ts'
import { secs, within } from '../support/time.ts'

/**
 * Shared pieces of the fuzz suite: case counts and seeds from the environment, arbitraries for bytes,
 * CBOR values and mutations of valid encodings, the decoder contract, raw Link frames, and the checks
 * every attacked link must pass (a close code from the victim within a deadline, bounded memory, no
 * unhandled errors).
 *
 * - `MOSAIK_FUZZ_RUNS`: cases per property of the pure decoders and per protocol end to end (default:
 *   PURE_RUNS and WIRE_RUNS below, sized so the whole suite stays within a minute on two cores).
 * - `MOSAIK_FUZZ_SEED`: the base seed (default FUZZ_SEED); a failure prints the seed and the path of the
 *   shrunk case, so `MOSAIK_FUZZ_SEED=<seed> MOSAIK_FUZZ_PATH=<path> npx vitest run tests/fuzz -t <name>`
 *   replays it (with `MOSAIK_FUZZ_LANE=<lane>` for a property run in lanes, as the message says).
 */

function envInt(name: string): number | undefined {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return undefined
  const n = Number(raw)
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${raw}`)
  return n
}

const RUNS = envInt('MOSAIK_FUZZ_RUNS')
export const FUZZ_SEED = envInt('MOSAIK_FUZZ_SEED') ?? 0x6d6f7361
const FUZZ_PATH = process.env.MOSAIK_FUZZ_PATH || undefined
/** With a path, the one lane that replays it; the other lanes stand by. */
const FUZZ_LANE = envInt('MOSAIK_FUZZ_LANE') ?? 0
/** Cases per property of a pure decoder. */
export const PURE_RUNS = RUNS ?? 2000
/** Attacked links per protocol, end to end. */
export const WIRE_RUNS = RUNS ?? 300

/** A test timeout that grows with the case count, so the long mode (`npm run fuzz`) is not cut short. */
export function timeoutFor(runs: number, msPerCase: number): number {
  return Math.max(secs(60), secs((runs * msPerCase) / 1000) * 3)
}

/** How many cases each property ran, by name; printed at the end of a file. */
export const counts = new Map<string, number>()

export function count(name: string, n = 1): void {
  counts.set(name, (counts.get(name) ?? 0) + n)
}

export function printCounts(file: string): void {
  const lines = [...counts].map(([name, n]) => `  ${name}: ${n}`)
  console.log(`fuzz cases (${file}, seed ${FUZZ_SEED}):\n${lines.join('\n')}`)
}

/**
 * Runs a property with the suite's seed; on failure the error names the seed and the replay path.
 * `lane` offsets the seed, for properties run side by side against one victim.
 */
export async function check<Ts extends [unknown, ...unknown[]]>(
  name: string,
  property: fc.IAsyncProperty<Ts> | fc.IProperty<Ts>,
  numRuns: number,
  lane = 0,
): Promise<void> {
  const seed = FUZZ_SEED + lane
  // A replay path belongs to one lane's seed: any other lane would fail to follow it.
  if (FUZZ_PATH !== undefined && lane !== FUZZ_LANE) return
  try {
    await fc.assert(property, { seed, numRuns, path: FUZZ_PATH, endOnFailure: FUZZ_PATH !== undefined })
  } catch (err) {
    const message = (err as Error).message
    throw new Error(
      `fuzz property "${name}" failed (seed ${seed}${lane ? `, lane ${lane} of base ${FUZZ_SEED}` : ''}); ` +
        `replay: MOSAIK_FUZZ_SEED=${FUZZ_SEED}${lane ? ` MOSAIK_FUZZ_LANE=${lane}` : ''} MOSAIK_FUZZ_PATH=<path below> ` +
        `npx vitest run tests/fuzz -t "${name}"\n${message}`,
      { cause: err },
    )
  }
}

// ---- the decoder contract ------------------------------------------------------------------------

/** Longest a single decode may take before it counts as a hang (generous: GC pauses, a busy machine). */
const SLOW_DECODE_MS = 500

/**
 * Runs one decode: it must return or throw a MosaikError (DecodeError and its kin), never a TypeError,
 * RangeError or anything else, and must not take long. Returns the value, or undefined when refused.
 */
export function decodesOrRefuses<T>(decode: () => T): T | undefined {
  const started = performance.now()
  let value: T | undefined
  try {
    value = decode()
  } catch (err) {
    if (!(err instanceof MosaikError)) throw err
  }
  const took = performance.now() - started
  if (took > SLOW_DECODE_MS) throw new Error(`decode took ${took.toFixed(0)} ms`)
  return value
}

/** The async form, for decoders that verify signatures. */
export async function decodesOrRefusesAsync<T>(decode: () => Promise<T>): Promise<T | undefined> {
  const started = performance.now()
  let value: T | undefined
  try {
    value = await decode()
  } catch (err) {
    if (!(err instanceof MosaikError)) throw err
  }
  const took = performance.now() - started
  if (took > SLOW_DECODE_MS) throw new Error(`decode took ${took.toFixed(0)} ms`)
  return value
}

// ---- arbitraries ---------------------------------------------------------------------------------

/** Arbitrary bytes. */
export const anyBytes = (maxLength = 256) => fc.uint8Array({ maxLength })

/** Numbers that sit on the edges the decoders check: limits of safe integers, 2^48, negatives, floats. */
const edgeNumbers = fc.constantFrom(
  0,
  1,
  2,
  3,
  -1,
  0.5,
  -0,
  2 ** 31,
  2 ** 32,
  2 ** 48,
  2 ** 48 - 1,
  2 ** 53,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
)

/** Strings that are property names of arrays and objects: lookups by them must not find methods. */
const trickyStrings = fc.constantFrom(
  'length',
  'map',
  'constructor',
  '__proto__',
  'toString',
  'prototype',
  '',
)

const leaf: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  edgeNumbers,
  fc.double(),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.string({ maxLength: 24 }),
  trickyStrings,
  fc.uint8Array({ maxLength: 40 }),
  fc.uint8Array({ minLength: 32, maxLength: 32 }),
  fc.uint8Array({ minLength: 64, maxLength: 64 }),
)

/** Arbitrary values canonical CBOR can carry: what a peer can make any decoder see. */
export const cborValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('value'), { maxLength: 6 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), trickyStrings), tie('value'), { maxKeys: 4 }),
    fc
      .array(fc.tuple(fc.oneof(fc.integer(), fc.string({ maxLength: 6 })), tie('value')), { maxLength: 3 })
      .map((entries) => new Map(entries)),
  ),
})).value

type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; byte: number }
  | { op: 'truncate'; at: number }
  | { op: 'extend'; bytes: Uint8Array }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; n: number }
  | { op: 'repeat'; at: number; n: number }

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte: fc.nat(255) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }),
  }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('repeat' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }),
)

function applyMutation(b: Uint8Array, m: Mutation): Uint8Array {
  const at = b.length === 0 ? 0 : 'at' in m ? m.at % b.length : 0
  switch (m.op) {
    case 'flip': {
      if (b.length === 0) return b
      const out = b.slice()
      out[at] = out[at]! ^ (1 << m.bit)
      return out
    }
    case 'set': {
      if (b.length === 0) return b
      const out = b.slice()
      out[at] = m.byte
      return out
    }
    case 'truncate':
      return b.slice(0, at)
    case 'extend':
      return concat(b, m.bytes)
    case 'insert':
      return concat(b.subarray(0, at), m.bytes, b.subarray(at))
    case 'delete':
      return concat(b.subarray(0, at), b.subarray(at + m.n))
    case 'repeat':
      return concat(b.subarray(0, at + m.n), b.subarray(at))
  }
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let off = 0
  for (const p of parts) {
    out.set(p, off)
    off += p.length
  }
  return out
}

/** Valid encodings with one to four mutations: bit flips, overwrites, truncation, extension, splices. */
export function mutatedBytes(valid: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.constantFrom(...valid), fc.array(mutation, { minLength: 1, maxLength: 4 }))
    .map(([base, ms]) => ms.reduce(applyMutation, base))
}

/** A copy of `value` with the element at `path` (array indices, taken modulo the length) changed. */
function reshape(value: unknown, path: readonly number[], edit: (v: unknown) => unknown): unknown {
  if (path.length === 0 || !Array.isArray(value) || value.length === 0) return edit(value)
  const [head, ...rest] = path
  const i = head! % value.length
  const out = value.slice()
  out[i] = reshape(value[i], rest, edit)
  return out
}

/**
 * Valid wire values with a type swapped somewhere inside (an element replaced by an arbitrary value),
 * an element dropped, or one appended.
 */
export function swappedValues(valid: readonly unknown[]): fc.Arbitrary<unknown> {
  const edit = fc.oneof(
    cborValue.map((replacement) => (_: unknown) => replacement),
    fc.constant((v: unknown) => (Array.isArray(v) ? v.slice(0, -1) : v)),
    cborValue.map((extra) => (v: unknown) => (Array.isArray(v) ? [...v, extra] : [v, extra])),
  )
  return fc
    .tuple(fc.constantFrom(...valid), fc.array(fc.nat(), { maxLength: 4 }), edit)
    .map(([v, path, e]) => reshape(v, path, e))
}

/**
 * Every way a peer can hand a decoder a value: arbitrary values, valid values with a type swapped,
 * and whatever mutated valid encodings still decode to.
 */
export function hostileValues(valid: readonly unknown[]): fc.Arbitrary<unknown> {
  const encodings = valid.map((v) => encodeCanonical(v))
  return fc.oneof(
    cborValue,
    swappedValues(valid),
    mutatedBytes(encodings).map((b) => {
      try {
        return decodeCanonical(b)
      } catch {
        return b
      }
    }),
  )
}

/** Every way a peer can hand a decoder bytes: arbitrary bytes, mutated and re-encoded valid values. */
export function hostileBytes(valid: readonly unknown[]): fc.Arbitrary<Uint8Array> {
  const encodings = valid.map((v) => encodeCanonical(v))
  return fc.oneof(
    anyBytes(),
    mutatedBytes(encodings),
    swappedValues(valid).map((v) => encodeCanonical(v)),
    cborValue.map((v) => encodeCanonical(v)),
  )
}

// ---- raw Link frames -----------------------------------------------------------------------------

export const KIND_MESSAGE = 0
export const KIND_CLOSE = 1
export const KIND_CREDIT = 2

/** A Link frame as it travels: `varint(length) ‖ kind ‖ body`. */
export function frame(kind: number, body: Uint8Array): Uint8Array {
  return concat(varint.encode(body.length + 1), new Uint8Array([kind]), body)
}

/**
 * One step of an attack, written to the stream under the attacker's Link (so none of the Link's own
 * checks apply). `end` steps stop the sequence: after them the victim can only time out or refuse.
 */
export type Step =
  | { t: 'message'; body: Uint8Array }
  | { t: 'kind'; kind: number; body: Uint8Array }
  | { t: 'credit'; body: Uint8Array }
  | { t: 'raw'; bytes: Uint8Array }
  | { t: 'truncated'; body: Uint8Array; cut: number }
  | { t: 'oversized'; length: number }

/** Steps of framing-level abuse, around message bodies drawn from `bodies`. */
export function steps(bodies: fc.Arbitrary<Uint8Array>, maxFrameSize: number): fc.Arbitrary<Step> {
  return fc.oneof(
    { weight: 6, arbitrary: bodies.map((body) => ({ t: 'message' as const, body })) },
    {
      weight: 1,
      arbitrary: fc.record({
        t: fc.constant('kind' as const),
        kind: fc.integer({ min: 3, max: 255 }),
        body: anyBytes(32),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        t: fc.constant('credit' as const),
        body: fc.oneof(
          anyBytes(12),
          fc.nat().map((n) => varint.encode(n)),
        ),
      }),
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('raw' as const), bytes: anyBytes(64) }) },
    {
      weight: 1,
      arbitrary: fc.record({ t: fc.constant('truncated' as const), body: bodies, cut: fc.nat() }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        t: fc.constant('oversized' as const),
        length: fc.oneof(
          fc.constant(maxFrameSize + 2),
          fc.integer({ min: maxFrameSize + 2, max: 2 ** 31 }),
          fc.constant(2 ** 53 - 1),
        ),
      }),
    },
  )
}

/** The bytes of one step. */
export function stepBytes(step: Step): Uint8Array {
  switch (step.t) {
    case 'message':
      return frame(KIND_MESSAGE, step.body)
    case 'kind':
      return frame(step.kind, step.body)
    case 'credit':
      return frame(KIND_CREDIT, step.body)
    case 'raw':
      return step.bytes
    case 'truncated': {
      const full = frame(KIND_MESSAGE, step.body)
      return full.subarray(0, step.cut % full.length)
    }
    case 'oversized':
      return varint.encode(step.length)
  }
}

/**
 * Writes steps to the stream under `link` as the remote would see them, in order, in one write each.
 * Returns whether the bytes, read as the victim's Link reads them, hold a CLOSE frame: pieces of
 * truncated and raw steps can join into one, and then the attacker closed first.
 */
export function writeSteps(link: Link, list: readonly Step[]): { wroteClose: boolean } {
  const written: Uint8Array[] = []
  for (const step of list) {
    if (link.stream.writeStatus !== 'writable') break
    const bytes = stepBytes(step)
    try {
      link.stream.send(bytes)
    } catch {
      break
    }
    written.push(bytes)
  }
  return { wroteClose: holdsCloseFrame(concat(...written)) }
}

/**
 * Whether `bytes`, split by the Link's own FrameDecoder, reach a CLOSE frame before anything the Link
 * refuses. The decoder's limits are left open: the steps written are too short to complete a frame
 * over any victim's limit, so such a frame ends the bytes either way.
 */
function holdsCloseFrame(bytes: Uint8Array): boolean {
  const decoder = new FrameDecoder({
    maxDataLength: Number.MAX_SAFE_INTEGER,
    maxBufferSize: Number.MAX_SAFE_INTEGER,
  })
  try {
    for (const body of decoder.decode(bytes)) {
      const kind = body[0]
      if (kind === KIND_CLOSE) return true
      if (kind === KIND_CREDIT) varint.decode(body.subarray(1))
      else if (kind !== KIND_MESSAGE) return false
    }
  } catch {
    return false
  }
  return false
}

/** Close codes a victim answers an attack with: every one but a bare end of stream. */
const VICTIM_CODES = new Set<number>(Object.values(CloseCode).filter((c) => c !== CloseCode.UnexpectedClose))

/**
 * The attacked link closes from the victim's side, with a numbered code (never a bare reset), within
 * `timeoutMs`. `allowed`, when given, narrows the codes; `written` is what writeSteps returned.
 */
export async function expectVictimCloses(
  link: Link,
  timeoutMs: number,
  allowed?: ReadonlySet<number>,
  written?: { wroteClose: boolean },
): Promise<LinkClose> {
  const close = await within(timeoutMs, link.closed, 'the victim closes the attacked link')
  // The attacker's bytes held a CLOSE frame: the victim may just end its side, as for any peer that closes.
  if (written?.wroteClose && close.code === CloseCode.UnexpectedClose) return close
  expect(close.remote, `closed locally: ${close.code} ${close.reason}`).toBe(true)
  expect(VICTIM_CODES.has(close.code), `bare or unknown close ${close.code}: ${close.reason}`).toBe(true)
  if (allowed) expect(allowed.has(close.code), `unexpected close ${close.code}: ${close.reason}`).toBe(true)
  return close
}

// ---- crashes and memory --------------------------------------------------------------------------

/** Records unhandled rejections and uncaught exceptions while a file runs. */
export function watchCrashes(): { errors: unknown[]; stop(): void } {
  const errors: unknown[] = []
  const onError = (err: unknown) => errors.push(err)
  process.on('unhandledRejection', onError)
  process.on('uncaughtException', onError)
  return {
    errors,
    stop() {
      process.off('unhandledRejection', onError)
      process.off('uncaughtException', onError)
    },
  }
}

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

/**
 * Samples the heap and array buffers over a run. `bounded()` checks that what stays after a final
 * collection grew less than `maxGrowthMiB` over the baseline: an attack may cost work, never memory
 * that outlives it; and that what was live during the run peaked below `maxPeakMiB`.
 *
 * Why the peak is taken after a pause for timers and a collection: cases that run back to back in
 * microtasks hold off timers, and libp2p lets go of what it used for a stream (the peer store's lock
 * queues) in 1 ms timers. Sampled in the middle of such a run, `heapUsed` counted what was waiting for
 * them and V8's uncollected garbage, and grew with the number of cases (600-700 MiB over 100 000
 * attacked links, 56 MiB once timers ran for 100 ms), measuring the harness rather than the SDK.
 */
export class MemoryWatch {
  readonly #baseline: { heap: number; buffers: number }
  #peak = { heap: 0, buffers: 0 }
  #samples = 0

  constructor() {
    gc()
    const m = process.memoryUsage()
    this.#baseline = { heap: m.heapUsed, buffers: m.arrayBuffers }
  }

  async sample(): Promise<void> {
    // Every 1 024th case, the first included: timers run, a collection, then what is live.
    if (this.#samples++ % 1024 !== 0) return
    await new Promise((resolve) => setTimeout(resolve, 5))
    gc()
    const m = process.memoryUsage()
    this.#peak = {
      heap: Math.max(this.#peak.heap, m.heapUsed),
      buffers: Math.max(this.#peak.buffers, m.arrayBuffers),
    }
  }

  expectBounded(maxGrowthMiB: number, maxPeakMiB = 512): void {
    gc()
    const m = process.memoryUsage()
    const mib = (n: number) => n / 1024 / 1024
    const growth = {
      heap: mib(m.heapUsed - this.#baseline.heap),
      buffers: mib(m.arrayBuffers - this.#baseline.buffers),
    }
    expect(growth.heap, `heap grew ${growth.heap.toFixed(1)} MiB`).toBeLessThan(maxGrowthMiB)
    expect(growth.buffers, `array buffers grew ${growth.buffers.toFixed(1)} MiB`).toBeLessThan(maxGrowthMiB)
    expect(mib(this.#peak.heap - this.#baseline.heap)).toBeLessThan(maxPeakMiB)
    expect(mib(this.#peak.buffers - this.#baseline.buffers)).toBeLessThan(maxPeakMiB)
  }
}

// ---- lanes ---------------------------------------------------------------------------------------

/**
 * Runs `total` cases of one protocol as several properties side by side, one lane per entry of
 * `attackers` (a node may appear more than once, up to what the victim lets one peer run at once).
 * Lane i uses seed FUZZ_SEED + i, so a failure names the seed that replays it.
 */
export async function lanes<A, Ts extends [unknown, ...unknown[]]>(
  name: string,
  attackers: readonly A[],
  total: number,
  property: (attacker: A, lane: number) => fc.IAsyncProperty<Ts>,
): Promise<void> {
  const per = Math.ceil(total / attackers.length)
  const results = await Promise.allSettled(attackers.map((a, i) => check(name, property(a, i), per, i)))
  const failed = results.find((r) => r.status === 'rejected')
  if (failed) throw (failed as PromiseRejectedResult).reason
}
