// The native init (`subreaper`, crates/subreaper-init) next to the inits users would otherwise
// pick, by each path users run it: the binary itself (the platform package's, by its path),
// node_modules/.bin/subreaper once the package's postinstall made it the native init, and the same
// left the sh launcher (--ignore-scripts); and Debian's tini, dumb-init and catatonit (installed with apt-get if missing; an init that
// cannot be installed is skipped with a note). Every measurement interleaves the inits round by
// round:
//
//   memory   resident memory (VmRSS) and threads of the init while its command (sleep) runs
//   startup  exec of the init -> the command's first byte: Node takes CLOCK_MONOTONIC just before
//            spawning `INIT -- init-helper stamp`, the command prints CLOCK_MONOTONIC first thing;
//            also the same without an init (the spawn's own cost), and the difference
//   drain    as PID 1 of a new PID namespace (unshare --pid --fork): the command leaves N zombies
//            and exits (its stamp); until unshare has seen PID 1 exit. dumb-init exits as soon as
//            it has reaped its command and leaves the rest to the kernel (which reaps a dying
//            namespace's processes itself): its number is not a drain.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import { intEnv, progress, quantile, report, summarize, type Summary } from './lib.ts'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '..')
const helper = join(here, '.build', 'init-helper')
const ROUNDS = intEnv('SUBREAPER_BENCH_INIT_ROUNDS', intEnv('SUBREAPER_BENCH_ROUNDS', 20))
const DRAIN_ROUNDS = intEnv('SUBREAPER_BENCH_INIT_DRAIN_ROUNDS', Math.max(2, Math.min(ROUNDS, 7)))
const ZOMBIES = intEnv('SUBREAPER_BENCH_INIT_ZOMBIES', 10_000)

/** How each init runs a command, outside PID 1 (as a subreaper) and as PID 1. */
interface Init {
  name: string
  file: string
  args: string[]
  pid1Args: string[]
}

const native = join(root, 'packages', 'subreaper', 'native', 'subreaper')

/**
 * node_modules as npm leaves it, in bench/.build: the subreaper package (its sh launcher, its
 * postinstall) beside its platform package (the native init), and .bin/subreaper linking to the
 * package's bin/subreaper. `postinstall` runs the package's real install script there, which
 * makes bin/subreaper the native init; without it the sh launcher stays (--ignore-scripts).
 */
function installed(dir: string, postinstall: boolean): string {
  const pkgDir = join(root, 'packages', 'subreaper')
  const nm = join(dir, 'node_modules')
  rmSync(dir, { recursive: true, force: true })
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }
  const platform = `subreaper-${process.platform}-${process.arch}-gnu`
  for (const d of [join(nm, '.bin'), join(nm, 'subreaper', 'bin'), join(nm, 'subreaper', 'scripts'), join(nm, platform)])
    mkdirSync(d, { recursive: true })
  writeFileSync(
    join(nm, 'subreaper', 'package.json'),
    JSON.stringify({ name: 'subreaper', version: pkg.version, optionalDependencies: { [platform]: pkg.version } }),
  )
  copyFileSync(join(pkgDir, 'bin', 'subreaper'), join(nm, 'subreaper', 'bin', 'subreaper'))
  chmodSync(join(nm, 'subreaper', 'bin', 'subreaper'), 0o755)
  copyFileSync(join(pkgDir, 'scripts', 'postinstall.mjs'), join(nm, 'subreaper', 'scripts', 'postinstall.mjs'))
  writeFileSync(join(nm, platform, 'package.json'), JSON.stringify({ name: platform, version: pkg.version }))
  copyFileSync(native, join(nm, platform, 'subreaper'))
  chmodSync(join(nm, platform, 'subreaper'), 0o755)
  symlinkSync('../subreaper/bin/subreaper', join(nm, '.bin', 'subreaper'))
  if (postinstall) execFileSync(process.execPath, [join(nm, 'subreaper', 'scripts', 'postinstall.mjs')], { stdio: 'ignore' })
  return join(nm, '.bin', 'subreaper')
}

