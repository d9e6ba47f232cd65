#!/usr/bin/env node
// The proven install (`npm run test:install`): what `npm install subreaper` gives a user, checked
// on this machine from the packed packages, with no Rust toolchain, no compiler and no network.
//
//  1. Uses the addon and the native init already built for this platform (packages/subreaper/
//     native/subreaper.<platform>.node and native/subreaper; builds them with `npm run
//     build:native` / `npm run build:init` only if missing) and copies both into the platform
//     package npm/<platform>/, as a release does.
//  2. `npm pack --dry-run` of packages/subreaper and npm/<platform>: each file list must hold what
//     it needs and nothing else (the .node only in the platform package); then `npm pack` for real,
//     which must pack exactly that list. One install script, subreaper's `postinstall`
//     (scripts/postinstall.mjs, which links bin/subreaper to the native init), no binding.gyp,
//     versions in step.
//  3. Installs both tarballs into an empty temporary project with `npm install --offline`, an empty
//     npm cache, scripts allowed (so any install script would run and be seen), a registry that
//     is a local tripwire (any request fails the check), and a PATH that holds only node, npm,
//     npx and sh: no cargo, rustc, cc, make or python. The installed files must be exactly the
//     packed ones (nothing built), the .node byte for byte the one packed; the only script that ran
//     is that postinstall, and bin/subreaper is now the platform package's native init (same
//     bytes, executable).
//  4. Runs the smoke test there through require('subreaper') and import 'subreaper' (start +
//     wait, a signalled child, subscribe, setSubreaper), and the CLI through
//     `npx subreaper -- sh -c 'exit 3'`, which must exit 3. From /proc: node_modules/.bin/subreaper
//     becomes the native init itself (its caller is the init's parent), and under npx nothing but
//     the native init (and npm's own shell) sits between npm and the command. The command gets
//     exactly the environment the init was given, byte for byte (an odd one, an empty one, a huge
//     one), through node_modules/.bin/subreaper and npx.
//  5. A third project installs with --ignore-scripts: bin/subreaper stays the packed sh launcher,
//     which still runs the native init and passes the caller's variables (no PWD of its own).
//  6. Prints the installed binary's size and removes the temporary directory (--keep keeps it).
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  accessSync,
  constants as fsConstants,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

import { MAIN_REQUIRED_FILES, mainFileAllowed } from './lib/packages.mjs'
import { processChain } from './lib/process-chain.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const mainDir = join(root, 'packages', 'subreaper')
const keep = process.argv.includes('--keep')

let passed = 0
let failed = 0
function ok(what) {
  passed++
  console.log(`ok - ${what}`)
}
class CheckError extends Error {}
function check(cond, what, detail = '') {
  if (!cond) throw new CheckError(`${what}${detail ? `\n${detail}` : ''}`)
  ok(what)
}

/** The platform as napi-rs names it: linux-x64-gnu, linux-arm64-musl, darwin-arm64... */
function platformName() {
  const base = `${process.platform}-${process.arch}`
  if (process.platform !== 'linux') return base
  const glibc = typeof process.report.getReport().header.glibcVersionRuntime === 'string'
  return `${base}-${glibc ? 'gnu' : 'musl'}`
}

/** Runs a command without blocking the event loop (the tripwire registry must stay responsive). */
function run(cmd, args, { cwd, env, timeoutMs = 5 * 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (status, signal) => {
      clearTimeout(timer)
      resolve({ status, signal, out })
    })
  })
}

function runOrFail(what, result) {
  if (result.status !== 0) {
    throw new CheckError(`${what} failed (exit ${result.status ?? result.signal}):\n${result.out}`)
  }
  return result
}

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex')
}

function filesUnder(dir, base = dir) {
  const out = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...filesUnder(full, base))
    else out.push(relative(base, full).split(sep).join('/'))
  }
  return out.sort()
}

function findOnPath(name, pathValue = process.env.PATH ?? '') {
  for (const dir of pathValue.split(delimiter)) {
    if (!dir) continue
    const file = join(dir, name)
    try {
      accessSync(file, fsConstants.X_OK)
      if (statSync(file).isFile()) return file
    } catch {
      // not here
    }
  }
  return null
}

/** The environment `env` as the kernel holds it: NAME=value, each ended by a NUL byte. */
const envBytes = (env) =>
  Buffer.from(
    Object.entries(env)
      .map(([k, v]) => `${k}=${v}\0`)
      .join(''),
  )

