// Every TypeScript snippet in README.md must compile as written, against the
// built package, in the strictest setup a user is likely to have. Each ```ts
// block becomes a module in a scratch directory inside the package (so
// `import 'groupcache'` resolves through the package's own exports to dist/,
// as it would for a user), and one tsc run checks them all.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const root = fileURLToPath(new URL('..', import.meta.url))

/** CONSUMER is a strict application's tsconfig, as the README promises to compile under. */
const CONSUMER = {
  compilerOptions: {
    target: 'ES2022',
    lib: ['ES2023'],
    module: 'nodenext',
    moduleResolution: 'nodenext',
    types: ['node'],
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    noImplicitOverride: true,
    noImplicitReturns: true,
    noFallthroughCasesInSwitch: true,
    verbatimModuleSyntax: true,
    isolatedModules: true,
    // Our own declarations are checked (they are not in node_modules); the
    // frameworks' are theirs to keep.
    skipLibCheck: true,
    noEmit: true,
  },
  include: ['*.ts'],
}

interface Snippet {
  line: number
  code: string
}

/** snippets returns README's ```ts blocks with the line each starts on. */
function snippets(markdown: string): Snippet[] {
  const found: Snippet[] = []
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```ts') continue
    const start = i + 1
    let end = start
    while (end < lines.length && lines[end] !== '```') end++
    found.push({ line: start + 1, code: lines.slice(start, end).join('\n') })
    i = end
  }
  return found
}

test("every ts snippet in README compiles against the built package under a strict consumer's tsconfig", async () => {
  const blocks = snippets(readFileSync(join(root, 'README.md'), 'utf8'))
  assert.ok(blocks.length >= 8, `found only ${blocks.length} ts blocks in README.md`)
  const dir = mkdtempSync(join(root, 'test', '.readme-types-'))
  try {
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(CONSUMER, null, 2))
    for (const block of blocks) {
      // `export {}` keeps each snippet a module of its own, as a user's file is.
      writeFileSync(join(dir, `readme-line-${block.line}.ts`), `${block.code}\nexport {}\n`)
    }
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    const run = await promisify(execFile)(process.execPath, [tsc, '-p', dir, '--pretty', 'false'], { cwd: root, timeout: 120_000 }).then(
      () => ({ ok: true, out: '' }),
      (err: { stdout?: string; stderr?: string }) => ({ ok: false, out: `${err.stdout ?? ''}${err.stderr ?? ''}` }),
    )
    // Errors name the file, hence README's line: readme-line-17.ts(4,9) is README line 20, column 9.
    assert.ok(run.ok, `README snippets do not compile:\n${run.out}`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
