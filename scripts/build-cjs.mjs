// build-cjs gives CommonJS consumers their own entry points, after `tsc` has
// built dist/. The package is ESM; Node >= 20.19 loads it from `require()`
// (require(esm)), but TypeScript types a `require` of an ESM file as an
// error (TS1479) unless the `require` condition leads to CommonJS types.
// So, for each entry in package.json's exports that has a `require`
// condition, this writes:
//   - dist/cjs/package.json, {"type": "commonjs"}: every .d.ts and .js below
//     dist/cjs is CommonJS;
//   - the entry's .js, which requires the ESM file and exports its names one
//     by one (and `__esModule`, for `export default`), so that both module
//     systems share one module instance (no dual-package hazard) and tools
//     that read the file (TypeScript, attw) see what it exports;
//   - a copy of every declaration file (and its map, re-pointed at the .ts
//     sources) under dist/cjs, the same types read as CommonJS.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { pathToFileURL } from 'node:url'

const root = join(import.meta.dirname, '..')
const dist = join(root, 'dist')
const cjs = join(dist, 'cjs')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

mkdirSync(cjs, { recursive: true })
writeFileSync(join(cjs, 'package.json'), `${JSON.stringify({ type: 'commonjs' })}\n`)

/** copyDeclarations copies dir's .d.ts files (and maps) under dist/cjs. */
function copyDeclarations(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const from = join(dir, entry.name)
    if (entry.isDirectory()) {
      if (from !== cjs) copyDeclarations(from)
      continue
    }
    const to = join(cjs, relative(dist, from))
    if (entry.name.endsWith('.d.ts')) {
      mkdirSync(dirname(to), { recursive: true })
      copyFileSync(from, to)
    } else if (entry.name.endsWith('.d.ts.map')) {
      const map = JSON.parse(readFileSync(from, 'utf8'))
      map.sources = map.sources.map((source) => relative(dirname(to), join(dirname(from), source)).replaceAll('\\', '/'))
      mkdirSync(dirname(to), { recursive: true })
      writeFileSync(to, JSON.stringify(map))
    }
  }
}
copyDeclarations(dist)

for (const [subpath, target] of Object.entries(pkg.exports)) {
  if (typeof target !== 'object' || target.require === undefined) continue
  const wrapper = join(root, target.require.default)
  const esm = join(root, target.default)
  if (!wrapper.startsWith(`${cjs}/`)) throw new Error(`${subpath}: the require condition must point under dist/cjs`)
  let specifier = relative(dirname(wrapper), esm).replaceAll('\\', '/')
  if (!specifier.startsWith('.')) specifier = `./${specifier}`
  const names = Object.keys(await import(pathToFileURL(esm).href))
  const lines = [
    "'use strict'",
    `// ${pkg.name}${subpath.slice(1)} for require(): the ESM module's own exports (require(esm)).`,
    `const esm = require(${JSON.stringify(specifier)})`,
    "Object.defineProperty(exports, '__esModule', { value: true })",
    ...names.map((name) => `exports.${name} = esm.${name}`),
  ]
  mkdirSync(dirname(wrapper), { recursive: true })
  writeFileSync(wrapper, `${lines.join('\n')}\n`)
}
