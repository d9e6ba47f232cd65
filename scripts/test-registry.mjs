#!/usr/bin/env node
// `npm run test:registry`: the release, proven against a real registry on this machine.
//
//  1. Installs verdaccio 6.8.0 (the last that runs on Node 20) into a scratch directory and
//     starts it on 127.0.0.1, on a free port: no uplinks (it knows nothing but what is published
//     to it), anonymous publish for `subreaper*` only.
//  2. Publishes with the release script (scripts/release.mjs, the same command the release
//     workflow runs): subreaper and the platform packages at the repository's version. This
//     machine's platform package holds the addon and native init built here; the platforms that
//     cannot be built here come from the workflow's artifacts when given (--artifacts DIR, or
//     SUBREAPER_ARTIFACTS), else they are published as placeholders: their real name, version,
//     os, cpu and libc, no binary, and a description that says so. The output says which.
//  3. In an empty project, `npm install subreaper` by name from that registry, then checks
//     require('subreaper') and import 'subreaper' (the install smoke test), `npx subreaper -- sh
//     -c 'exit 3'` (exit 3), node_modules/.bin/subreaper (from /proc: the native init itself,
//     the caller its parent, no Node between), `node --import subreaper/init` (the app becomes a
//     subreaper and reaps an orphan), and the lockfile that install wrote: every platform
//     package in it, then `npm ci --omit=dev` from it and the CLI again.
//  4. Stops the registry and removes the scratch directory, whatever happened (on a failure, on
//     SIGINT/SIGTERM; the registry also ends by itself if this script dies, when its stdin closes).
//
//   node scripts/test-registry.mjs [--artifacts DIR [--all-platforms]] [--keep]
//     --all-platforms   every platform must come from the artifacts (no placeholder): CI
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync, copyFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

import {
  CheckError,
  cleanEnv,
  hostPlatform,
  mainDir,
  npmJson,
  PLATFORMS,
  readJson,
  root,
  run,
  runOrFail,
  stopRunning,
  checks,
  onSignals,
} from './lib/packages.mjs'
import { processChain } from './lib/process-chain.mjs'

const VERDACCIO = 'verdaccio@6.8.0'
const argv = process.argv.slice(2)
const keep = argv.includes('--keep')
const artifactsArg = argv.includes('--artifacts') ? argv[argv.indexOf('--artifacts') + 1] : process.env.SUBREAPER_ARTIFACTS
const artifacts = artifactsArg ? resolve(artifactsArg) : undefined
// CI, with every platform's artifacts: a placeholder would be an error.
const allPlatforms = argv.includes('--all-platforms')

const { check, counts, runMain } = checks()

const tmp = realpathSync(mkdtempSync(join(tmpdir(), 'subreaper-registry-')))
let registry = null
let registryPid = null

/** Stops verdaccio: SIGTERM, and SIGKILL if it has not exited within 10 s. */
async function stopRegistry() {
  const child = registry
  registry = null
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

let cleaned = null
/** Once, whoever asks first (the end of the run, or a signal): every later call shares it. */
function cleanup() {
  cleaned ??= (async () => {
    await stopRunning()
    await stopRegistry()
    if (keep) console.log(`# kept ${tmp}`)
    else rmSync(tmp, { recursive: true, force: true })
  })()
  return cleaned
}

onSignals('test-registry', cleanup)

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolvePort(port))
    })
  })
}

/** Resolves once `url` answers 200, or rejects when the registry exits first or 60 s pass. */
async function waitForRegistry(url, child, output) {
  const deadline = Date.now() + 60_000
  for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new CheckError(`verdaccio exited (${child.exitCode ?? child.signalCode}):\n${output()}`)
    try {
      const r = await fetch(url)
      if (r.ok) return
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new CheckError(`verdaccio did not answer ${url} within 60 s:\n${output()}`)
    await new Promise((r) => setTimeout(r, delay))
  }
}

