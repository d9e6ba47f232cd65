#!/usr/bin/env node
// The release: `npm run release -- VERSION [options]`, run by hand for a dry run and by the
// tag-driven workflow (.github/workflows/release.yml) to publish. docs/releasing.md is the
// maintainer's guide.
//
//  1. Sets VERSION on the main package, on each of its optionalDependencies and on every
//     platform package, in the workspace's package-lock.json, as the Rust workspace's version
//     (the native init's `--version`) and in the tarball names of the README's install steps,
//     in the repository's files (a no-op when they already say it). Versions stay in step.
//  2. Collects each platform's addon (subreaper.<platform>.node) and native init (subreaper):
//     from --artifacts DIR (CI's bindings-<target>/ artifacts) when given, else, for this
//     machine's platform, from packages/subreaper/native/ (built with `npm run build` if it is
//     missing or its init reports another version). Each binary's header must name its
//     platform's format and architecture.
//  3. Assembles each platform package in OUT/npm/<platform>/ from its package.json `files`
//     (plus package.json, README.md, LICENSE), packs it and the main package into OUT/packs/,
//     and checks every tarball's contents against `npm pack --dry-run --json`: exactly the
//     expected files, the init executable, no install script (the main package: only the
//     postinstall that links the native init to bin/subreaper).
//  4. Publishes the platform packages first, then the main package, each tarball as checked,
//     with --access public and a dist-tag (`latest`, or `next` for a prerelease; --tag
//     overrides). A version already on the registry with the same tarball is skipped (a
//     re-run after a partial publish); with another tarball it is an error.
//
// `npm run pack:all` is `--no-publish --missing placeholder` at the manifests' version: the
// seven tarballs for an install from source (README, "Install").
//
// Options:
//   --dry-run            everything, `npm publish --dry-run` at the end (nothing is published)
//   --no-publish         stop after the checked tarballs (step 3)
//   --registry URL       publish there (a test's local registry)
//   --provenance         npm publish --provenance (CI: needs the workflow's id-token)
//   --tag TAG            the dist-tag
//   --artifacts DIR      the workflow's bindings-<target>/ directories
//   --missing MODE       a platform with no binaries: `fail` (default) or `placeholder`, a
//                        package with its os/cpu/libc and no binary, whose description says so;
//                        never published to the public registry (only with --registry, --dry-run
//                        or --no-publish)
//   --out DIR            where to assemble (default release/ in the repository, git-ignored)
import { chmodSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync, rmSync, writeFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'

import {
  CheckError,
  cleanEnv,
  MAIN_REQUIRED_FILES,
  mainFileAllowed,
  hostPlatform,
  mainDir,
  npmJson,
  PLATFORMS,
  platformDirs,
  readJson,
  root,
  run,
  runOrFail,
  onSignals,
} from './lib/packages.mjs'

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/
const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall', 'prepare']

function parseArgs(argv) {
  const opts = { dryRun: false, publish: true, provenance: false, missing: 'fail', out: join(root, 'release') }
  const rest = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new CheckError(`${a} needs a value`)
      return v
    }
    if (a === '--dry-run') opts.dryRun = true
    else if (a === '--no-publish') opts.publish = false
    else if (a === '--provenance') opts.provenance = true
    else if (a === '--registry') opts.registry = value()
    else if (a === '--tag') opts.tag = value()
    else if (a === '--artifacts') opts.artifacts = resolve(value())
    else if (a === '--missing') opts.missing = value()
    else if (a === '--out') opts.out = resolve(value())
    else if (a.startsWith('-')) throw new CheckError(`unknown option ${a}`)
    else rest.push(a)
  }
  // Packing only (`npm run pack:all`), the version is the one the manifests say.
  if (rest.length === 0 && !opts.publish) rest.push(readJson(join(mainDir, 'package.json')).version)
  if (rest.length !== 1) throw new CheckError('usage: npm run release -- VERSION [--dry-run] [--registry URL] [--artifacts DIR] ...')
  const version = rest[0].replace(/^v/, '')
  const m = SEMVER.exec(version)
  if (!m) throw new CheckError(`${rest[0]} is not a semver version (MAJOR.MINOR.PATCH, optionally -PRERELEASE)`)
  if (!['fail', 'placeholder'].includes(opts.missing)) throw new CheckError(`--missing takes fail or placeholder, not ${opts.missing}`)
  if (opts.missing === 'placeholder' && opts.publish && !opts.registry && !opts.dryRun) {
    throw new CheckError('--missing placeholder makes packages without binaries: publish them only to a --registry of your own')
  }
  opts.version = version
  // A prerelease never becomes `latest`: `npm install subreaper` keeps the last release.
  opts.tag ??= m[4] ? 'next' : 'latest'
  return opts
}