const dotBin = installed(join(here, '.build', 'installed'), true)
const dotBinLauncher = installed(join(here, '.build', 'installed-ignore-scripts'), false)
const candidates: Array<Init & { debian?: string }> = [
  { name: 'subreaper', file: native, args: ['--'], pid1Args: ['--'] },
  { name: '.bin/subreaper', file: dotBin, args: ['--'], pid1Args: ['--'] },
  { name: '.bin (sh launcher)', file: dotBinLauncher, args: ['--'], pid1Args: ['--'] },
  { name: 'tini', file: '/usr/bin/tini', args: ['-s', '--'], pid1Args: ['--'], debian: 'tini' },
  { name: 'dumb-init', file: '/usr/bin/dumb-init', args: [], pid1Args: [], debian: 'dumb-init' },
  { name: 'catatonit', file: '/usr/bin/catatonit', args: ['--'], pid1Args: ['--'], debian: 'catatonit' },
]

const notes: string[] = []
function available(): Init[] {
  const missing = candidates.filter((c) => c.debian && !existsSync(c.file)).map((c) => c.debian!)
  if (missing.length > 0) {
    progress(`init: installing ${missing.join(' ')} (apt-get)`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const apt = (args: string[]) =>
      spawnSync('apt-get', args, { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 300_000 })
    let r = apt(['install', '-y', '--no-install-recommends', ...missing])
    if (r.status !== 0) {
      apt(['update'])
      r = apt(['install', '-y', '--no-install-recommends', ...missing])
    }
    if (r.status !== 0)
      notes.push(`apt-get install ${missing.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)}`)
  }
  return candidates.filter((c) => {
    if (existsSync(c.file)) return true
    notes.push(
      c.debian ? `${c.name} skipped: not installed (Debian package ${c.debian})` : `${c.name} skipped: ${c.file} missing (npm run build)`,
    )
    return false
  })
}

function status(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return ''
  }
}

function childrenOf(parent: number): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    if (new RegExp(`^PPid:\\s*${parent}$`, 'm').test(status(Number(name)))) out.push(Number(name))
  }
  return out
}

const sleepMs = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** RSS (KiB) and threads of the init while `sleep` runs under it. */
async function memory(init: Init): Promise<{ rssKiB: number; threads: number }> {
  const child = spawn(init.file, [...init.args, 'sleep', '30'], { stdio: 'ignore' })
  const pid = child.pid!
  const closed = new Promise((r) => child.on('close', r))
  try {
    for (let i = 0; i < 3000; i++) {
      const sleeper = childrenOf(pid).find((c) => /^Name:\s*sleep$/m.test(status(c)))
      if (sleeper !== undefined) {
        const s = status(pid)
        const rssKiB = Number(/^VmRSS:\s*(\d+) kB$/m.exec(s)?.[1])
        const threads = Number(/^Threads:\s*(\d+)$/m.exec(s)?.[1])
        process.kill(sleeper, 'SIGKILL')
        return { rssKiB, threads }
      }
      await sleepMs(2)
    }
    throw new Error(`${init.name}: its command never ran`)
  } finally {
    child.kill('SIGKILL')
    await closed
  }
}

/** Spawns `file args` and returns its stdout once it has closed, with the time it closed. */
function runToEnd(file: string, args: string[]): Promise<{ out: string; t0: bigint; end: bigint; code: number | null }> {
  return new Promise((done, fail) => {
    const t0 = process.hrtime.bigint()
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.on('error', fail)
    child.on('close', (code) => done({ out, t0, end: process.hrtime.bigint(), code }))
  })
}

/** `file args` runs init-helper stamp: ms from its spawn to the stamp. */
async function startupMs(file: string, args: string[]): Promise<number> {
  const r = await runToEnd(file, args)
  const stamp = BigInt(r.out.trim())
  return Number(stamp - r.t0) / 1e6
}

async function drainMs(init: Init): Promise<number> {
  const r = await runToEnd('unshare', ['--pid', '--fork', init.file, ...init.pid1Args, helper, 'zombies', String(ZOMBIES)])
  if (r.code !== 0) throw new Error(`${init.name} as PID 1 exited ${r.code}`)
  return Number(r.end - BigInt(r.out.trim())) / 1e6
}