async function startRegistry() {
  const dir = join(tmp, 'verdaccio')
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), '{ "private": true }\n')
  const t0 = Date.now()
  // From the npm registry, with the user's own npm configuration and cache (the one install of
  // this test that is not from the test registry).
  await runOrFail('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--ignore-scripts', VERDACCIO], {
    cwd: dir,
    env: cleanEnv(),
    timeoutMs: 10 * 60_000,
  })
  console.log(`# installed ${VERDACCIO} in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  const port = await freePort()
  const config = join(dir, 'config.yaml')
  writeFileSync(
    config,
    [
      `storage: ${join(dir, 'storage')}`,
      'auth:',
      '  htpasswd:',
      `    file: ${join(dir, 'htpasswd')}`,
      '    max_users: -1',
      '# no uplinks: the registry serves only what is published to it',
      'uplinks: {}',
      'packages:',
      "  'subreaper*':",
      '    access: $all',
      '    publish: $anonymous',
      "  '**':",
      '    access: $all',
      'log: { type: stdout, format: pretty, level: warn }',
      '',
    ].join('\n'),
  )
  // Verdaccio's CLI, run by a wrapper that exits when its stdin closes: if this script dies
  // without cleaning up, the registry goes with it.
  const wrapper = join(dir, 'run.cjs')
  const bin = join(dir, 'node_modules', 'verdaccio', 'bin', 'verdaccio')
  writeFileSync(
    wrapper,
    `process.stdin.on('end', () => process.exit(0)).resume()\nprocess.argv = [process.argv[0], ${JSON.stringify(bin)}, ...process.argv.slice(2)]\nrequire(${JSON.stringify(bin)})\n`,
  )
  const child = spawn(process.execPath, [wrapper, '--config', config, '--listen', `127.0.0.1:${port}`], {
    cwd: dir,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: cleanEnv(),
  })
  registry = child
  registryPid = child.pid ?? null
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  const url = `http://127.0.0.1:${port}/`
  await waitForRegistry(`${url}-/ping`, child, () => output)
  check(true, `verdaccio listens on ${url} (loopback only, no uplinks, anonymous publish for subreaper*)`)
  return url
}

// `node --import subreaper/init`: the app becomes a subreaper (outside PID 1), so the orphan its
// shell child leaves comes back to it and is reaped by the library; prints the orphan's exit.
const INIT_APP = `
const { spawn } = require('node:child_process')
const { isSubreaper, monitor } = require('subreaper')
const sh = spawn('sh', ['-c', 'sleep 0.3 & echo $!'], { stdio: ['ignore', 'pipe', 'inherit'] })
let out = ''
sh.stdout.on('data', (d) => (out += d))
sh.on('exit', async () => {
  const exit = await monitor.wait(Number(out.trim()))
  console.log(isSubreaper(), exit.status, exit.reapedBy)
})
`