const log = (line) => console.log(line)

/** Step 1: one version everywhere. Returns the files it changed. */
function setVersion(version) {
  const changed = []
  const write = (file, before, after) => {
    if (before === after) return
    writeFileSync(file, after)
    changed.push(relative(root, file))
  }
  const json = (file, edit) => {
    const text = readFileSync(file, 'utf8')
    const pkg = JSON.parse(text)
    edit(pkg)
    write(file, text, `${JSON.stringify(pkg, null, 2)}\n`)
    return pkg
  }
  const dirs = platformDirs()
  const known = PLATFORMS.map((p) => p.platform).sort()
  if (JSON.stringify(dirs) !== JSON.stringify(known))
    throw new CheckError(`npm/ holds ${dirs.join(', ')}; the release knows ${known.join(', ')}`)
  const names = dirs.map((d) => json(join(root, 'npm', d, 'package.json'), (p) => (p.version = version)).name)
  json(join(mainDir, 'package.json'), (p) => {
    p.version = version
    const deps = Object.keys(p.optionalDependencies ?? {}).sort()
    if (JSON.stringify(deps) !== JSON.stringify([...names].sort())) {
      throw new CheckError(`subreaper's optionalDependencies (${deps.join(', ')}) are not the platform packages (${names.join(', ')})`)
    }
    for (const n of deps) p.optionalDependencies[n] = version
    if (p.napi.targets.length !== PLATFORMS.length || p.napi.targets.some((t) => !PLATFORMS.some((x) => x.target === t))) {
      throw new CheckError(`napi.targets (${p.napi.targets.join(', ')}) are not the release's targets`)
    }
  })
  // The workspace's lockfile records the package and its platform packages (npm ci checks it).
  json(join(root, 'package-lock.json'), (lock) => {
    const entry = lock.packages?.['packages/subreaper']
    if (!entry) throw new CheckError('package-lock.json has no packages/subreaper entry')
    entry.version = version
    for (const n of names) {
      entry.optionalDependencies[n] = version
      const dep = lock.packages[`node_modules/${n}`]
      if (!dep) continue
      dep.version = version
      // A published version's address and checksum are not this version's.
      delete dep.resolved
      delete dep.integrity
    }
  })
  // The Rust workspace: the native init prints this version (`subreaper --version`).
  const cargo = join(root, 'Cargo.toml')
  const cargoText = readFileSync(cargo, 'utf8')
  const section = /(\[workspace\.package\][^[]*?\nversion = ")[^"]*(")/
  if (!section.test(cargoText)) throw new CheckError('Cargo.toml has no [workspace.package] version')
  write(cargo, cargoText, cargoText.replace(section, `$1${version}$2`))
  const lock = join(root, 'Cargo.lock')
  const lockText = readFileSync(lock, 'utf8')
  write(
    lock,
    lockText,
    lockText.replace(/(\[\[package\]\]\nname = "subreaper-(?:core|node|init)"\nversion = ")[^"]*(")/g, `$1${version}$2`),
  )
  // The README's install steps name the tarballs by version (npm run test:readme runs them).
  const readme = join(root, 'README.md')
  const readmeText = readFileSync(readme, 'utf8')
  write(readme, readmeText, readmeText.replace(/(subreaper-(?:[\w$-]+-)?)\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(\.tgz)/g, `$1${version}$2`))
  return changed
}

/** What a binary's header says it is: `elf`/`macho` and its machine, or null. */
function binaryKind(file) {
  const buf = Buffer.alloc(20)
  const fd = openSync(file, 'r')
  try {
    readSync(fd, buf, 0, 20, 0)
  } finally {
    closeSync(fd)
  }
  if (buf.readUInt32BE(0) === 0x7f454c46) return { format: 'elf', machine: buf.readUInt16LE(18) }
  if (buf.readUInt32LE(0) === 0xfeedfacf) return { format: 'macho', machine: buf.readUInt32LE(4) }
  return null
}

/** Step 2: where each platform's two binaries come from (null: none). */
async function collect(opts) {
  const host = hostPlatform()
  const local = join(mainDir, 'native')
  const sources = new Map()
  for (const p of PLATFORMS) {
    const addon = `subreaper.${p.platform}.node`
    const fromArtifacts = opts.artifacts && join(opts.artifacts, `bindings-${p.target}`)
    let dir = null
    let origin
    if (fromArtifacts && existsSync(join(fromArtifacts, addon))) {
      dir = fromArtifacts
      origin = `artifact bindings-${p.target}`
    } else if (!opts.artifacts && p.platform === host) {
      const initVersion = async () => (await run(join(local, 'subreaper'), ['--version'])).stdout.trim()
      if (!existsSync(join(local, addon)) || !existsSync(join(local, 'subreaper')) || (await initVersion()) !== opts.version) {
        log(`# ${relative(root, local)} lacks this version's ${p.platform} binaries: npm run build`)
        await runOrFail('npm', ['run', 'build'], { timeoutMs: 60 * 60_000 })
      }
      const says = await initVersion()
      if (says !== opts.version) throw new CheckError(`the built init says it is ${says}, not ${opts.version}`)
      dir = local
      origin = `built here (${relative(root, local)})`
    }
    if (dir) {
      for (const f of [addon, 'subreaper']) {
        const file = join(dir, f)
        if (!existsSync(file)) throw new CheckError(`${origin} has no ${f}`)
        const kind = binaryKind(file)
        if (kind?.format !== p.format || kind.machine !== p.machine) {
          throw new CheckError(
            `${relative(root, file)} is not a ${p.format} binary for ${p.platform} (its header: ${JSON.stringify(kind)})`,
          )
        }
      }
    } else if (opts.missing === 'fail') {
      throw new CheckError(
        `no binaries for ${p.platform}: ${opts.artifacts ? `no ${relative(root, fromArtifacts)}/${addon}` : `only ${host} is built here; pass --artifacts DIR`}`,
      )
    }
    sources.set(p.platform, dir && { dir, origin })
  }
  return sources
}

async function packDryRun(dir, env) {
  const r = await runOrFail('npm', ['pack', '--dry-run', '--json'], { cwd: dir, env })
  return npmJson(r.stdout)[0]
}

/** Step 3: assembled, packed and checked; returns [{ name, tarball, integrity, placeholder }]. */
async function assembleAndPack(opts, sources, env) {
  rmSync(opts.out, { recursive: true, force: true })
  const packs = join(opts.out, 'packs')
  mkdirSync(packs, { recursive: true })
  const results = []
  const mainPkg = readJson(join(mainDir, 'package.json'))
  const packChecked = async (dir, expect) => {
    const dry = await packDryRun(dir, env)
    const files = dry.files.map((f) => f.path).sort()
    const problem = expect(files, dry)
    if (problem) throw new CheckError(`${dry.name}@${dry.version}: npm pack --dry-run: ${problem}; files: ${files.join(', ')}`)
    const r = await runOrFail('npm', ['pack', '--json', '--pack-destination', packs], { cwd: dir, env })
    const real = npmJson(r.stdout)[0]
    const packed = real.files.map((f) => f.path).sort()
    if (JSON.stringify(packed) !== JSON.stringify(files))
      throw new CheckError(`${real.name}: npm pack packed ${packed.join(', ')}, not what its dry run listed`)
    if (real.version !== opts.version) throw new CheckError(`${real.name} packed at ${real.version}, not ${opts.version}`)
    return { name: real.name, tarball: join(packs, real.filename), integrity: real.integrity, size: real.size, files }
  }
  for (const p of PLATFORMS) {
    const src = join(root, 'npm', p.platform)
    const pkg = readJson(join(src, 'package.json'))
    const dir = join(opts.out, 'npm', p.platform)
    mkdirSync(dir, { recursive: true })
    for (const f of ['README.md', 'LICENSE']) copyFileSync(join(src, f), join(dir, f))
    if (readFileSync(join(dir, 'LICENSE'), 'utf8') !== readFileSync(join(root, 'LICENSE'), 'utf8'))
      throw new CheckError(`npm/${p.platform}/LICENSE is not the repository's`)
    if (INSTALL_SCRIPTS.some((s) => pkg.scripts?.[s])) throw new CheckError(`${pkg.name} has an install script`)
    if (!pkg.os?.length || !pkg.cpu?.length || (pkg.os.includes('linux') && !pkg.libc?.length) || !pkg.engines?.node) {
      throw new CheckError(`${pkg.name} lacks os, cpu, libc (Linux) or engines`)
    }
    // Provenance ties each package to this repository: all seven must name it, and one license.
    if (pkg.repository?.url !== mainPkg.repository.url || pkg.license !== mainPkg.license) {
      throw new CheckError(`${pkg.name}: repository ${pkg.repository?.url} / license ${pkg.license} are not subreaper's`)
    }
    const source = sources.get(p.platform)
    let expected
    if (source) {
      for (const f of pkg.files) {
        if (!existsSync(join(source.dir, f))) throw new CheckError(`${pkg.name} lists ${f} in files; ${source.origin} has no such file`)
        copyFileSync(join(source.dir, f), join(dir, f))
        // Artifacts keep no file modes; the init must be executable, the addon need not be.
        chmodSync(join(dir, f), f.endsWith('.node') ? 0o644 : 0o755)
      }
      writeFileSync(join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`)
      expected = ['LICENSE', 'README.md', 'package.json', ...pkg.files].sort()
    } else {
      // A placeholder: the same name, version, os, cpu and libc (so a lockfile written from this
      // registry is whole, and npm skips it off its platform as it would skip the real one), no
      // binary, and a description that says so.
      const rest = { ...pkg }
      delete rest.main
      delete rest.files
      const placeholder = {
        ...rest,
        description: `PLACEHOLDER for tests, no binary: stands in for ${pkg.name} on a test registry (the real one holds ${pkg.files.join(' and ')})`,
        files: [],
        subreaperPlaceholder: true,
      }
      writeFileSync(join(dir, 'package.json'), `${JSON.stringify(placeholder, null, 2)}\n`)
      expected = ['LICENSE', 'README.md', 'package.json']
    }
    const packed = await packChecked(dir, (files, dry) => {
      if (JSON.stringify(files) !== JSON.stringify(expected)) return `expected exactly ${expected.join(', ')}`
      const init = dry.files.find((f) => f.path === 'subreaper')
      if (init && (init.mode & 0o111) === 0) return 'the native init is not executable'
      return null
    })
    results.push({ ...packed, placeholder: !source, origin: source?.origin ?? 'placeholder (no binary)' })
  }
  // The main package, packed in place (its prepack copies the README and checks the build).
  // Its one install script links the platform package's native init to bin/subreaper (plain
  // Node, no network, never failing the install); nothing else may run at install.
  const mainScripts = INSTALL_SCRIPTS.filter((s) => mainPkg.scripts?.[s])
  if (mainScripts.join() !== 'postinstall' || mainPkg.scripts.postinstall !== 'node scripts/postinstall.mjs') {
    throw new CheckError(
      `subreaper's install scripts are ${JSON.stringify(mainScripts)}: only postinstall (node scripts/postinstall.mjs) is expected`,
    )
  }
  const required = MAIN_REQUIRED_FILES
  const packed = await packChecked(mainDir, (files, dry) => {
    const missing = required.filter((f) => !files.includes(f))
    if (missing.length) return `missing ${missing.join(', ')} (run npm run build)`
    const extra = files.filter((f) => !mainFileAllowed(f))
    if (extra.length) return `unexpected ${extra.join(', ')}`
    const bin = dry.files.find((f) => f.path === 'bin/subreaper')
    if ((bin.mode & 0o111) === 0) return 'bin/subreaper is not executable'
    return null
  })
  results.push({ ...packed, placeholder: false, origin: 'packages/subreaper' })
  return results
}

/** Step 4: platform packages first, so the main package never names a version not yet there. */
async function publish(opts, packed, env) {
  const registryArgs = opts.registry ? ['--registry', opts.registry] : []
  for (const p of packed) {
    if (!opts.dryRun) {
      const view = await run('npm', ['view', `${p.name}@${opts.version}`, 'dist.integrity', '--json', ...registryArgs], { env })
      const there = view.status === 0 && view.stdout.trim() ? JSON.parse(view.stdout) : null
      if (there === p.integrity) {
        log(`# ${p.name}@${opts.version} is already published with this very tarball: skipped`)
        continue
      }
      if (there) throw new CheckError(`${p.name}@${opts.version} is already published with another tarball (${there})`)
    }
    const args = ['publish', p.tarball, '--access', 'public', '--tag', opts.tag, ...registryArgs]
    if (opts.provenance) args.push('--provenance')
    if (opts.dryRun) args.push('--dry-run')
    await runOrFail('npm', args, { env })
    log(
      `${opts.dryRun ? 'would publish' : 'published'} ${p.name}@${opts.version} (${p.origin}) with tag ${opts.tag}${opts.registry ? ` to ${opts.registry}` : ''}`,
    )
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  // npm_config_* from the caller's environment (a test's registry, token, cache) are kept; those
  // of `npm run` itself are dropped.
  const env = cleanEnv(Object.fromEntries(Object.entries(process.env).filter(([k]) => /^npm_config_(userconfig|cache|registry)$/i.test(k))))
  const changed = setVersion(opts.version)
  if (changed.length && opts.artifacts) {
    // The artifacts were built from the manifests as they were: their init says another version.
    throw new CheckError(
      `${changed.join(', ')} said another version than ${opts.version}: the artifacts were built from that. ` +
        `Set it first (npm run release -- ${opts.version} --no-publish), commit, and tag that commit v${opts.version}`,
    )
  }
  log(
    changed.length ? `# version ${opts.version} set in ${changed.join(', ')}` : `# version ${opts.version}: every manifest already says it`,
  )
  const sources = await collect(opts)
  const packed = await assembleAndPack(opts, sources, env)
  for (const p of packed) log(`ok - ${relative(root, p.tarball)} ${p.size} bytes: ${p.files.join(', ')}`)
  const placeholders = packed.filter((p) => p.placeholder).map((p) => p.name)
  if (placeholders.length) log(`# placeholders (no binary): ${placeholders.join(', ')}`)
  if (opts.publish) await publish(opts, packed, env)
  if (changed.length) log(`# commit the version change (${changed.join(', ')}) and tag it v${opts.version}`)
}

// Interrupted: the npm commands it runs end with it.
onSignals('release')

try {
  await main()
} catch (err) {
  console.error(`release: ${err instanceof CheckError ? err.message : err.stack}`)
  process.exitCode = 1
}
