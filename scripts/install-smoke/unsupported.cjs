// Where no prebuilt binary fits, both require('subreaper') and import 'subreaper' must fail with
// ERR_SUBREAPER_UNSUPPORTED_PLATFORM, naming the platform and the supported ones, never with a
// bare "Cannot find module". Usage: node unsupported.cjs <expected platform name> [label]
// (run with `--require ./as-win32.cjs` to play Windows).
'use strict'
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')

const SUPPORTED = ['linux-x64-gnu', 'linux-x64-musl', 'linux-arm64-gnu', 'linux-arm64-musl', 'darwin-x64', 'darwin-arm64']
const [platform, label = platform] = process.argv.slice(2)

try {
  let err
  try {
    require('subreaper')
  } catch (e) {
    err = e
  }
  assert.equal(err?.code, 'ERR_SUBREAPER_UNSUPPORTED_PLATFORM', `require: code; got ${err?.stack || err}`)
  assert.ok(err.message.includes(`(${platform})`), `require: names the platform ${platform}: ${err.message}`)
  for (const p of SUPPORTED) assert.ok(err.message.includes(p), `require: lists ${p}: ${err.message}`)
  assert.doesNotMatch(err.message, /^Cannot find (module|native binding)/, 'require: not a raw loader error')

  // A static import in a process of its own, as an application would have it: the process must
  // die with the same error (uncaught, printed by Node).
  const r = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', "import 'subreaper'"], {
    encoding: 'utf8',
  })
  assert.notEqual(r.status, 0, 'import: the process fails')
  const firstError = r.stderr.split('\n').find((l) => /^\w*Error\b/.test(l))
  assert.equal(firstError, `Error: ${err.message}`, `import: the same error; stderr:\n${r.stderr}`)
  assert.match(r.stderr, /code: 'ERR_SUBREAPER_UNSUPPORTED_PLATFORM'/, 'import: the code')
  console.log(`ok - [${label}] require and import fail with: ${err.message}`)
} catch (err) {
  console.error(`not ok - [${label}] ${err.stack || err}`)
  process.exitCode = 1
}
