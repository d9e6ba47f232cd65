#!/usr/bin/env node
// `npm run test:readme`: the README's "Install" steps, run as printed.
//
//  1. Takes the `sh` block marked `<!-- install-test -->` from README.md and runs it with
//     `sh -e` in an empty temporary directory. Its `git clone https://github.com/subreaper/
//     subreaper.git` is served from this repository (a `git` shim on PATH clones its committed
//     HEAD: this machine reaches no Git host); every other line runs as it is. Cargo builds the
//     clone in this repository's target/readme-install/ (its dependencies are built once).
//  2. Checks what it gave: its last command printed its line through the native init; the
//     project's node_modules/.bin/subreaper runs `sh -c 'exit 3'` (exit 3) and require works;
//     the lockfile names all seven packages.
//  3. `npm ci --omit=dev` from that lockfile, with a registry nobody answers (the tarballs are
//     all it needs), and the CLI again. Then the failure the README warns of: the same tarballs
//     installed without the overrides leave a lockfile `npm ci` refuses.
//  4. Removes the temporary directory (--keep keeps it).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

import {
  CheckError,
  cleanEnv,
  hostPlatform,
  PLATFORMS,
  readJson,
  root,
  run,
  runOrFail,
  stopRunning,
  checks,
  onSignals,
} from './lib/packages.mjs'

const REPO_URL = 'https://github.com/subreaper/subreaper.git'
const keep = process.argv.includes('--keep')
const { check, counts, runMain } = checks()

function installBlock() {
  const lines = readFileSync(join(root, 'README.md'), 'utf8').split('\n')
  const at = lines.indexOf('<!-- install-test -->')
  if (at < 0 || lines[at + 1] !== '```sh') throw new CheckError('README.md has no ```sh block marked <!-- install-test -->')
  const end = lines.indexOf('```', at + 2)
  return lines.slice(at + 2, end).join('\n')
}

const tmp = realpathSync(mkdtempSync(join(tmpdir(), 'subreaper-readme-')))
const removeTmp = () => (keep ? console.log(`# kept ${tmp}`) : rmSync(tmp, { recursive: true, force: true }))
onSignals('test-readme', removeTmp)

async function main() {
  const platform = hostPlatform()
  const hostPkg = `subreaper-${platform}`
  const block = installBlock()
  check(block.includes(`git clone ${REPO_URL}`), `the README's install block clones ${REPO_URL}`)
  check(block.includes(platform), `the README's install block names this platform (${platform})`)

  const head = (await runOrFail('git', ['rev-parse', '--short', 'HEAD'])).stdout.trim()
  const dirty = (await runOrFail('git', ['status', '--porcelain', '--untracked-files=no'])).stdout.trim()
  console.log(`# the clone is this repository's HEAD ${head}${dirty ? ' (uncommitted changes are not in it)' : ''}`)
  const gitPath = (await runOrFail('sh', ['-c', 'command -v git'])).stdout.trim()
  const shims = join(tmp, 'shims')
  mkdirSync(shims)
  writeFileSync(
    join(shims, 'git'),
    [
      '#!/bin/sh',
      `# The README's clone, served from ${root}.`,
      `if [ "$1" = clone ] && [ "$2" = ${REPO_URL} ]; then`,
      '  shift 2',
      // git names the directory after the URL when none is given: subreaper.
      `  exec ${gitPath} clone --quiet ${root} "\${1:-subreaper}"`,
      'fi',
      `exec ${gitPath} "$@"`,
      '',
    ].join('\n'),
  )
  chmodSync(join(shims, 'git'), 0o755)
  const work = join(tmp, 'work')
  mkdirSync(work)
  const env = cleanEnv({ PATH: `${shims}${delimiter}${process.env.PATH}`, CARGO_TARGET_DIR: join(root, 'target', 'readme-install') })

  const t0 = Date.now()
  const r = await run('sh', ['-ec', block], { cwd: work, env, timeoutMs: 45 * 60_000 })
  console.log(`# the block ran in ${((Date.now() - t0) / 1000).toFixed(0)} s`)
  const last = r.stdout.trimEnd().split('\n').at(-1) ?? ''
  check(r.status === 0, "the README's install block, run with sh -e, exits 0", r.out.slice(-6000))
  check(/^the native init ran me as pid \d+$/.test(last), `its last command printed through the native init: "${last}"`, r.out.slice(-3000))

  const app = join(work, 'my-app')
  const nm = join(app, 'node_modules')
  const appEnv = cleanEnv({ npm_config_registry: 'http://127.0.0.1:9/', npm_config_fetch_retries: '0' })
  const cli = async (when) => {
    check(existsSync(join(nm, hostPkg, 'subreaper')), `${when}: node_modules/${hostPkg} holds the native init`)
    const exit3 = await run(join(nm, '.bin', 'subreaper'), ['--', 'sh', '-c', 'exit 3'], { cwd: app, env: appEnv })
    check(exit3.status === 3, `${when}: node_modules/.bin/subreaper -- sh -c 'exit 3' exits 3`, exit3.out)
    const req = await run(
      process.execPath,
      ['-e', "require('subreaper').monitor.wait(require('subreaper').monitor.start('true')).then((e) => console.log(e.status))"],
      {
        cwd: app,
        env: appEnv,
      },
    )
    check(req.status === 0 && req.stdout.trim() === '0', `${when}: require('subreaper') starts and waits for a child`, req.out)
  }
  await cli('after the README install')
  const lock = readJson(join(app, 'package-lock.json'))
  const names = ['subreaper', ...PLATFORMS.map((p) => `subreaper-${p.platform}`)]
  const missing = names.filter((n) => !lock.packages[`node_modules/${n}`]?.resolved?.startsWith('file:vendor/'))
  check(missing.length === 0, 'the lockfile names all seven packages, each from its tarball in vendor/', `missing: ${missing.join(', ')}`)

  rmSync(nm, { recursive: true })
  const ci = await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund'], { cwd: app, env: appEnv })
  check(ci.status === 0, 'npm ci --omit=dev from that lockfile succeeds (with no registry to reach)', ci.out)
  await cli('after npm ci --omit=dev')

  // Without the overrides: what the README says goes wrong.
  const bare = join(work, 'no-overrides')
  mkdirSync(bare)
  writeFileSync(join(bare, 'package.json'), '{ "name": "no-overrides", "version": "1.0.0", "private": true }\n')
  const version = readJson(join(app, 'node_modules', 'subreaper', 'package.json')).version
  const tgz = (name) => join(app, 'vendor', `${name}-${version}.tgz`)
  await runOrFail('npm', ['install', '--no-audit', '--no-fund', tgz('subreaper'), tgz(hostPkg)], { cwd: bare, env: appEnv })
  rmSync(join(bare, 'node_modules'), { recursive: true })
  const refused = await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund'], { cwd: bare, env: appEnv })
  check(
    refused.status !== 0 && /Missing: subreaper-[\w-]+@ from lock file/.test(refused.out),
    'without the overrides, npm ci refuses the lockfile ("Missing: subreaper-…@ from lock file"), as the README says',
    refused.out,
  )
}

await runMain(main, () => stopRunning().then(removeTmp))
console.log(`readme install: ${counts.passed} passed, ${counts.failed} failed`)
process.exitCode = counts.failed ? 1 : 0
