// `npm run test:quick`: the edit–test loop. After a debug build (build:dev) and the engine's
// tests in cargo's dev profile (no LTO), runs every ava spec except the long ones: the soak,
// the 2,000 mixed calls and the fast-check properties. `npm test` (what CI runs) stays the
// whole suite. Arguments go to ava: `npm run test:quick -- --match '*wait*'`.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const SLOW = new Set(['soak.spec.ts', 'mixed.spec.ts', 'properties.spec.ts'])
const specs = readdirSync(join(root, '__test__'))
  .filter((name) => name.endsWith('.spec.ts') && !SLOW.has(name))
  .sort()
  .map((name) => join('__test__', name))
const ava = join(dirname(createRequire(join(root, 'package.json')).resolve('ava')), 'cli.mjs')
// The addon is a debug build here: the docs' size figure (a release build's) is not checked.
const env = { ...process.env, SUBREAPER_DEBUG_BUILD: '1' }
const result = spawnSync(process.execPath, [ava, ...specs, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit', env })
process.exitCode = result.status ?? 1
