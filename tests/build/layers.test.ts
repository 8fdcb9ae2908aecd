/**
 * The layering of src/, pinned: folders import each other without cycles, and `network/` (the Network
 * that composes discovery, streams and groups, and the platform interface) sits on top, so nothing
 * below it imports it. `transport/` (links, close codes, the context subsystems are built on) is the
 * bottom layer beside `primitives/`. Found by scanning the import statements of every .ts file under src/.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src')
/** The folder that holds Network: only src/index.ts may import it. */
const TOP = 'network'
/** What the bottom layer may import. */
const TRANSPORT_DEPENDS_ON = new Set(['primitives'])
/**
 * Folder edges allowed to close a cycle, each type-only: a ticket validator is handed the peer's
 * entry (tickets → discovery), while an entry validates its own tickets (discovery → tickets).
 */
const TYPE_ONLY_BACK_EDGES = new Set(['tickets -> discovery'])

interface Edge {
  from: string
  to: string
  file: string
  typeOnly: boolean
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name)
    if (d.isDirectory()) return sourceFiles(path)
    return d.isFile() && d.name.endsWith('.ts') ? [path] : []
  })
}

/** The top folder of a file under src/ ('.' for the files directly in src/). */
function folderOf(path: string): string {
  const parts = relative(SRC, path).split(sep)
  return parts.length > 1 ? parts[0]! : '.'
}

/** Every relative import and re-export of `file` that stays inside src/, with whether it is type-only. */
function importsOf(file: string): { target: string; typeOnly: boolean }[] {
  const text = readFileSync(file, 'utf8')
  const found: { target: string; typeOnly: boolean }[] = []
  const statement = /^\s*(?:import|export)\s+(type\s+)?([^;'"]*?)\s*from\s*['"]([^'"]+)['"]/gm
  for (const m of text.matchAll(statement)) {
    const specifiers = m[2]!
    const names = /\{([^}]*)\}/.exec(specifiers)?.[1]
    const allTypes =
      names !== undefined &&
      !/^[^{]*\w[^{]*\{/.test(specifiers) &&
      names
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .every((s) => s.startsWith('type '))
    found.push({ target: m[3]!, typeOnly: m[1] !== undefined || allTypes })
  }
  for (const m of text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm))
    found.push({ target: m[1]!, typeOnly: false })
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g))
    found.push({ target: m[1]!, typeOnly: false })
  return found
    .filter((i) => i.target.startsWith('.'))
    .map((i) => ({ ...i, target: resolve(dirname(file), i.target) }))
    .filter((i) => !relative(SRC, i.target).startsWith('..'))
}

function folderEdges(): Edge[] {
  const edges: Edge[] = []
  for (const file of sourceFiles(SRC)) {
    const from = folderOf(file)
    for (const { target, typeOnly } of importsOf(file)) {
      const to = folderOf(target)
      if (to !== from) edges.push({ from, to, file: relative(SRC, file), typeOnly })
    }
  }
  return edges
}

/** A cycle of the folder graph, as the folders along it, or undefined when there is none. */
function findCycle(graph: Map<string, Set<string>>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>()
  const path: string[] = []
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node]
    state.set(node, 'open')
    path.push(node)
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next)
      if (cycle) return cycle
    }
    path.pop()
    state.set(node, 'done')
    return undefined
  }
  for (const node of graph.keys()) {
    const cycle = visit(node)
    if (cycle) return cycle
  }
  return undefined
}

describe('source layout', () => {
  const edges = folderEdges()
  const describeEdge = (e: Edge) => `${e.file} imports ${e.to}/`

  it('finds the imports it checks', () => {
    expect(edges.some((e) => e.from === TOP && e.to === 'transport')).toBe(true)
    expect(edges.some((e) => e.from === 'streams' && e.to === 'discovery')).toBe(true)
    expect(edges.some((e) => e.from === 'tickets' && e.to === 'discovery' && e.typeOnly)).toBe(true)
  })

  it('has no cycle between folders', () => {
    const graph = new Map<string, Set<string>>()
    for (const e of edges) {
      if (TYPE_ONLY_BACK_EDGES.has(`${e.from} -> ${e.to}`)) continue
      graph.set(e.from, (graph.get(e.from) ?? new Set()).add(e.to))
    }
    expect(findCycle(graph)).toBeUndefined()
  })

  it('keeps the allowed back edges type-only', () => {
    const offending = edges.filter((e) => TYPE_ONLY_BACK_EDGES.has(`${e.from} -> ${e.to}`) && !e.typeOnly)
    expect(offending.map(describeEdge)).toEqual([])
  })

  it(`keeps ${TOP}/ on top: only src/index.ts imports it`, () => {
    const offending = edges.filter((e) => e.to === TOP && e.from !== '.')
    expect(offending.map(describeEdge)).toEqual([])
  })

  it('keeps transport/ at the bottom, on primitives/ only', () => {
    const offending = edges.filter((e) => e.from === 'transport' && !TRANSPORT_DEPENDS_ON.has(e.to))
    expect(offending.map(describeEdge)).toEqual([])
  })

  it('imports nothing from src/index.ts inside src/', () => {
    expect(edges.filter((e) => e.to === '.').map(describeEdge)).toEqual([])
  })
})
