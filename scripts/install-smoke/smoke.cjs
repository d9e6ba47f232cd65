// Install smoke test through require('subreaper'). Usage: node smoke.cjs <platform>
'use strict'
const { run } = require('./checks.cjs')

const timer = setTimeout(() => {
  console.error('not ok - [require] timed out')
  process.exit(1)
}, 60_000)
timer.unref()

const api = require('subreaper')
run(api, { label: 'require', platform: process.argv[2] }).catch((err) => {
  console.error(`not ok - [require] ${err.stack || err}`)
  process.exitCode = 1
})