async function main() {
  const platform = hostPlatform()
  const mainPkg = readJson(join(mainDir, 'package.json'))
  const version = mainPkg.version
  const hostPkg = `subreaper-${platform}`
  console.log(`# platform ${platform}, node ${process.version}, subreaper ${version}`)
  if (!PLATFORMS.some((p) => p.platform === platform)) throw new CheckError(`${platform} is not a platform subreaper is built for`)

  const url = await startRegistry()
  const home = join(tmp, 'home')
  mkdirSync(home)
  const npmrc = join(home, '.npmrc')
  // Anonymous publish still wants a token on npm's side; the registry accepts any.
  writeFileSync(npmrc, `registry=${url}\n//${new URL(url).host}/:_authToken=anonymous-test-token\n`)
  const env = cleanEnv({
    HOME: home,
    npm_config_userconfig: npmrc,
    npm_config_registry: url,
    npm_config_cache: join(tmp, 'cache'),
  })

  // --- 2. the release script publishes --------------------------------------------------------
  const gitStatus = async () => (await runOrFail('git', ['status', '--porcelain', '--untracked-files=no'])).stdout
  const statusBefore = await gitStatus()
  const releaseArgs = [
    join(root, 'scripts', 'release.mjs'),
    version,
    '--registry',
    url,
    '--missing',
    allPlatforms ? 'fail' : 'placeholder',
    '--out',
    join(tmp, 'release'),
  ]
  if (artifacts) releaseArgs.push('--artifacts', artifacts)
  const release = await runOrFail(process.execPath, releaseArgs, { env, timeoutMs: 60 * 60_000 })
  process.stdout.write(release.out.replace(/^/gm, '  | '))
  check((await gitStatus()) === statusBefore, 'the release left the repository as it was (its version already in every manifest)')
  // Run again, as after a publish that failed half-way: what is there is skipped, nothing fails.
  const rerun = await runOrFail(process.execPath, releaseArgs, { env, timeoutMs: 60 * 60_000 })
  const skipped = rerun.out.split('\n').filter((l) => /is already published with this very tarball: skipped/.test(l))
  check(skipped.length === 7, 'the release run again skips all 7 packages, already published with the same tarballs', rerun.out)

  const published = {}
  for (const name of [mainPkg.name, ...Object.keys(mainPkg.optionalDependencies)]) {
    const r = await runOrFail('npm', ['view', name, '--json'], { env })
    published[name] = npmJson(r.stdout)
  }
  check(
    Object.values(published).every((p) => p.version === version && p['dist-tags'].latest === version),
    `all ${Object.keys(published).length} packages are on the registry at ${version}, tagged latest`,
  )
  check(
    Object.entries(published[mainPkg.name].optionalDependencies).every(([n, v]) => v === version && published[n]),
    'subreaper@' + version + ' depends on every platform package at that version, each published',
  )
  const real = Object.keys(mainPkg.optionalDependencies).filter((n) => !published[n].subreaperPlaceholder)
  const placeholders = Object.keys(mainPkg.optionalDependencies).filter((n) => published[n].subreaperPlaceholder)
  check(real.includes(hostPkg), `${hostPkg} is published with its binaries (${artifacts ? 'from the artifacts' : 'built here'})`)
  console.log(`# with binaries: ${real.join(', ')}`)
  console.log(
    placeholders.length
      ? `# PLACEHOLDERS, no binary (cannot be built here; pass --artifacts DIR with the workflow's bindings-* to publish them): ${placeholders.join(', ')}.` +
          '\n# They keep the lockfile whole; this test proves nothing about their binaries.'
      : '# every platform package holds its binaries',
  )

  // --- 3. a user installs it by name ----------------------------------------------------------
  const project = join(tmp, 'project')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), `${JSON.stringify({ name: 'registry-check', version: '1.0.0', private: true }, null, 2)}\n`)
  const install = await runOrFail('npm', ['install', 'subreaper', '--no-audit', '--no-fund'], { cwd: project, env })
  check(true, `npm install subreaper (by name, from ${url}) succeeded`)
  const nm = join(project, 'node_modules')
  const installed = readdirSync(nm)
    .filter((d) => !d.startsWith('.'))
    .sort()
  check(
    JSON.stringify(installed) === JSON.stringify(['subreaper', hostPkg].sort()),
    `installed exactly subreaper and ${hostPkg}`,
    installed.join(', ') + install.out,
  )
  const lock = readJson(join(project, 'package-lock.json'))
  const locked = Object.keys(mainPkg.optionalDependencies).filter((n) => lock.packages[`node_modules/${n}`]?.resolved?.startsWith(url))
  check(
    locked.length === Object.keys(mainPkg.optionalDependencies).length &&
      lock.packages['node_modules/subreaper']?.resolved?.startsWith(url),
    `the lockfile names subreaper and all ${locked.length} platform packages, resolved from the registry`,
    JSON.stringify(lock.packages, null, 2),
  )
  check(
    readJson(join(project, 'package.json')).dependencies?.subreaper === `^${version}`,
    `package.json now depends on subreaper ^${version}`,
  )

  const smokeDir = join(root, 'scripts', 'install-smoke')
  for (const f of readdirSync(smokeDir)) copyFileSync(join(smokeDir, f), join(project, f))
  for (const entry of ['smoke.cjs', 'smoke.mjs']) {
    const r = await run(process.execPath, [entry, platform], { cwd: project, env, timeoutMs: 90_000 })
    process.stdout.write(r.out.replace(/^/gm, '  | '))
    check(
      r.status === 0,
      `node ${entry}: ${entry.endsWith('cjs') ? "require('subreaper')" : "import 'subreaper'"} works (start, wait, subscribe, subreaper mode)`,
    )
  }

  const cliChecks = async (when) => {
    const npx = await run('npx', ['subreaper', '--', 'sh', '-c', 'exit 3'], { cwd: project, env, timeoutMs: 90_000 })
    check(npx.status === 3, `${when}: npx subreaper -- sh -c 'exit 3' exits 3`, `exit ${npx.status ?? npx.signal}:\n${npx.out}`)
    const init = realpathSync(join(nm, hostPkg, 'subreaper'))
    const { chain, status } = await processChain(join(nm, '.bin', 'subreaper'), [], { cwd: project, env })
    const shown = chain.map((p) => `${p.pid} ${p.exe}`).join(' <- ')
    // The package's postinstall links that binary to bin/subreaper (a hard link, or a copy):
    // the process runs one of the two files, with the platform binary's bytes.
    const isInit = (exe) => exe === init || (existsSync(exe) && readFileSync(exe).equals(readFileSync(init)))
    check(
      status === 0 && chain.length === 1 && isInit(chain[0].exe) && chain[0].ppid === process.pid,
      `${when}: node_modules/.bin/subreaper is the native init (${init}), this script its parent: no Node between`,
      shown,
    )
  }
  await cliChecks('after npm install')

  const app = await run(process.execPath, ['--import', 'subreaper/init', '-e', INIT_APP], { cwd: project, env, timeoutMs: 60_000 })
  check(
    app.status === 0 && app.stdout.trim() === 'true 0 subreaper',
    "node --import subreaper/init: the app is a subreaper, and its shell child's orphan is reaped by it (status 0)",
    app.out,
  )

  // --- the lockfile that install wrote, reinstalled as a Dockerfile does -----------------------
  rmSync(nm, { recursive: true })
  rmSync(join(tmp, 'cache'), { recursive: true, force: true })
  const ci = await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund'], { cwd: project, env })
  check(ci.status === 0, 'npm ci --omit=dev from that lockfile (an empty cache) succeeded', ci.out)
  const again = readdirSync(nm)
    .filter((d) => !d.startsWith('.'))
    .sort()
  check(JSON.stringify(again) === JSON.stringify(installed), `npm ci installed the same: ${again.join(', ')}`, again.join(', '))
  await cliChecks('after npm ci --omit=dev')
  const r = await run(process.execPath, ['smoke.cjs', platform], { cwd: project, env, timeoutMs: 90_000 })
  check(r.status === 0, "after npm ci --omit=dev: require('subreaper') works", r.out)
}

const t0 = Date.now()
await runMain(main, cleanup)
const alive = registryPid !== null && existsSync(`/proc/${registryPid}`)
if (alive || (!keep && existsSync(tmp))) {
  counts.failed++
  console.log(`not ok - cleanup: ${alive ? `verdaccio (pid ${registryPid}) still runs` : `${tmp} is still there`}`)
} else {
  counts.passed++
  console.log(`ok - the registry is stopped${keep ? '' : ' and the scratch directory removed'}`)
}
console.log(`registry: ${counts.passed} passed, ${counts.failed} failed (${((Date.now() - t0) / 1000).toFixed(0)} s)`)
process.exitCode = counts.failed ? 1 : 0
