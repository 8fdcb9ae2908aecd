import { fromUtf8, utf8 } from '../../src/primitives/bytes.ts'

export { prng } from '../support/prng.ts'

/**
 * Random values for the canonical codec's tests: the plain subset its direct writer and reader cover,
 * with the edges that matter (integer head sizes, string lengths around one-byte heads, non-ASCII and
 * lone surrogates, keys whose UTF-16 and UTF-8 orders disagree).
 */

export const INT_EDGES = [
  0,
  1,
  23,
  24,
  25,
  255,
  256,
  65535,
  65536,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 32 + 1,
  2 ** 53 - 1,
  2 ** 40 + 12345,
]
export const INTS = [
  ...INT_EDGES,
  ...INT_EDGES.map((n) => -n - 1),
  ...INT_EDGES.filter((n) => n > 0).map((n) => -n),
]
// (65535/65536, the next head boundary, have a test of their own: deep-equality of many is slow)
export const STRING_LENGTHS = [0, 1, 22, 23, 24, 25, 255, 256, 1000]
// The last two hold lone surrogates, which UTF-8 can only carry as U+FFFD
export const ALPHABETS = ['abcXYZ019', 'é日', '😀🎉', 'aé日😀', '\ud800x\udfff', '\udc00\ud83d']
export const KEY_ALPHABETS = ALPHABETS.slice(0, 4)
// Keys of mixed lengths (23/24 bytes straddle the one-byte head), non-ASCII keys, lone surrogates (no
// two that become the same key as U+FFFD), and a pair that UTF-16 order and UTF-8 order disagree on
// ('\uffffa' vs '😀', both 4 UTF-8 bytes).
export const KEYS = [
  '',
  'a',
  'b',
  'z',
  'A',
  'aa',
  'ab',
  'ba',
  'index',
  'term',
  'kind',
  'data',
  'clusterId',
  'vote',
  'commit',
  '10',
  '2',
  'é',
  'e',
  'ée',
  '日本',
  '😀',
  '\uffffa',
  '\ue000',
  '\ud800',
  'x\udfff',
  'k'.repeat(23),
  'k'.repeat(24),
  'j'.repeat(24),
  'k'.repeat(25),
  'ü'.repeat(12),
  'long-key-'.repeat(30),
]

export function randomString(
  rand: () => number,
  alphabets = ALPHABETS,
  maxLength = Number.POSITIVE_INFINITY,
): string {
  // by code point: '😀' is one character of the alphabet, two UTF-16 units
  const alphabet = [...alphabets[Math.floor(rand() * alphabets.length)]!]
  const len =
    rand() < 0.8 ? Math.floor(rand() * 30) : STRING_LENGTHS[Math.floor(rand() * STRING_LENGTHS.length)]!
  let s = ''
  for (let i = 0; i < Math.min(len, maxLength); i++) s += alphabet[Math.floor(rand() * alphabet.length)]!
  return s
}

export function randomBytes(rand: () => number): Uint8Array {
  const len =
    rand() < 0.8 ? Math.floor(rand() * 30) : STRING_LENGTHS[Math.floor(rand() * STRING_LENGTHS.length)]!
  const out = new Uint8Array(len)
  for (let i = 0; i < len; i++) out[i] = Math.floor(rand() * 256)
  return out
}

/** A random value of the subset the direct writer covers; objects may carry undefined properties. */
export function randomValue(rand: () => number, depth: number): unknown {
  const r = rand()
  const leaf = depth >= 5 || r < 0.55
  if (leaf) {
    const k = Math.floor(rand() * 7)
    switch (k) {
      case 0:
        return INTS[Math.floor(rand() * INTS.length)]!
      case 1:
        return Math.floor(rand() * 2 ** 53) * (rand() < 0.5 ? -1 : 1) || 1
      case 2:
        return randomString(rand)
      case 3:
        return randomBytes(rand)
      case 4:
        return rand() < 0.5
      case 5:
        return null
      default:
        return Math.floor(rand() * 300) - 150
    }
  }
  if (r < 0.75) {
    const len = Math.floor(rand() * (rand() < 0.9 ? 6 : 30))
    return Array.from({ length: len }, () => randomValue(rand, depth + 1))
  }
  const obj: Record<string, unknown> = rand() < 0.1 ? Object.create(null) : {}
  const n = Math.floor(rand() * (rand() < 0.9 ? 6 : 30))
  for (let i = 0; i < n; i++) {
    const key = rand() < 0.7 ? KEYS[Math.floor(rand() * KEYS.length)]! : randomString(rand, KEY_ALPHABETS, 40)
    obj[key] = rand() < 0.1 ? undefined : randomValue(rand, depth + 1)
  }
  return obj
}

/** The value as decoding gives it back: undefined properties gone, objects plain, U+FFFD for lone surrogates. */
export function withoutUndefined(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutUndefined)
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const out: Record<string, unknown> = {}
    for (const [k, e] of Object.entries(v)) if (e !== undefined) out[fromUtf8(utf8(k))] = withoutUndefined(e)
    return out
  }
  // lone surrogates come back as U+FFFD
  if (typeof v === 'string') return fromUtf8(utf8(v))
  return v
}

/** Arrays nested `depth` deep: past the direct writer's and reader's depth limits. */
export function nestedArrays(depth: number): unknown[] {
  const outer: unknown[] = []
  let cur = outer
  for (let i = 0; i < depth; i++) {
    const next: unknown[] = []
    cur.push(next)
    cur = next
  }
  return outer
}