/** The environments the command must get exactly: an odd one, an empty one, a huge one (about 1 MiB). */
function exactEnvironments(pathDir) {
  const huge = { PATH: pathDir }
  for (let i = 0; i < 2000; i++) huge[`BIG_${i}`] = `${i}:`.padEnd(500, 'x')
  return [
    [
      'an odd environment (a newline in a value, a name no shell takes)',
      { PATH: pathDir, FOO: 'bar', ODD: 'x\ny=z', 'A-B': '1', EMPTY: '' },
    ],
    ['an empty environment', {}],
    ['a huge environment (2000 variables, 1 MiB)', huge],
  ]
}

/**
 * Runs `cmd args -- sh -c ...` where the command (sh, whose /proc/PID/environ is the environment
 * its exec got, whatever sh then makes of it) prints its own environment to stdout and its
 * parent's, the init's, to stderr, both as the kernel holds them.
 */
async function environmentThrough(cmd, args, cat, { cwd, env }) {
  const script = '"$0" /proc/$$/environ && "$0" /proc/$PPID/environ >&2'
  const r = await new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args, '--', '/bin/sh', '-c', script, cat], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    const out = []
    const err = []
    child.stdout.on('data', (d) => out.push(d))
    child.stderr.on('data', (d) => err.push(d))
    child.on('error', reject)
    child.on('close', (status) => resolve({ status, out: Buffer.concat(out), err: Buffer.concat(err) }))
  })
  const show = (b) => JSON.stringify(b.toString('utf8')).slice(0, 2000)
  return { ok: r.status === 0, command: r.out, init: r.err, detail: `exit ${r.status}\ncommand: ${show(r.out)}\ninit: ${show(r.err)}` }
}

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`

// npm's own environment variables (npm_config_*, npm_package_*, from `npm run`) must not leak
// into the npm commands below: the install has to depend on nothing but what is set here.
function cleanEnv(extra = {}) {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && k !== 'NODE_OPTIONS' && k !== 'INIT_CWD') env[k] = v
  }
  return { ...env, ...extra }
}

const LIFECYCLE_INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall', 'prepare', 'preprepare', 'postprepare']
const TOOLCHAIN = ['cargo', 'rustc', 'rustup', 'cc', 'gcc', 'g++', 'clang', 'make', 'python', 'python3', 'zig', 'node-gyp']

async function main() {
  const platform = platformName()
  const mainPkg = JSON.parse(readFileSync(join(mainDir, 'package.json'), 'utf8'))
  const supported = mainPkg.napi.targets.length
  const platDir = join(root, 'npm', platform)
  if (!existsSync(join(platDir, 'package.json'))) {
    throw new CheckError(`no platform package npm/${platform}: this platform is not among the prebuilt targets`)
  }
  const platPkg = JSON.parse(readFileSync(join(platDir, 'package.json'), 'utf8'))
  const binaryName = `${mainPkg.napi.binaryName}.${platform}.node`
  console.log(`# platform ${platform}, node ${process.version}, ${supported} configured targets`)

  // --- 1. the binary, into its platform package -------------------------------------------------
  const built = join(mainDir, 'native', binaryName)
  if (!existsSync(built)) {
    console.log(`# ${relative(root, built)} is missing: building it (npm run build:native)`)
    runOrFail('npm run build:native', await run('npm', ['run', 'build:native'], { cwd: root, timeoutMs: 30 * 60_000 }))
  }
  const distIndex = join(mainDir, 'dist', 'index.cjs')
  const srcDir = join(mainDir, 'src')
  const stale = existsSync(distIndex) && readdirSync(srcDir).some((f) => statSync(join(srcDir, f)).mtimeMs > statSync(distIndex).mtimeMs)
  if (!existsSync(distIndex) || stale) {
    console.log(`# packages/subreaper/dist is ${stale ? 'older than src/' : 'missing'}: building it (npm run build:ts)`)
    runOrFail('npm run build:ts', await run('npm', ['run', 'build:ts'], { cwd: root }))
  }
  const builtInit = join(mainDir, 'native', 'subreaper')
  if (!existsSync(builtInit)) {
    console.log(`# ${relative(root, builtInit)} is missing: building it (npm run build:init)`)
    runOrFail('npm run build:init', await run('npm', ['run', 'build:init'], { cwd: root, timeoutMs: 30 * 60_000 }))
  }
  check(existsSync(builtInit), `the native init is built (${relative(root, builtInit)})`)
  check(existsSync(built), `the ${platform} addon is built (${relative(root, built)})`)
  const tmp = realpathSync(mkdtempSync(join(tmpdir(), 'subreaper-install-')))
  const packs = join(tmp, 'packs')
  const project = join(tmp, 'project')
  const home = join(tmp, 'home')
  const bin = join(tmp, 'bin')
  for (const d of [packs, project, home, bin]) mkdirSync(d)
  // The binary goes into its platform package, as `napi artifacts` puts it there for a release;
  // whatever was there before is put back at the end.
  const placed = join(platDir, binaryName)
  const placedBefore = existsSync(placed) ? readFileSync(placed) : null
  const placedInit = join(platDir, 'subreaper')
  const placedInitBefore = existsSync(placedInit) ? readFileSync(placedInit) : null
  let server
  try {
    copyFileSync(built, placed)
    const binarySha = sha256(placed)
    copyFileSync(builtInit, placedInit)
    const initSha = sha256(placedInit)

    // --- 2. what the packages hold ------------------------------------------------------------
    const packEnv = cleanEnv({ npm_config_update_notifier: 'false', npm_config_fund: 'false' })
    const dryRun = async (dir) => {
      const r = runOrFail(
        `npm pack --dry-run in ${relative(root, dir)}`,
        await run('npm', ['pack', '--dry-run', '--json'], { cwd: dir, env: packEnv }),
      )
      return JSON.parse(r.out.slice(r.out.indexOf('[')))[0]
    }
    const mainDry = await dryRun(mainDir)
    const platDry = await dryRun(platDir)
    const mainFiles = mainDry.files.map((f) => f.path).sort()
    const platFiles = platDry.files.map((f) => f.path).sort()

    const mainAllowed = mainFileAllowed
    const mainRequired = MAIN_REQUIRED_FILES
    const extra = mainFiles.filter((f) => !mainAllowed(f))
    check(
      extra.length === 0,
      'subreaper: npm pack --dry-run holds only dist/, native/binding.*, bin/subreaper, scripts/postinstall.mjs, README.md, LICENSE, package.json',
      `unexpected: ${extra.join(', ')}`,
    )
    const missing = mainRequired.filter((f) => !mainFiles.includes(f))
    check(
      missing.length === 0,
      'subreaper: npm pack --dry-run holds the entry points, types, loader, the CLI launcher, README.md and LICENSE',
      `missing: ${missing.join(', ')}${missing.includes('README.md') ? ' (prepack copies README.md from the repository root: is it there?)' : ''}`,
    )
    const platExpected = ['LICENSE', 'README.md', binaryName, 'package.json', 'subreaper'].sort()
    check(
      JSON.stringify(platFiles) === JSON.stringify(platExpected),
      `subreaper-${platform}: npm pack --dry-run holds exactly ${platExpected.join(', ')}`,
      `got: ${platFiles.join(', ')}`,
    )

    for (const dir of [mainDir, ...readdirSync(join(root, 'npm')).map((d) => join(root, 'npm', d))]) {
      check(
        existsSync(join(dir, 'LICENSE')) && readFileSync(join(dir, 'LICENSE'), 'utf8') === readFileSync(join(root, 'LICENSE'), 'utf8'),
        `${relative(root, dir)}/LICENSE is the repository's LICENSE`,
      )
    }

    // Versions and names in step: the loader requires `subreaper-<platform>`, the main package
    // depends on every platform package at its own version.
    const loader = readFileSync(join(mainDir, 'native', 'binding.cjs'), 'utf8')
    check(loader.includes(`require('${platPkg.name}')`), `native/binding.cjs loads the package ${platPkg.name}`)
    const platformDirs = readdirSync(join(root, 'npm')).sort()
    const skew = []
    for (const d of platformDirs) {
      const p = JSON.parse(readFileSync(join(root, 'npm', d, 'package.json'), 'utf8'))
      if (p.name !== `subreaper-${d}`) skew.push(`npm/${d} is named ${p.name}`)
      if (p.version !== mainPkg.version) skew.push(`${p.name}@${p.version}`)
      if (mainPkg.optionalDependencies?.[p.name] !== mainPkg.version)
        skew.push(`optionalDependencies[${p.name}] = ${mainPkg.optionalDependencies?.[p.name]}`)
      if (!p.os?.length || !p.cpu?.length || (p.os.includes('linux') && !p.libc?.length)) skew.push(`${p.name} lacks os/cpu/libc`)
    }
    check(
      skew.length === 0 && platformDirs.length === supported && Object.keys(mainPkg.optionalDependencies ?? {}).length === supported,
      `${supported} platform packages, each an optionalDependency of subreaper@${mainPkg.version} at that version, with os/cpu/libc`,
      skew.join('\n'),
    )
    // The one install script: subreaper's postinstall, plain Node (checked to do what it says
    // below, and an install without it below that).
    const POSTINSTALL = 'node scripts/postinstall.mjs'
    const scripts = (p) => LIFECYCLE_INSTALL_SCRIPTS.filter((s) => p.scripts?.[s]).map((s) => `${p.name} ${s}: ${p.scripts[s]}`)
    const hooks = [...scripts(mainPkg), ...scripts(platPkg)].filter((h) => h !== `subreaper postinstall: ${POSTINSTALL}`)
    const gyp = [...mainFiles, ...platFiles]
      .filter((f) => f.endsWith('binding.gyp'))
      .concat(mainPkg.gypfile || platPkg.gypfile ? ['gypfile'] : [])
    check(
      hooks.length === 0 && gyp.length === 0 && mainPkg.scripts?.postinstall === POSTINSTALL,
      `one install script, subreaper's postinstall (${POSTINSTALL}); none in ${platPkg.name}; no binding.gyp`,
      `found: ${[...hooks, ...gyp].join(', ')}`,
    )

    // Pack for real: the tarball must hold exactly what the dry run listed.
    const pack = async (dir) => {
      const r = runOrFail(
        `npm pack in ${relative(root, dir)}`,
        await run('npm', ['pack', '--json', '--pack-destination', packs], { cwd: dir, env: packEnv }),
      )
      const info = JSON.parse(r.out.slice(r.out.indexOf('[')))[0]
      return { ...info, path: join(packs, info.filename), list: info.files.map((f) => f.path).sort() }
    }
    const mainTgz = await pack(mainDir)
    const platTgz = await pack(platDir)
    check(
      JSON.stringify(mainTgz.list) === JSON.stringify(mainFiles) && JSON.stringify(platTgz.list) === JSON.stringify(platFiles),
      `npm pack wrote ${mainTgz.filename} (${kib(mainTgz.size)}) and ${platTgz.filename} (${kib(platTgz.size)}) with the dry run's files`,
    )

    // --- 3. install: offline, no toolchain, scripts allowed ----------------------------------
    // A registry that fails any request and counts it: with --offline there must be none.
    const requests = []
    server = createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`)
      res.writeHead(503).end()
    })
    await new Promise((r) => server.listen(0, '127.0.0.1', r))
    const registry = `http://127.0.0.1:${server.address().port}/`

    // PATH = a directory with node, npm, npx and sh only.
    const npmCli = findOnPath('npm')
    const npxCli = findOnPath('npx')
    if (!npmCli || !npxCli) throw new CheckError('npm/npx not found on PATH')
    symlinkSync(process.execPath, join(bin, 'node'))
    symlinkSync(realpathSync(npmCli), join(bin, 'npm'))
    symlinkSync(realpathSync(npxCli), join(bin, 'npx'))
    symlinkSync('/bin/sh', join(bin, 'sh'))
    const present = TOOLCHAIN.filter((t) => findOnPath(t, bin))
    check(present.length === 0, `the install PATH has node, npm, npx, sh only: no ${TOOLCHAIN.join(', ')}`, `found: ${present.join(', ')}`)
    const hostHas = ['cargo', 'rustc'].filter((t) => findOnPath(t))
    if (hostHas.length) console.log(`# (this machine has ${hostHas.join(' and ')} on its own PATH; the install does not see them)`)

    writeFileSync(join(home, '.npmrc'), '')
    const env = {
      PATH: bin,
      HOME: home,
      TMPDIR: tmp,
      LANG: 'C',
      npm_config_userconfig: join(home, '.npmrc'),
      npm_config_globalconfig: join(home, 'global-npmrc'),
      npm_config_cache: join(tmp, 'npm-cache'),
      npm_config_registry: registry,
      npm_config_offline: 'true',
      npm_config_update_notifier: 'false',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
    }
    // The tripwire is armed: npm run with this very environment, but allowed online, reaches it.
    const ping = await run('npm', ['ping', '--fetch-retries=0'], {
      cwd: project,
      env: { ...env, npm_config_offline: 'false' },
      timeoutMs: 60_000,
    })
    check(
      ping.status !== 0 && requests.length > 0,
      `the tripwire registry ${registry} sees npm's requests (npm ping online reached it)`,
      ping.out,
    )
    requests.length = 0

    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'subreaper-install-check', version: '1.0.0', private: true }, null, 2),
    )
    const install = await run(
      'npm',
      [
        'install',
        '--offline',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts=false',
        '--foreground-scripts',
        '--loglevel=http',
        mainTgz.path,
        platTgz.path,
      ],
      { cwd: project, env },
    )
    const log = install.out
    check(install.status === 0, 'npm install --offline of the two tarballs succeeded', log)
    check(requests.length === 0, 'the install made no request to the registry', requests.join('\n'))
    const fetched = log.split('\n').filter((l) => /\bhttp fetch\b/.test(l) && !/\b(ENOTCACHED|cache-only)\b/.test(l))
    check(fetched.length === 0, 'npm fetched nothing over the network (http log)', fetched.join('\n'))
    const ranScripts = (text) =>
      text
        .split('\n')
        .filter((l) => /^> \S+@\S+ (preinstall|install|postinstall|prepare)\b/.test(l) || /\b(gyp|cargo|rustc|Compiling)\b/.test(l))
    const ran = ranScripts(log)
    check(
      ran.length === 1 && ran[0].startsWith(`> subreaper@${mainPkg.version} postinstall`),
      "the install ran one script, subreaper's postinstall, and compiled nothing",
      ran.join('\n'),
    )
    check(
      /^subreaper postinstall: bin\/subreaper is now the native init \((hard link|copy) of /m.test(log),
      'the postinstall says it made bin/subreaper the native init',
      log,
    )

    const nm = join(project, 'node_modules')
    const installedMain = filesUnder(join(nm, 'subreaper'))
    const packedLauncher = join(mainDir, 'bin', 'subreaper')
    const installedPlat = filesUnder(join(nm, platPkg.name))
    check(
      JSON.stringify(installedMain) === JSON.stringify(mainFiles) && JSON.stringify(installedPlat) === JSON.stringify(platFiles),
      'node_modules/subreaper and node_modules/' + platPkg.name + ' hold exactly the packed files (nothing built)',
      `subreaper: ${installedMain.join(', ')}\n${platPkg.name}: ${installedPlat.join(', ')}`,
    )
    const installedBinary = join(nm, platPkg.name, binaryName)
    check(sha256(installedBinary) === binarySha, `the installed ${binaryName} is byte for byte the built one`)
    const installedInit = join(nm, platPkg.name, 'subreaper')
    check(
      sha256(installedInit) === initSha && (statSync(installedInit).mode & 0o111) !== 0,
      'the installed native init is byte for byte the built one, and executable',
    )
    const installedBin = join(nm, 'subreaper', 'bin', 'subreaper')
    check(
      sha256(installedBin) === initSha && statSync(installedBin).mode === statSync(installedInit).mode,
      `node_modules/subreaper/bin/subreaper is the native init now (same bytes and mode as ${platPkg.name}/subreaper), not the sh launcher`,
    )
    const others = readdirSync(nm).filter((d) => !d.startsWith('.') && d !== 'subreaper' && d !== platPkg.name)
    check(others.length === 0, "nothing else was installed (the other platforms' optional packages were skipped)", others.join(', '))

    // --- 4. smoke test, both module systems, and the CLI --------------------------------------
    const smokeDir = join(root, 'scripts', 'install-smoke')
    for (const f of readdirSync(smokeDir)) copyFileSync(join(smokeDir, f), join(project, f))
    for (const entry of ['smoke.cjs', 'smoke.mjs']) {
      const r = await run('node', [entry, platform], { cwd: project, env, timeoutMs: 90_000 })
      for (const line of r.out.trim().split('\n')) if (line.startsWith('ok - ')) passed++
      process.stdout.write(r.out.endsWith('\n') ? r.out : `${r.out}\n`)
      if (r.status !== 0) throw new CheckError(`node ${entry} failed (exit ${r.status ?? r.signal})`)
    }
    const cli = await run('npx', ['subreaper', '--', 'sh', '-c', 'exit 3'], { cwd: project, env, timeoutMs: 90_000 })
    if (process.platform !== 'linux') {
      // The native init is Linux-only; elsewhere the command says so.
      check(
        cli.status === 1 && /runs on Linux only/.test(cli.out),
        'npx subreaper says the native init runs on Linux only (exit 1)',
        cli.out,
      )
    } else {
      check(cli.status === 3, "npx subreaper -- sh -c 'exit 3' exits 3", `exit ${cli.status ?? cli.signal}:\n${cli.out}`)
    }
    for (const [what, cmd, args] of process.platform !== 'linux'
      ? []
      : [
          ['node_modules/.bin/subreaper', join(nm, '.bin', 'subreaper'), []],
          ['npx subreaper', 'npx', ['subreaper']],
        ]) {
      const { chain } = await processChain(cmd, args, { cwd: project, env })
      const shown = chain.map((p) => `${p.pid} ${p.exe}`).join(' <- ')
      // The postinstall's hard link (or copy) of the init: the same bytes under bin/subreaper's name.
      const isInit = chain[0] !== undefined && existsSync(chain[0].exe) && sha256(chain[0].exe) === initSha
      check(isInit, `${what}: the command's parent is the installed native init`, shown)
      if (cmd === 'npx') {
        // npx is npm, a node process: it stays as the parent it always is; between it and the
        // command there must be no node process.
        const firstNode = chain.findIndex((p) => p.exe === realpathSync(process.execPath))
        check(firstNode > 0, `npx subreaper: no node process between npm and the command (${shown})`, shown)
      } else {
        check(
          chain.length === 1,
          `${what}: the launcher became the init: its caller is the init's parent, nothing between (${shown})`,
          shown,
        )
      }
    }
    if (process.platform === 'linux') {
      const cat = findOnPath('cat')
      for (const [name, given] of exactEnvironments(bin)) {
        for (const [what, cmd, args] of [
          ['node_modules/.bin/subreaper', join(nm, '.bin', 'subreaper'), []],
          ['the binary by its path', installedInit, []],
        ]) {
          const got = await environmentThrough(cmd, args, cat, { cwd: project, env: given })
          check(
            got.ok && got.command.equals(envBytes(given)) && got.init.equals(envBytes(given)),
            `${what}: the init and its command get ${name}, byte for byte`,
            got.detail,
          )
        }
        // npx is npm, which sets variables of its own: what the init got, the command gets.
        const got = await environmentThrough('npx', ['subreaper'], cat, { cwd: project, env: { ...env, ...given } })
        check(
          got.ok && got.command.equals(got.init),
          `npx subreaper: the command gets the environment npx gave the init (${name}), byte for byte`,
          got.detail,
        )
      }
    }
    check(requests.length === 0, 'still no request to the registry after the smoke tests and npx', requests.join('\n'))

    // Install scripts disabled: the sh launcher stays and still works.
    const noScripts = join(tmp, 'no-scripts')
    mkdirSync(noScripts)
    writeFileSync(
      join(noScripts, 'package.json'),
      JSON.stringify({ name: 'subreaper-install-no-scripts', version: '1.0.0', private: true }, null, 2),
    )
    const quiet = await run(
      'npm',
      ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', '--foreground-scripts', mainTgz.path, platTgz.path],
      { cwd: noScripts, env },
    )
    check(quiet.status === 0 && ranScripts(quiet.out).length === 0, 'npm install --ignore-scripts succeeds and runs no script', quiet.out)
    const quietBin = join(noScripts, 'node_modules', '.bin', 'subreaper')
    check(
      sha256(join(noScripts, 'node_modules', 'subreaper', 'bin', 'subreaper')) === sha256(packedLauncher),
      'with --ignore-scripts, bin/subreaper is the packed sh launcher',
    )
    const quietRun = await run(quietBin, ['--', 'sh', '-c', 'exit 3'], { cwd: noScripts, env })
    check(quietRun.status === 3, "with --ignore-scripts, node_modules/.bin/subreaper -- sh -c 'exit 3' exits 3", quietRun.out)
    if (process.platform === 'linux') {
      const { chain } = await processChain(quietBin, [], { cwd: noScripts, env })
      const shown = chain.map((p) => `${p.pid} ${p.exe}`).join(' <- ')
      check(
        chain.length === 1 && existsSync(chain[0].exe) && sha256(chain[0].exe) === initSha,
        `with --ignore-scripts, the launcher execs the native init: nothing between (${shown})`,
        shown,
      )
      const given = { PATH: bin, FOO: 'bar', ODD: 'x\ny=z' }
      const got = await environmentThrough(quietBin, [], findOnPath('cat'), { cwd: noScripts, env: given })
      const sorted = (b) => b.toString('utf8').split('\0').sort().join('\0')
      check(
        got.ok && sorted(got.command) === sorted(envBytes(given)),
        "with --ignore-scripts, the launcher passes the caller's variables and no PWD of its own (a shell keeps their order only by chance)",
        got.detail,
      )
    }

    // Where no binary fits: Windows (played by a preload), and this platform with the optional
    // platform package left out (a second project installs the main tarball alone).
    const bare = join(tmp, 'bare')
    mkdirSync(bare)
    writeFileSync(join(bare, 'package.json'), JSON.stringify({ name: 'subreaper-install-bare', version: '1.0.0', private: true }, null, 2))
    const bareInstall = await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=http', mainTgz.path], {
      cwd: bare,
      env,
    })
    check(
      bareInstall.status === 0 && !existsSync(join(bare, 'node_modules', platPkg.name)),
      `npm install --offline of subreaper alone succeeds without ${platPkg.name} (optional)`,
      bareInstall.out,
    )
    for (const f of ['unsupported.cjs', 'as-win32.cjs']) copyFileSync(join(smokeDir, f), join(bare, f))
    for (const [cwd, args] of [
      [bare, ['unsupported.cjs', platform, `${platform} without ${platPkg.name}`]],
      [project, ['--require', './as-win32.cjs', 'unsupported.cjs', `win32-${process.arch}`, 'as win32']],
    ]) {
      const r = await run('node', args, { cwd, env, timeoutMs: 60_000 })
      process.stdout.write(r.out.endsWith('\n') ? r.out : `${r.out}\n`)
      if (r.status !== 0) throw new CheckError(`node ${args.join(' ')} failed (exit ${r.status ?? r.signal})`)
      passed++
    }
    check(requests.length === 0, 'no request to the registry from the second install either', requests.join('\n'))

    // --- 5. sizes --------------------------------------------------------------------------------
    const size = statSync(installedBinary).size
    const du = (d) => filesUnder(d).reduce((n, f) => n + statSync(join(d, f)).size, 0)
    console.log(`# installed binary: node_modules/${platPkg.name}/${binaryName}: ${size} bytes (${kib(size)})`)
    console.log(`# installed packages: subreaper ${kib(du(join(nm, 'subreaper')))}, ${platPkg.name} ${kib(du(join(nm, platPkg.name)))}`)
    console.log(`# tarballs: ${mainTgz.filename} ${kib(mainTgz.size)}, ${platTgz.filename} ${kib(platTgz.size)}`)

    // Last, as it spoils the install: a platform package whose binary cannot be loaded.
    writeFileSync(installedBinary, 'not an ELF or Mach-O file\n')
    const broken = await run('node', ['unsupported.cjs', platform, `${platPkg.name} with a broken binary`], {
      cwd: project,
      env,
      timeoutMs: 60_000,
    })
    process.stdout.write(broken.out.endsWith('\n') ? broken.out : `${broken.out}\n`)
    if (broken.status !== 0)
      throw new CheckError(`node unsupported.cjs with a broken binary failed (exit ${broken.status ?? broken.signal})`)
    passed++
  } finally {
    server?.close()
    if (placedBefore) writeFileSync(placed, placedBefore)
    else rmSync(placed, { force: true })
    if (placedInitBefore) writeFileSync(placedInit, placedInitBefore)
    else rmSync(placedInit, { force: true })
    if (keep) console.log(`# kept ${tmp}`)
    else rmSync(tmp, { recursive: true, force: true })
  }
}

try {
  await main()
} catch (err) {
  failed++
  console.log(`not ok - ${err instanceof CheckError ? err.message : err.stack}`)
}
console.log(`install: ${passed} passed, ${failed} failed`)
process.exitCode = failed ? 1 : 0
