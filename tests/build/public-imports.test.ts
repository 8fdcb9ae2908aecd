/**
 * Tests use the public API the way a user does: a name the Node entry exports is imported from
 * `platform/node/index.ts`, never from its module under src/. Internals (Link, the Raft core, wire
 * codecs, store internals, test hooks) are not exported and stay importable from their modules.
 *
 * Imports are found by scanning the import statements of every .ts file under tests/ (but tests/bench/);
 * a name is flagged only when the TypeScript checker resolves the deep import and the entry's export of
 * that name to the same declaration, so a same-named internal is never mistaken for the public one.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const SELF = fileURLToPath(import.meta.url)
const ROOT = resolve(dirname(SELF), '../..')
const TESTS = join(ROOT, 'tests')
const SRC = join(ROOT, 'src')
const ENTRY = join(ROOT, 'platform/node/index.ts')
/** Not tests of the SDK's behaviour: benchmarks measure internals on purpose. */
const SKIPPED = [join(TESTS, 'bench')]

interface DeepImport {
  /** The importing file, relative to the repository. */
  file: string
  /** The imported module, absolute. */
  target: string
  /** The imported names (before any `as`). */
  names: string[]
}

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name)
    if (d.isDirectory()) return SKIPPED.includes(path) ? [] : testFiles(path)
    return d.isFile() && d.name.endsWith('.ts') && path !== SELF ? [path] : []
  })
}

/** The named imports of `file` from modules under src/, `import type` and multi-line imports included. */
function deepImportsOf(file: string): DeepImport[] {
  const text = readFileSync(file, 'utf8')
  const statement = /^\s*import\s+(?:type\s+)?([^;'"]*?)\s*from\s*['"]([^'"]+)['"]/gm
  const found: DeepImport[] = []
  for (const m of text.matchAll(statement)) {
    const target = resolve(dirname(file), m[2]!)
    if (!m[2]!.startsWith('.') || !target.startsWith(SRC + sep)) continue
    const braces = /\{([^}]*)\}/.exec(m[1]!)?.[1] ?? ''
    const names = braces
      .split(',')
      .map(
        (s) =>
          s
            .trim()
            .replace(/^type\s+/, '')
            .split(/\s+as\s+/)[0]!,
      )
      .filter(Boolean)
    if (names.length > 0) found.push({ file: relative(ROOT, file), target, names })
  }
  return found
}

/** The declarations the modules `files` export, by name, as the TypeScript checker resolves them. */
function exportedDeclarations(files: string[]): (file: string) => Map<string, ts.Declaration | undefined> {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(ROOT, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'))
      },
    },
  )!
  const program = ts.createProgram([...new Set(files)], config.options)
  const checker = program.getTypeChecker()
  const declarationOf = (s: ts.Symbol) =>
    (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s).declarations?.[0]
  return (file) => {
    const source = program.getSourceFile(file)
    const module = source && checker.getSymbolAtLocation(source)
    if (!module) throw new Error(`no module for ${relative(ROOT, file)}`)
    return new Map(checker.getExportsOfModule(module).map((s) => [s.name, declarationOf(s)]))
  }
}

describe('tests import public names from the Node entry', () => {
  const imports = testFiles(TESTS).flatMap(deepImportsOf)

  it('finds the deep imports of internals', () => {
    // Guards the scan: internals are still imported from src/, so none found means a broken regex.
    expect(imports.length).toBeGreaterThan(0)
  })

  it('imports no name the Node entry exports from a src/ module', async () => {
    const exportsOf = exportedDeclarations([ENTRY, ...imports.map((i) => i.target)])
    const entry = exportsOf(ENTRY)
    // Guards the checker: it must resolve every value the entry exports at runtime.
    const values = Object.keys(await import('../../platform/node/index.ts'))
    expect(values.filter((name) => entry.get(name) === undefined)).toEqual([])

    const bad: string[] = []
    for (const { file, target, names } of imports) {
      const module = exportsOf(target)
      for (const name of names) {
        const declaration = module.get(name)
        if (declaration !== undefined && entry.get(name) === declaration) bad.push(`${file}: ${name}`)
      }
    }
    expect(bad).toEqual([])
  })
})
