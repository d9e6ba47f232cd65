// Compiles the TypeScript sources to dist/ (CommonJS, .cjs + .d.cts) and adds the ESM entry.
import { execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const tsc = require.resolve('typescript/bin/tsc')

rmSync(join(pkg, 'dist'), { recursive: true, force: true })
mkdirSync(join(pkg, 'dist'), { recursive: true })
execFileSync(process.execPath, [tsc, '-p', join(pkg, 'tsconfig.json')], { stdio: 'inherit' })
copyFileSync(join(pkg, 'src/index.mjs'), join(pkg, 'dist/index.mjs'))
copyFileSync(join(pkg, 'src/index.d.mts'), join(pkg, 'dist/index.d.mts'))
const cli = join(pkg, 'dist/cli.cjs')
try {
  const text = readFileSync(cli, 'utf8')
  if (!text.startsWith('#!')) writeFileSync(cli, `#!/usr/bin/env node\n${text}`)
  chmodSync(cli, 0o755)
} catch (err) {
  if (err.code !== 'ENOENT') throw err
}
