// Compiles the TypeScript sources to dist/ (CommonJS, .cjs + .d.cts) and adds the ESM entry.
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
copyFileSync(join(pkg, 'src/index.mjs'), join(pkg, 'dist/index.mjs'))
copyFileSync(join(pkg, 'src/index.d.mts'), join(pkg, 'dist/index.d.mts'))