mkdirSync(dirname(helper), { recursive: true })
execFileSync(process.env.CC ?? 'cc', ['-O2', '-Wall', '-o', helper, join(here, 'init-helper.c')], { stdio: 'inherit' })
const inits = available()
const mem: Record<string, { rssKiB: number[]; threads: number[] }> = {}
const start: Record<string, number[]> = { 'no init': [] }
const drain: Record<string, number[]> = {}
for (const i of inits) {
  mem[i.name] = { rssKiB: [], threads: [] }
  start[i.name] = []
  drain[i.name] = []
}
progress(`init: memory and start-up, ${ROUNDS} rounds of ${inits.map((i) => i.name).join(', ')}`)
const stampUnder = (i: Init) => startupMs(i.file, [...i.args, helper, 'stamp'])
for (const i of inits) await stampUnder(i) // warm the page cache
for (let round = 0; round < ROUNDS; round++) {
  start['no init']!.push(await startupMs(helper, ['stamp']))
  for (const i of inits) {
    const m = await memory(i)
    mem[i.name]!.rssKiB.push(m.rssKiB)
    mem[i.name]!.threads.push(m.threads)
    start[i.name]!.push(await stampUnder(i))
  }
}
const unshareWorks = spawnSync('unshare', ['--pid', '--fork', 'true']).status === 0
if (unshareWorks) {
  progress(`init: PID-1 drain of ${ZOMBIES} zombies, ${DRAIN_ROUNDS} rounds`)
  for (let round = 0; round < DRAIN_ROUNDS; round++) {
    // The .bin paths run the same binary as subreaper: their drain is its drain.
    for (const i of inits) if (!i.name.startsWith('.bin')) drain[i.name]!.push(await drainMs(i))
  }
} else {
  notes.push('PID-1 drain skipped: `unshare --pid --fork` fails here')
}

const startSummary: Record<string, Summary> = Object.fromEntries(Object.entries(start).map(([k, v]) => [k, summarize(v)]))
const added = Object.fromEntries(
  inits.map((i) => [
    i.name,
    quantile(
      start[i.name]!.map((v, r) => v - start['no init']![r]!),
      0.5,
    ),
  ]),
)
const fmt = (v: number, d = 1) => v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d })
const header = ['', ...inits.map((i) => i.name)]
const rows = [
  ['resident memory, KiB', ...inits.map((i) => fmt(quantile(mem[i.name]!.rssKiB, 0.5), 0))],
  ['threads', ...inits.map((i) => String(quantile(mem[i.name]!.threads, 0.5)))],
  [
    `exec of the init -> command's first byte, ms (no init: ${fmt(startSummary['no init']!.median, 2)})`,
    ...inits.map((i) => fmt(startSummary[i.name]!.median, 2)),
  ],
  ['   added by the init (paired per round), ms', ...inits.map((i) => fmt(added[i.name]!, 2))],
  ...(unshareWorks
    ? [
        [
          `PID 1 draining ${ZOMBIES.toLocaleString('en-US')} adopted zombies, ms`,
          ...inits.map((i) =>
            drain[i.name]!.length === 0 ? '-' : fmt(quantile(drain[i.name]!, 0.5), 0) + (i.name === 'dumb-init' ? ' *' : ''),
          ),
        ],
      ]
    : []),
]
const widths = header.map((_, c) => Math.max(...[header, ...rows].map((r) => r[c]!.length)))
const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`
const table = [
  `Native init (the binary; .bin/subreaper after the postinstall; .bin left the sh launcher) next to tini, dumb-init and catatonit (medians: ${ROUNDS} rounds; drain ${DRAIN_ROUNDS} rounds)`,
  line(header),
  `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
  ...rows.map(line),
  ...(unshareWorks && inits.some((i) => i.name === 'dumb-init')
    ? ['* dumb-init exits once its command is reaped; the kernel reaps the rest of the dying namespace']
    : []),
  ...notes.map((n) => `note: ${n}`),
  `targets: memory <= 2,048 KiB: ${quantile(mem.subreaper?.rssKiB ?? [NaN], 0.5) <= 2048 ? 'met' : 'NOT met'}; start-up added <= 5 ms: ${(added.subreaper ?? NaN) <= 5 ? 'met' : 'NOT met'}${
    start.tini
      ? `; .bin/subreaper start-up <= tini's + 0.5 ms: ${startSummary['.bin/subreaper']!.median <= startSummary.tini!.median + 0.5 ? 'met' : 'NOT met'}`
      : ''
  }${
    unshareWorks && drain.catatonit
      ? `; drain no slower than catatonit: ${quantile(drain.subreaper!, 0.5) <= quantile(drain.catatonit, 0.5) ? 'met' : 'NOT met'}`
      : ''
  }`,
].join('\n')
process.stderr.write(`${table}\n`)
report({
  rounds: ROUNDS,
  drainRounds: DRAIN_ROUNDS,
  zombies: ZOMBIES,
  memory: mem,
  startupMs: startSummary,
  addedMs: added,
  drainMs: drain,
  notes,
  table,
})
