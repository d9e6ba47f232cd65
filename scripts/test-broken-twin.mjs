#!/usr/bin/env node
// The exactly-once property test must be able to fail (issue 33): runs it against the broken
// twin, an engine built with `--features broken-exactly-once` (one "already announced" check
// removed from `Reaper::report_process`), and fails unless the test fails, and fails for that
// reason: a pid announced twice, named with its seed. Run by `npm run test:rust` after the
// workspace's own tests.
import { spawnSync } from 'node:child_process'

const args = [
  'test',
  '--release',
  '-p',
  'subreaper-core',
  '--features',
  'broken-exactly-once',
  '--test',
  'exactly_once',
  'every_exit_is_announced_once',
]
console.log(`broken twin: cargo ${args.join(' ')}`)
const run = spawnSync('cargo', args, { encoding: 'utf8', maxBuffer: 64 << 20 })
if (run.error) {
  console.error(`broken twin: cargo did not run: ${run.error.message}`)
  process.exit(1)
}
const output = `${run.stdout}\n${run.stderr}`
const verdict = output.match(/^seed \d+ .*exactly-once violated.*$/m)
if (run.status === 0) {
  console.error('broken twin: the property test PASSED against an engine that announces twice')
  process.exit(1)
}
if (!verdict) {
  console.error(output)
  console.error('broken twin: the property test failed, but not on a second announcement')
  process.exit(1)
}
console.log(`broken twin: caught, as it must be: ${verdict[0].slice(0, 300)}`)
