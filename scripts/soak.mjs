// `npm run soak`: the long soak of __test__/soak.spec.ts, 120,000 exits by default
// (`npm run soak -- 250000`, or SUBREAPER_SOAK_EXITS), with progress every 5 rounds.
// The short version (15,000 exits) runs under `npm test`.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const exits = process.argv[2] ?? process.env.SUBREAPER_SOAK_EXITS ?? '120000'
if (!/^\d+$/.test(exits) || Number(exits) < 1) {
  console.error(`usage: npm run soak [-- EXITS]; got ${JSON.stringify(exits)}`)
  process.exit(2)
}
const ava = join(dirname(createRequire(join(root, 'package.json')).resolve('ava')), 'cli.mjs')
// AVA's timeout is for inactivity between results: this one test may run for minutes.
const minutes = Math.max(10, Math.ceil(Number(exits) / 2000))
const result = spawnSync(process.execPath, [ava, '--verbose', `--timeout=${minutes}m`, '__test__/soak.spec.ts'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, SUBREAPER_SOAK_EXITS: exits, SUBREAPER_SOAK_PROGRESS: '1' },
})
process.exit(result.status ?? 1)
