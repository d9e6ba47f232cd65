// Compiles the TypeScript sources to dist/ (CommonJS, .cjs + .d.cts) and adds the ESM entries.
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const tsc = require.resolve('typescript/bin/tsc')

rmSync(join(pkg, 'dist'), { recursive: true, force: true })
mkdirSync(join(pkg, 'dist'), { recursive: true })
execFileSync(process.execPath, [tsc, '-p', join(pkg, 'tsconfig.json')], { stdio: 'inherit' })
for (const entry of ['index', 'init']) {
  copyFileSync(join(pkg, `src/${entry}.mjs`), join(pkg, `dist/${entry}.mjs`))
  copyFileSync(join(pkg, `src/${entry}.d.mts`), join(pkg, `dist/${entry}.d.mts`))
}
