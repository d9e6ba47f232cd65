// 6. Start-up: the cost of loading subreaper and having its reaper running, in fresh Node
// processes, interleaved round by round with the baseline `node -e ''`:
//
//   bare       node -e ''
//   require    node -e "require('subreaper')"                      (CommonJS)
//   import     node --input-type=module -e "import 'subreaper'"    (ES module)
//   inProcess  the time of `require('subreaper')` itself, measured inside the process, which then
//              checks that the engine's two threads exist when it returns (the reaper is running)
import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'

import { intEnv, nowUs, progress, report, summarize } from './lib.ts'

const ROUNDS = intEnv('SUBREAPER_BENCH_STARTUP_ROUNDS', 15)
const root = resolve(import.meta.dirname, '..')
// The package under test (see sr.ts): its CommonJS and ES module entry points.
const esm = process.env.SUBREAPER_BENCH_PACKAGE || 'subreaper'
const cjs = esm === 'subreaper' ? esm : esm.replace(/\.mjs$/, '.cjs')

// A thread names itself once it runs, so the name is checked a moment after the require; that
// the threads exist when require returns is checked by counting them.
const IN_PROCESS = `
const fs = require('fs')
const threads = () => fs.readdirSync('/proc/self/task')
const before = threads().length
const t0 = process.hrtime.bigint()
require(${JSON.stringify(cjs)})
const us = Number(process.hrtime.bigint() - t0) / 1000
const added = threads().length - before
setTimeout(() => {
  const running = threads().some((t) => fs.readFileSync('/proc/self/task/' + t + '/comm', 'utf8').trim() === 'subreaper')
  process.stdout.write(JSON.stringify({ us, added, running }))
}, 20)
`

const variants: Record<string, string[]> = {
  bare: ['-e', ''],
  require: ['-e', `require(${JSON.stringify(cjs)})`],
  import: ['--input-type=module', '-e', `import ${JSON.stringify(esm)}`],
}

function run(args: string[]): { ms: number; out: string } {
  const t0 = nowUs()
  const out = execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  return { ms: (nowUs() - t0) / 1000, out }
}

const wall: Record<string, number[]> = { bare: [], require: [], import: [] }
const inProcess: number[] = []
let running = true
progress(`start-up: ${ROUNDS} rounds`)
for (const args of Object.values(variants)) run(args) // warm the page cache
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, args] of Object.entries(variants)) wall[name]!.push(run(args).ms)
  const r = JSON.parse(run(['-e', IN_PROCESS]).out) as { us: number; added: number; running: boolean }
  inProcess.push(r.us / 1000)
  running &&= r.running && r.added >= 2
}

report({
  rounds: ROUNDS,
  wallMs: Object.fromEntries(Object.entries(wall).map(([k, v]) => [k, summarize(v)])),
  /** Per round: the variant's wall time minus the bare node's in the same round. */
  overheadMs: {
    require: summarize(wall.require!.map((v, i) => v - wall.bare![i]!)),
    import: summarize(wall.import!.map((v, i) => v - wall.bare![i]!)),
  },
  requireInProcessMs: summarize(inProcess),
  reaperRunningAfterRequire: running,
})
