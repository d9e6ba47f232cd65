// What the release script and the registry test share: the seven packages and how the
// platform ones map to Rust targets and binary formats, and a way to run npm and read its JSON.
import { spawn } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const mainDir = join(root, 'packages', 'subreaper')

/**
 * Every platform package: its npm/<dir>, the Rust target CI builds for it (the name of its
 * `bindings-<target>` artifact) and what the header of its binaries says (ELF e_machine, or
 * Mach-O cputype).
 */
export const PLATFORMS = [
  { platform: 'linux-x64-gnu', target: 'x86_64-unknown-linux-gnu', format: 'elf', machine: 62 },
  { platform: 'linux-x64-musl', target: 'x86_64-unknown-linux-musl', format: 'elf', machine: 62 },
  { platform: 'linux-arm64-gnu', target: 'aarch64-unknown-linux-gnu', format: 'elf', machine: 183 },
  { platform: 'linux-arm64-musl', target: 'aarch64-unknown-linux-musl', format: 'elf', machine: 183 },
  { platform: 'darwin-x64', target: 'x86_64-apple-darwin', format: 'macho', machine: 0x01000007 },
  { platform: 'darwin-arm64', target: 'aarch64-apple-darwin', format: 'macho', machine: 0x0100000c },
]

/** The platform as napi-rs names it: linux-x64-gnu, linux-arm64-musl, darwin-arm64... */
export function hostPlatform() {
  const base = `${process.platform}-${process.arch}`
  if (process.platform !== 'linux') return base
  const glibc = typeof process.report.getReport().header.glibcVersionRuntime === 'string'
  return `${base}-${glibc ? 'gnu' : 'musl'}`
}

/** What the main package's tarball must hold; besides these, only dist/ modules and types. */
export const MAIN_REQUIRED_FILES = [
  'LICENSE',
  'README.md',
  'package.json',
  'bin/subreaper',
  'scripts/postinstall.mjs',
  'native/binding.cjs',
  'native/binding.d.cts',
  'dist/index.cjs',
  'dist/index.mjs',
  'dist/index.d.cts',
  'dist/index.d.mts',
  'dist/init.cjs',
  'dist/init.mjs',
  'dist/native.cjs',
]

/** Whether `file` may be in the main package's tarball. */
export const mainFileAllowed = (file) => MAIN_REQUIRED_FILES.includes(file) || /^dist\/[\w.-]+\.(cjs|mjs|d\.cts|d\.mts)$/.test(file)

export const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'))

/** npm/<platform> directories, sorted. */
export const platformDirs = () => readdirSync(join(root, 'npm')).sort()

/**
 * The environment for the npm commands a script runs: npm's own variables from `npm run`
 * (npm_config_*, npm_package_*) are dropped, so they depend on nothing but `extra`.
 */
export function cleanEnv(extra = {}) {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && k !== 'NODE_OPTIONS' && k !== 'INIT_CWD') env[k] = v
  }
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra }
}

const running = new Set()

/** Ends the commands `run` started that still run (SIGTERM), once they have exited. */
export function stopRunning() {
  return Promise.all(
    [...running].map((child) => {
      const closed = new Promise((resolve) => child.once('close', resolve))
      child.kill('SIGTERM')
      return closed
    }),
  )
}

/** Runs a command, its output collected (stdout and stderr apart, and together as `out`). */
export function run(cmd, args, { cwd = root, env = process.env, timeoutMs = 5 * 60_000, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    running.add(child)
    let out = ''
    let stdout = ''
    child.stdout.on('data', (d) => {
      out += d
      stdout += d
    })
    child.stderr.on('data', (d) => (out += d))
    if (input !== undefined) child.stdin.end(input)
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (status, signal) => {
      running.delete(child)
      clearTimeout(timer)
      resolve({ status, signal, out, stdout })
    })
  })
}

export class CheckError extends Error {}

/** `run`, failing with the command's output unless it exits 0. */
export async function runOrFail(cmd, args, options) {
  const r = await run(cmd, args, options)
  if (r.status !== 0) {
    throw new CheckError(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal}):\n${r.out}`)
  }
  return r
}

/** The JSON document npm printed on stdout (`--json`), past any notice before it. */
export function npmJson(stdout) {
  const start = stdout.search(/^[[{]/m)
  if (start < 0) throw new CheckError(`npm printed no JSON:\n${stdout}`)
  return JSON.parse(stdout.slice(start))
}

/** A test script's checks: `check` prints `ok - what`, or throws; `runMain` counts the failure. */
export function checks() {
  const counts = { passed: 0, failed: 0 }
  const check = (cond, what, detail = '') => {
    if (!cond) throw new CheckError(`${what}${detail ? `\n${detail}` : ''}`)
    counts.passed++
    console.log(`ok - ${what}`)
  }
  /** Runs `main`, a failure printed as `not ok`, then `cleanup`, whatever happened. */
  const runMain = async (main, cleanup) => {
    try {
      await main()
    } catch (err) {
      counts.failed++
      console.log(`not ok - ${err instanceof CheckError ? err.message : err.stack}`)
    } finally {
      await cleanup()
    }
  }
  return { check, counts, runMain }
}

/** On SIGINT, SIGTERM or SIGHUP: `cleanup` (the commands `run` started end first), then exit 1. */
export function onSignals(name, cleanup = async () => {}) {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      console.error(`${name}: interrupted by ${signal}`)
      stopRunning()
        .then(cleanup)
        .finally(() => process.exit(1))
    })
  }
}
