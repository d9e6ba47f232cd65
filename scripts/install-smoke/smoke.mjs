// Install smoke test through import 'subreaper'. Usage: node smoke.mjs <platform>
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

import subreaper, { monitor, setSubreaper, isSubreaper, UnsupportedError, SUPPORTED_PLATFORMS } from 'subreaper'

const require = createRequire(import.meta.url)
const { run } = require('./checks.cjs')

const timer = setTimeout(() => {
  console.error('not ok - [import] timed out')
  process.exit(1)
}, 60_000)
timer.unref()

try {
  // One module instance for both module systems: the ESM entry re-exports the CommonJS one.
  assert.equal(subreaper, require('subreaper'))
  assert.equal(monitor, require('subreaper').monitor)
  console.log('ok - [import] named and default exports are the require() instance')
  await run(
    { monitor, setSubreaper, isSubreaper, UnsupportedError, SUPPORTED_PLATFORMS },
    {
      label: 'import',
      platform: process.argv[2],
    },
  )
} catch (err) {
  console.error(`not ok - [import] ${err.stack || err}`)
  process.exitCode = 1
}
