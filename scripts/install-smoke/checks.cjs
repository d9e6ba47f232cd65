// Shared checks of the install smoke test, run by smoke.cjs (require) and smoke.mjs (import)
// inside the temporary project that installed the packed tarballs. `api` is what the entry point
// under test exported. Prints one line per check; throws on the first failure.
'use strict'
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

async function until(cond, ms = 5000) {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, 10))
  }
  return true
}

async function run(api, { label, platform }) {
  const ok = (what) => console.log(`ok - [${label}] ${what}`)
  const { monitor, setSubreaper, isSubreaper, UnsupportedError, SUPPORTED_PLATFORMS } = api
  assert.equal(typeof monitor?.start, 'function', 'monitor.start is exported')

  // The addon came from the platform package, not from anything beside the loader.
  const req = require
  const platformPkg = fs.realpathSync(path.dirname(req.resolve(`subreaper-${platform}/package.json`)))
  const mainPkg = fs.realpathSync(path.dirname(req.resolve('subreaper/package.json')))
  const addons = process.report.getReport().sharedObjects.filter((f) => f.endsWith('.node'))
  assert.ok(
    addons.some((f) => fs.realpathSync(f).startsWith(platformPkg + path.sep)),
    `the loaded addon is in ${platformPkg}; loaded: ${addons.join(', ') || 'none'}`,
  )
  assert.deepEqual(
    fs.readdirSync(path.join(mainPkg, 'native')).filter((f) => f.endsWith('.node')),
    [],
    'no .node file in the subreaper package itself',
  )
  ok(`addon loaded from subreaper-${platform}`)
  assert.ok(SUPPORTED_PLATFORMS.includes(platform), `SUPPORTED_PLATFORMS lists ${platform}`)

  const seen = []
  const sub = monitor.subscribe((e) => seen.push(e))
  try {
    const child = monitor.start('sh', ['-c', 'exit 7'])
    const exit = await monitor.wait(child)
    assert.equal(exit.pid, child.pid)
    assert.equal(exit.status, 7)
    assert.equal(exit.code, 7)
    assert.equal(exit.signal, null)
    ok('monitor.start + monitor.wait: sh -c "exit 7" -> status 7')

    const killed = monitor.start('sh', ['-c', 'kill -TERM $$'])
    const exit2 = await monitor.wait(killed)
    assert.equal(exit2.status, 128 + 15)
    assert.equal(exit2.code, null)
    assert.equal(exit2.signal, 'SIGTERM')
    ok('monitor.wait on a signalled child: status 143, signal SIGTERM')

    const both = await until(() => seen.some((e) => e.pid === child.pid) && seen.some((e) => e.pid === killed.pid))
    assert.ok(both, `subscribe saw both exits; saw ${JSON.stringify(seen.map((e) => [e.pid, e.status]))}`)
    assert.equal(seen.find((e) => e.pid === child.pid).status, 7)
    assert.equal(seen.find((e) => e.pid === killed.pid).signal, 'SIGTERM')
    ok('monitor.subscribe saw both exits with their status')
  } finally {
    sub.unsubscribe()
  }

  if (process.platform === 'linux') {
    setSubreaper(true)
    assert.equal(isSubreaper(), true)
    setSubreaper(false)
    assert.equal(isSubreaper(), false)
    ok('setSubreaper(true/false) and isSubreaper() on Linux')
  } else {
    assert.throws(() => setSubreaper(true), UnsupportedError)
    ok(`setSubreaper throws UnsupportedError on ${process.platform}`)
  }
}

module.exports = { run }
