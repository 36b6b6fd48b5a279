// README's quick start must run as written: this test copies its code block
// into a file inside the package (so `import 'groupcache'` resolves to the
// built package, as it would for a user) and runs it.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { reservePorts } from './helpers/ports.js'

const root = fileURLToPath(new URL('..', import.meta.url))

function codeBlockAfter(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n${heading}\n`)
  assert.ok(start !== -1, `README has no "${heading}" section`)
  const match = /```ts\n([\s\S]*?)```/.exec(markdown.slice(start))
  assert.ok(match, `no ts code block under "${heading}"`)
  return match[1] as string
}

test('the quick start runs as written and prints the loaded value', async () => {
  const code = codeBlockAfter(readFileSync(`${root}README.md`, 'utf8'), '## Quick start')
  assert.ok(code.split('\n').length <= 21, 'the quick start stays within 20 lines')
  const file = `${root}test/.quickstart-${process.pid}.ts`
  writeFileSync(file, code)
  try {
    const [port] = await reservePorts(1)
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      timeout: 60_000,
      env: { ...process.env, SELF_URL: `http://127.0.0.1:${port}` },
    })
    assert.equal(stdout.trim(), "{ id: '42', name: 'user 42' }")
  } finally {
    rmSync(file, { force: true })
  }
})
