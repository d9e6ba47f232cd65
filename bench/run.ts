// `npm run bench`: runs every section in its own Node process, each next to its baseline, and
// prints one table; writes bench/results.json. bench/README.md explains the measurements.
//
//   npm run bench                       everything (about 2 to 5 minutes on 2 cores)
//   npm run bench -- --only=drain,idle  some sections (drain latency usage fanout idle memory startup stuck init rust)
//   npm run bench -- --quick            fewer rounds and exits (a smoke run; numbers are rough)
//   npm run bench -- --no-rust          skip `cargo bench -p subreaper-core --bench drain`
//   npm run bench -- --no-write         do not write bench/results.json
//   npm run bench -- --render           render the table of bench/results.json again (runs nothing)
//   npm run bench -- --package=DIR      measure another build of the package (DIR holds its
//                                       package.json, dist/ and native/): compare two builds
import { createHash } from 'node:crypto'
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { cpus, release as kernelRelease } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import { quantile, summarize, type Summary } from './lib.ts'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '..')
const buildDir = join(here, '.build')
const helper = join(buildDir, 'helper')
const containerdProgram = join(buildDir, 'containerd-reaper')

const SECTIONS = ['drain', 'latency', 'usage', 'fanout', 'idle', 'memory', 'startup', 'stuck', 'init', 'rust'] as const
type Section = (typeof SECTIONS)[number]
const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const onlyArg = argv.find((a) => a.startsWith('--only='))
const only = new Set<Section>(
  onlyArg ? (onlyArg.slice('--only='.length).split(',') as Section[]) : SECTIONS.filter((s) => !(s === 'rust' && flag('no-rust'))),
)
for (const s of only) if (!SECTIONS.includes(s)) throw new Error(`unknown section ${s}; sections: ${SECTIONS.join(', ')}`)
const quick = flag('quick')
const packageArg = argv.find((a) => a.startsWith('--package='))
const packageDir = packageArg ? resolve(packageArg.slice('--package='.length)) : join(root, 'packages', 'subreaper')

// --quick: a smoke run.
const env: NodeJS.ProcessEnv = {
  ...process.env,
  SUBREAPER_BENCH_HELPER: helper,
  ...(packageArg ? { SUBREAPER_BENCH_PACKAGE: join(packageDir, 'dist', 'index.mjs') } : {}),
  ...(quick
    ? {
        SUBREAPER_BENCH_ROUNDS: '2',
        SUBREAPER_BENCH_DRAIN_N: '2000',
        SUBREAPER_BENCH_FANOUT_N: '500',
        SUBREAPER_BENCH_FANOUT_SINGLE: '10',
        SUBREAPER_BENCH_LATENCY_N: '50',
        SUBREAPER_BENCH_USAGE_N: '50',
        SUBREAPER_BENCH_IDLE_SECONDS: '3',
        SUBREAPER_BENCH_MEMORY_N: '20000',
        SUBREAPER_BENCH_MEMORY_BATCH: '5000',
        SUBREAPER_BENCH_STARTUP_ROUNDS: '3',
        SUBREAPER_BENCH_LATENCY_ROUNDS: '2',
        SUBREAPER_BENCH_INIT_ROUNDS: '3',
        SUBREAPER_BENCH_INIT_ZOMBIES: '2000',
        SUBREAPER_BENCH_STUCK_SECONDS: '3',
      }
    : {}),
}
const latencyRounds = Number(env.SUBREAPER_BENCH_LATENCY_ROUNDS ?? env.SUBREAPER_BENCH_ROUNDS ?? 5)

// ---------------------------------------------------------------------------------------------
// Running sections

function compileHelper(): void {
  mkdirSync(buildDir, { recursive: true })
  const cc = process.env.CC ?? 'cc'
  execFileSync(cc, ['-O2', '-Wall', '-Wno-clobbered', '-o', helper, join(here, 'helper.c')], { stdio: 'inherit' })
}

/**
 * Builds containerd's reaper baseline (bench/containerd) with Go. Returns why not, if it could
 * not: the rows that need it are then left out, with that note.
 */
function buildContainerd(): string | undefined {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' })
  } catch {
    return 'Go is not installed: containerd baseline skipped'
  }
  try {
    execFileSync('go', ['build', '-o', containerdProgram, '.'], {
      cwd: join(here, 'containerd'),
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 600_000,
    })
    env.SUBREAPER_BENCH_CONTAINERD = containerdProgram
    return undefined
  } catch (err) {
    const e = err as { stderr?: Buffer; message?: string }
    return `containerd baseline skipped: go build failed: ${(e.stderr?.toString() || e.message || String(err)).trim().split('\n').slice(-3).join(' / ')}`
  }
}

/** Runs one section script in a fresh Node process; returns its RESULT. */
function section<T>(file: string, args: string[] = [], nodeFlags: string[] = []): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [...nodeFlags, '--import', '@oxc-node/core/register', join(here, file), ...args], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (d: string) => (out += d))
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '))
      if (code !== 0 || !line) {
        reject(new Error(`${file} ${args.join(' ')} failed (${signal ?? code})${out ? `:\n${out}` : ''}`))
        return
      }
      resolvePromise(JSON.parse(line.slice('RESULT '.length)) as T)
    })
  })
}

interface RustRun {
  lines: string[]
  rows: { label: string; ms: number; usPerExit: number; ratio: number }[]
  error?: string
}

function rustBench(): RustRun {
  try {
    const out = execFileSync('cargo', ['bench', '-q', '-p', 'subreaper-core', '--bench', 'drain'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 240_000,
      env: { ...process.env, ...(quick ? { SUBREAPER_BENCH_N: '2000', SUBREAPER_BENCH_RUNS: '1' } : {}) },
    })
    const lines = out.split('\n').filter((l) => l.trim() !== '')
    const rows = []
    for (const line of lines) {
      const m = /^\s+(.+?)\s+([\d.]+) ms\s+([\d.]+) µs\/exit\s+([\d.]+)x/.exec(line)
      if (m) rows.push({ label: m[1]!, ms: Number(m[2]), usPerExit: Number(m[3]), ratio: Number(m[4]) })
    }
    return { lines, rows }
  } catch (err) {
    const e = err as { message?: string; stderr?: string }
    return { lines: [], rows: [], error: (e.stderr || e.message || String(err)).trim().split('\n').slice(-5).join('\n') }
  }
}

/** The addon under test, and whether it is older than the Rust sources (a stale build). */
function addonInfo(): { file: string; sha256: string; modified: string; staleAgainstSources: boolean | null } | null {
  const dir = join(packageDir, 'native')
  let name: string | undefined
  try {
    name = readdirSync(dir).find((f) => f.endsWith('.node'))
  } catch {
    return null
  }
  if (!name) return null
  const file = join(dir, name)
  const mtime = statSync(file).mtimeMs
  let newestSource = 0
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith('.rs')) newestSource = Math.max(newestSource, statSync(path).mtimeMs)
    }
  }
  for (const crate of ['subreaper-core', 'subreaper-node']) {
    try {
      walk(join(root, 'crates', crate, 'src'))
    } catch {
      // not in this checkout
    }
  }
  return {
    file,
    sha256: createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16),
    modified: new Date(mtime).toISOString(),
    // Only meaningful for the workspace's own build.
    staleAgainstSources: packageArg ? null : newestSource > mtime,
  }
}

// ---------------------------------------------------------------------------------------------
// Section result shapes (see each section's file)

interface DrainResult {
  n: number
  /** Live children beside the zombies in the `...Live` rows. */
  live?: number
  rounds: number
  usPerExit: Record<'bareWait4' | 'peekWait4' | 'peekProcWait4' | 'peekStatWait4' | 'engine0' | 'engine1' | 'engine8', Summary> &
    Partial<
      Record<
        | 'reaper1'
        | 'reaper8'
        | 'engine1LateClock'
        | 'engine8LateClock'
        | 'containerd1x1'
        | 'containerd1x8'
        | 'containerd2x1'
        | 'containerd2x8'
        | 'peekTaskstatsWait4'
        | 'engine1Live'
        | 'containerd1x1Live'
        | 'containerd2x1Live',
        Summary
      >
    >
  helperSpawnUsPerChild: Summary
  /** The reaper thread in each drain to 1 subscriber: on a CPU, and waiting for one, ms. */
  reaperThread1?: { runMs: Summary; waitMs: Summary }
}
interface UsageRound {
  mode: 'plain' | 'default' | 'subreaper'
  count: number
  spawnCallUs: { p50: number; p99: number }
  spawnToExitUs: { p50: number; p99: number }
  execFileBatchMs: number
  pipedExitUs: { p50: number; p99: number }
  pipedCallbackUs?: { p50: number; p99: number }
}

interface LatencyRound {
  mode: 'child_process' | 'subreaper'
  subscribers: number
  clock: { ok: boolean }
  exitEvent: number[]
  callback: number[]
  recorded: number[]
  orphan: number[]
  orphanRecorded: number[]
  callbackFirst: number
  /** Each spawn() call's duration, µs (absent from results of older runs). */
  spawnUs?: number[]
  children: number
}
interface NativeLatencyRound {
  mode: 'c' | 'containerd1' | 'containerd2'
  samples: number[]
  children: number
}
interface StuckResult {
  n: number
  seconds: number
  containerd: Record<string, { readerGotAfterEachSecond: number[]; extraGoroutinesAfterEachSecond: number[] }>
  subreaper: {
    readerGotAfterEachSecond: number[]
    readerAllMs: number | null
    extraThreadsAfterEachSecond: number[]
    stuckClosed: boolean
    stuckClosedMs: number | null
    stuckMissed: number | null
  }
}
interface FanoutResult {
  n: number
  rounds: number
  deliveriesPerSecond: Record<string, Summary>
  emitterDeliveriesPerSecond: Record<string, Summary>
  singleExitUs: Record<string, { p50: number; p99: number; samples: number }>
}
interface IdleThread {
  wakesPerSecond: number[]
  totalWakes: number
  cpuNs: number
  ticks: number
}
interface IdleResult {
  mode: string
  seconds: number
  reaper: IdleThread | null
  broadcast: IdleThread | null
  process: { wakesPerSecond: number[]; cpuNs: number }
}
interface MemoryResult {
  mode: string
  exits: number
  warmupExits: number
  rssCold: number
  rssBefore: number
  rssAfter: number
  rssAfterBatch: number[]
  growth: number
  growthFromCold: number
  usage: Record<'cold' | 'before' | 'after', { rss: number; heapTotal: number; heapUsed: number; external: number; newSpace?: number }>
}
interface StartupResult {
  rounds: number
  wallMs: Record<'bare' | 'require' | 'import', Summary>
  overheadMs: Record<'require' | 'import', Summary>
  requireInProcessMs: Summary
  reaperRunningAfterRequire: boolean
}

// ---------------------------------------------------------------------------------------------
// The run

const resultsFile = join(here, 'results.json')

interface Machine {
  nproc: number
  cpu: string
  kernel: string
  node: string
  loadAverageAtStart?: string
  loadAverageAtEnd: string
  addon: ReturnType<typeof addonInfo>
  /** Why containerd's baseline was not measured, if it was not. */
  containerdNote?: string | null
}

/** What results.json holds (besides the rendered table and the targets). */
interface Run {
  date: string
  seconds: number
  sectionSeconds: Record<string, number>
  quick: boolean
  machine: Machine
  results: Record<string, unknown>
}

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')

function describeMachine(addon: ReturnType<typeof addonInfo>, loadAverageAtStart: string, containerdNote: string | undefined): Machine {
  const cpuModel = (() => {
    try {
      return /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? 'unknown'
    } catch {
      return cpus()[0]?.model ?? 'unknown'
    }
  })()
  return {
    nproc: cpus().length,
    cpu: cpuModel,
    kernel: kernelRelease(),
    node: process.version,
    loadAverageAtStart,
    loadAverageAtEnd: loadAverage(),
    addon,
    containerdNote: containerdNote ?? null,
  }
}

async function runAll(): Promise<Run> {
  const startedAt = new Date()
  const t0 = Date.now()
  const loadAtStart = loadAverage()
  process.stderr.write(`load average ${loadAtStart}\ncompiling bench/helper.c\n`)
  compileHelper()
  const needsContainerd = only.has('drain') || only.has('latency') || only.has('stuck')
  process.stderr.write(needsContainerd ? 'building bench/containerd (go build)\n' : '')
  const containerdNote = needsContainerd ? buildContainerd() : undefined
  if (containerdNote) process.stderr.write(`${containerdNote}\n`)

  const addon = addonInfo()
  if (addon?.staleAgainstSources) {
    process.stderr.write(`WARNING: ${addon.file} is older than the Rust sources under crates/: run \`npm run build\` first\n`)
  }

  // A safety net: if a section dies with orphans still alive, they come here (and are reaped)
  // rather than going up to whatever runs this machine. This process measures nothing itself.
  try {
    const { setSubreaper } = await import('subreaper')
    setSubreaper(true)
  } catch (err) {
    process.stderr.write(`(no subreaper safety net for this run: ${(err as Error).message.split('\n')[0]})\n`)
  }

  const results: Record<string, unknown> = {}
  /** Wall time of each section, s. */
  const sectionSeconds: Record<string, number> = {}
  async function timed<T>(name: string, run: () => Promise<T> | T): Promise<T> {
    const start = Date.now()
    try {
      return await run()
    } finally {
      sectionSeconds[name] = (Date.now() - start) / 1000
    }
  }

  if (only.has('drain')) {
    process.stderr.write('1. drain throughput\n')
    results.drain = await timed('drain', () => section<DrainResult>('drain.ts'))
  }

  if (only.has('latency')) {
    process.stderr.write('2. exit-to-callback latency\n')
    results.latency = await timed('latency', async () => {
      const rounds: LatencyRound[] = []
      const baselines: NativeLatencyRound[] = []
      for (let round = 1; round <= latencyRounds; round++) {
        process.stderr.write(`  latency: round ${round}/${latencyRounds}\n`)
        rounds.push(await section<LatencyRound>('latency.ts', ['child_process']))
        rounds.push(await section<LatencyRound>('latency.ts', ['subreaper']))
        rounds.push(await section<LatencyRound>('latency.ts', ['subreaper', '8']))
        baselines.push(await section<NativeLatencyRound>('latency-native.ts', ['c']))
        if (env.SUBREAPER_BENCH_CONTAINERD) {
          baselines.push(await section<NativeLatencyRound>('latency-native.ts', ['containerd1']))
          baselines.push(await section<NativeLatencyRound>('latency-native.ts', ['containerd2']))
        }
      }
      results.latencyBaselines = baselines
      return rounds
    })
  }

  if (only.has('usage')) {
    process.stderr.write('9. what loading subreaper costs child_process, as users spawn (bench/usage.ts)\n')
    results.usage = await timed('usage', async () => {
      const rounds: UsageRound[][] = []
      const modes = ['plain', 'default', 'subreaper'] as const
      for (let round = 1; round <= latencyRounds; round++) {
        process.stderr.write(`  usage: round ${round}/${latencyRounds} (load ${loadAverage()})\n`)
        // The three modes in a rotating order, so that none always runs first or last.
        const order = modes.map((_, i) => modes[(i + round - 1) % modes.length]!)
        const byMode: UsageRound[] = []
        for (const m of order) byMode.push(await section<UsageRound>('usage.ts', [m]))
        rounds.push(byMode)
      }
      return rounds
    })
  }

  if (only.has('fanout')) {
    process.stderr.write('3. fan-out\n')
    results.fanout = await timed('fanout', () => section<FanoutResult>('fanout.ts'))
  }

  if (only.has('idle')) {
    process.stderr.write('4. idle cost (the three processes side by side)\n')
    results.idle = await timed('idle', () => Promise.all(['bare', 'subreaper', 'child'].map((m) => section<IdleResult>('idle.ts', [m]))))
  }

  if (only.has('memory')) {
    process.stderr.write('5. memory\n')
    results.memory = await timed('memory', async () => ({
      subreaper: await section<MemoryResult>('memory.ts', ['subreaper'], ['--expose-gc']),
      bare: await section<MemoryResult>('memory.ts', ['bare'], ['--expose-gc']),
    }))
  }

  if (only.has('startup')) {
    process.stderr.write('6. start-up\n')
    results.startup = await timed('startup', () => section<StartupResult>('startup.ts'))
  }

  if (only.has('stuck')) {
    process.stderr.write('7. a subscriber that never reads\n')
    results.stuck = await timed('stuck', () => section<StuckResult>('stuck.ts'))
  }
  if (only.has('init')) {
    process.stderr.write('8. the native init next to tini, dumb-init, catatonit (bench/init.ts)\n')
    results.init = await timed('init', () => section<{ table: string }>('init.ts'))
  }

  if (only.has('rust')) {
    process.stderr.write('Rust bench: cargo bench -p subreaper-core --bench drain\n')
    results.rust = await timed('rust', rustBench)
  }
  return {
    date: startedAt.toISOString(),
    seconds: (Date.now() - t0) / 1000,
    sectionSeconds,
    quick,
    machine: describeMachine(addon, loadAtStart, containerdNote),
    results,
  }
}

// --render: print the table of the last run again (from bench/results.json), run nothing.
const run: Run = flag('render') ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Run) : await runAll()
const { results, machine } = run
const sectionSeconds = run.sectionSeconds ?? {}

// ---------------------------------------------------------------------------------------------
// The table

const num = (v: number, digits = 1) =>
  Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a'
const range = (s: Summary, digits = 1, scale = 1) =>
  `${num(s.median * scale, digits)} [${num(s.min * scale, digits)}–${num(s.max * scale, digits)}]`
const ratio = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : '')
/** Median of per-round ratios a[i] / b[i]: robust to a machine whose speed drifts between rounds. */
const pairedRatio = (a: Summary, b: Summary) =>
  quantile(
    a.rounds.map((v, i) => v / b.rounds[i]!),
    0.5,
  )

type Row = [string, string, string, string, string, string]
const rows: Row[] = []
const head: Row = ['measurement', 'subreaper', 'baseline', 'ratio', 'target', 'met']
const verdict = (ok: boolean | undefined) => (ok === undefined ? '' : ok ? 'yes' : 'NO')
const targets: { name: string; met: boolean }[] = []
function target(name: string, ok: boolean): string {
  targets.push({ name, met: ok })
  return verdict(ok)
}

const drain = results.drain as DrainResult | undefined
const containerdNote = machine.containerdNote
if (drain) {
  const d = drain.usPerExit
  const n = drain.n.toLocaleString('en-US')
  /** A drain in ms for all N zombies (the sections measure µs per exit). */
  const ms = (s: Summary): Summary => ({
    median: (s.median * drain.n) / 1000,
    min: (s.min * drain.n) / 1000,
    max: (s.max * drain.n) / 1000,
    rounds: s.rounds.map((v) => (v * drain.n) / 1000),
  })
  const msRange = (s: Summary) => range(ms(s), 1)
  const same = `C loop, same work ${msRange(d.peekStatWait4)}`
  for (const [key, label] of [
    ['engine1', `1. drain ${n} zombies -> 1 JS subscriber, ms`],
    ['engine8', `1. drain ${n} zombies -> 8 JS subscribers, ms`],
  ] as const) {
    const subs = key === 'engine1' ? 1 : 8
    for (const [cd, version] of [
      [d[`containerd1x${subs}`], '1.4.13'],
      [d[`containerd2x${subs}`], '2.4.2'],
    ] as const) {
      if (!cd) continue
      const r = pairedRatio(d[key], cd)
      const name = `${label} vs containerd ${version}`
      rows.push([name, msRange(d[key]), `containerd ${version}, ${subs} sub ${msRange(cd)}`, ratio(r), '<= 1x', target(name, r <= 1)])
    }
    const r = pairedRatio(d[key], d.peekStatWait4)
    const name = `${label} vs C loop doing the same work`
    rows.push([name, msRange(d[key]), same, ratio(r), '<= 1.25x', target(name, r <= 1.25)])
  }
  if (containerdNote) rows.push([`   containerd rows left out: ${containerdNote}`, '', '', '', '', ''])
  if (d.engine1LateClock && d.engine8LateClock) {
    // Every row above is clocked from the helper's stamp just before its exit; this one from
    // when spawnSync of the helper returned, as up to issue 34 (late: not comparable).
    rows.push([
      `   drain -> 1 / 8 subscribers on the late clock (spawnSync returned; old figure), ms`,
      `${msRange(d.engine1LateClock)} / ${msRange(d.engine8LateClock)}`,
      '',
      '',
      '',
      '',
    ])
  }
  const fan = pairedRatio(d.engine8, d.engine1)
  rows.push(['1. drain: 8 JS subscribers / 1', '', '', ratio(fan), '<= 1.2x', target('drain: 8 subscribers at most 1.2x one', fan <= 1.2)])
  if (drain.reaperThread1) {
    // What decides a round: the thread's own work, or its wait for one of the machine's CPUs.
    const { runMs, waitMs } = drain.reaperThread1
    rows.push([
      `   reaper thread in the drain to 1 subscriber: on a CPU / waiting for one, ms`,
      `${range(runMs, 1)} / ${range(waitMs, 1)}`,
      '',
      '',
      '',
      '',
    ])
  }
  const bare = `bare wait4 loop ${msRange(d.bareWait4)}`
  rows.push([`   bare C subreaper, blocking wait4(-1) loop, ms`, msRange(d.bareWait4), '', '', '', ''])
  rows.push([`   engine alone (no subscriber), ms`, msRange(d.engine0), bare, ratio(pairedRatio(d.engine0, d.bareWait4)), '', ''])
  rows.push([
    `   C: peek (waitid WNOWAIT) + wait4 pid, ms`,
    msRange(d.peekWait4),
    bare,
    ratio(pairedRatio(d.peekWait4, d.bareWait4)),
    '',
    '',
  ])
  rows.push([
    `   C: + one read of /proc/<pid>/stat (same work as the engine), ms`,
    msRange(d.peekStatWait4),
    bare,
    ratio(pairedRatio(d.peekStatWait4, d.bareWait4)),
    '',
    '',
  ])
  if (d.peekTaskstatsWait4) {
    rows.push([
      `   C: peek + one taskstats request + wait4 (the engine's way where served), ms`,
      msRange(d.peekTaskstatsWait4),
      bare,
      ratio(pairedRatio(d.peekTaskstatsWait4, d.bareWait4)),
      '',
      '',
    ])
  } else {
    rows.push([`   C: peek + taskstats + wait4 left out: the kernel does not serve taskstats here`, '', '', '', '', ''])
  }
  rows.push([
    `   C: + open/read loop of /proc/<pid>/stat and /status, ms`,
    msRange(d.peekProcWait4),
    bare,
    ratio(pairedRatio(d.peekProcWait4, d.bareWait4)),
    '',
    '',
  ])
  for (const [key, label] of [
    ['containerd1x1', 'containerd 1.4.13, 1 subscriber'],
    ['containerd1x8', 'containerd 1.4.13, 8 subscribers'],
    ['containerd2x1', 'containerd 2.4.2, 1 subscriber'],
    ['containerd2x8', 'containerd 2.4.2, 8 subscribers'],
  ] as const) {
    const cd = d[key]
    if (cd) rows.push([`   ${label}, ms`, msRange(cd), bare, ratio(pairedRatio(cd, d.bareWait4)), '', ''])
  }
  if (d.engine1Live) {
    // Every wait for "any child" (containerd's wait4(-1), the engine's peek) walks the live ones.
    const label = `   drain ${n} -> 1 subscriber beside ${(drain.live ?? 0).toLocaleString('en-US')} live children, ms`
    const beside = [
      [d.containerd1x1Live, '1.4.13'],
      [d.containerd2x1Live, '2.4.2'],
    ] as const
    for (const [cd, version] of beside) {
      if (cd)
        rows.push([
          label,
          msRange(d.engine1Live),
          `containerd ${version}, the same ${msRange(cd)}`,
          ratio(pairedRatio(d.engine1Live, cd)),
          '',
          '',
        ])
    }
    if (!beside.some(([cd]) => cd)) rows.push([label, msRange(d.engine1Live), '', '', '', ''])
  }
}

const rust = results.rust as RustRun | undefined
if (rust) {
  const bareRow = rust.rows.find((r) => r.label.startsWith('bare'))
  for (const r of rust.rows.filter((row) => !row.label.startsWith('bare'))) {
    rows.push([
      `   Rust bench: ${r.label} (no JS), µs/exit`,
      num(r.usPerExit, 2),
      bareRow ? `Rust bare loop ${num(bareRow.usPerExit, 2)}` : '',
      ratio(r.ratio),
      '',
      '',
    ])
  }
  if (rust.error) rows.push(['   Rust bench', 'failed (see results.json)', '', '', '', ''])
}

const latency = results.latency as LatencyRound[] | undefined
if (latency) {
  const base = latency.filter((r) => r.mode === 'child_process')
  const sr = latency.filter((r) => r.mode === 'subreaper' && (r.subscribers ?? 1) === 1)
  const sr8 = latency.filter((r) => r.mode === 'subreaper' && r.subscribers === 8)
  const per = (rs: LatencyRound[], pick: (r: LatencyRound) => number[], q: number) => summarize(rs.map((r) => quantile(pick(r), q)))
  const pooled = (rs: LatencyRound[], pick: (r: LatencyRound) => number[], q: number) => quantile(rs.flatMap(pick), q)
  const baseP50 = per(base, (r) => r.exitEvent, 0.5)
  const baseP99 = per(base, (r) => r.exitEvent, 0.99)
  const cbP50 = per(sr, (r) => r.callback, 0.5)
  const cbP99 = per(sr, (r) => r.callback, 0.99)
  // Rounds alternate the two modes: pair them like the other sections' rounds.
  const p50ratio = pairedRatio(cbP50, baseP50)
  rows.push([
    '2. exit -> subscriber callback (child_process child), p50 µs',
    range(cbP50, 0),
    `child_process 'exit' ${range(baseP50, 0)}`,
    ratio(p50ratio),
    '<= 1x',
    target('latency p50 no worse than child_process', p50ratio <= 1),
  ])
  rows.push([
    '2. exit -> subscriber callback (child_process child), p99 µs',
    range(cbP99, 0),
    `child_process 'exit' ${range(baseP99, 0)}`,
    ratio(pairedRatio(cbP99, baseP99)),
    '< 1,000 µs',
    target('latency p99 under 1 ms', cbP99.median < 1000),
  ])
  const cpP50 = per(sr, (r) => r.exitEvent, 0.5)
  const cpP99 = per(sr, (r) => r.exitEvent, 0.99)
  const cpRatio = pairedRatio(cpP50, baseP50)
  rows.push([
    "2. child_process 'exit' with subreaper loaded, p50 / p99 µs",
    `${range(cpP50, 0)} / ${range(cpP99, 0)}`,
    `without ${num(baseP50.median, 0)} / ${num(baseP99.median, 0)}`,
    ratio(cpRatio),
    '<= 1.1x (noise)',
    target("Node's own 'exit' not slowed by the module", cpRatio <= 1.1),
  ])
  if (base.every((r) => r.spawnUs) && sr.every((r) => r.spawnUs)) {
    const spP50 = per(sr, (r) => r.spawnUs!, 0.5)
    const spBase = per(base, (r) => r.spawnUs!, 0.5)
    rows.push([
      "   child_process.spawn() call (returns once the child has exec'd), p50 µs",
      range(spP50, 0),
      `without subreaper ${range(spBase, 0)}`,
      ratio(pairedRatio(spP50, spBase)),
      '',
      '',
    ])
  }
  if (sr8.length > 0) {
    const cb8P50 = per(sr8, (r) => r.callback, 0.5)
    const cb8P99 = per(sr8, (r) => r.callback, 0.99)
    const r8 = pairedRatio(cb8P50, cbP50)
    rows.push([
      '2. exit -> last of 8 subscribers (child_process child), p50 / p99 µs',
      `${range(cb8P50, 0)} / ${range(cb8P99, 0)}`,
      `1 subscriber ${num(cbP50.median, 0)} / ${num(cbP99.median, 0)}`,
      ratio(r8),
      '<= 1.2x',
      target('latency: 8 subscribers at most 1.2x one', r8 <= 1.2),
    ])
  }
  const natives = (results.latencyBaselines as NativeLatencyRound[] | undefined) ?? []
  for (const [mode, label] of [
    ['c', 'bare C subreaper, blocking wait4(-1)'],
    ['containerd1', "containerd 1.4.13 (shim's wiring), 1 subscriber"],
    ['containerd2', "containerd 2.4.2 (shim's wiring), 1 subscriber"],
  ] as const) {
    const rs = natives.filter((r) => r.mode === mode)
    if (rs.length === 0) continue
    const p50 = summarize(rs.map((r) => quantile(r.samples, 0.5)))
    const p99 = summarize(rs.map((r) => quantile(r.samples, 0.99)))
    rows.push([`   baseline: exit -> ${label}, p50 / p99 µs`, '', `${range(p50, 0)} / ${range(p99, 0)}`, '', '', ''])
  }
  const recP50 = per(sr, (r) => r.recorded, 0.5)
  const recP99 = per(sr, (r) => r.recorded, 0.99)
  rows.push([
    '   of which exit -> engine saw it (its timestamp), p50 / p99 µs',
    `${range(recP50, 0)} / ${range(recP99, 0)}`,
    '',
    '',
    '',
    '',
  ])
  const orP50 = per(sr, (r) => r.orphan, 0.5)
  const orP99 = per(sr, (r) => r.orphan, 0.99)
  rows.push(['   exit -> callback, orphan reaped by the engine, p50 / p99 µs', `${range(orP50, 0)} / ${range(orP99, 0)}`, '', '', '', ''])
  const orRecP50 = per(sr, (r) => r.orphanRecorded, 0.5)
  rows.push(['   of which orphan exit -> engine saw it, p50 µs', range(orRecP50, 0), '', '', '', ''])
  const n = sr.reduce((s, r) => s + r.children, 0)
  const first = sr.reduce((s, r) => s + r.callbackFirst, 0)
  rows.push([
    "   pooled p50 / p99 µs (all rounds): callback / 'exit'",
    `${num(
      pooled(sr, (r) => r.callback, 0.5),
      0,
    )} / ${num(
      pooled(sr, (r) => r.callback, 0.99),
      0,
    )}`,
    `${num(
      pooled(base, (r) => r.exitEvent, 0.5),
      0,
    )} / ${num(
      pooled(base, (r) => r.exitEvent, 0.99),
      0,
    )}`,
    '',
    '',
    '',
  ])
  rows.push([`   callback ran before 'exit' for the same child`, `${first} of ${n}`, '', '', '', ''])
  if (!latency.every((r) => r.clock.ok)) rows.push(['   WARNING: CLOCK_MONOTONIC check failed: latencies unreliable', '', '', '', '', ''])
}

const usage = results.usage as UsageRound[][] | undefined
if (usage) {
  const of = (round: UsageRound[], mode: string) => round.find((r) => r.mode === mode)!
  const med = (values: number[]) => quantile(values, 0.5)
  const rowsOf = (get: (r: UsageRound) => number) => ({
    plain: usage.map((round) => get(of(round, 'plain'))),
    default: usage.map((round) => get(of(round, 'default'))),
    subreaper: usage.map((round) => get(of(round, 'subreaper'))),
  })
  const perRound = (a: number[], b: number[]) => med(a.map((v, i) => v / b[i]!))
  const u = usage[0]![0]!.count
  for (const [label, get, digits] of [
    [`9. spawn() call, p50 µs (${u} children, back to back)`, (r: UsageRound) => r.spawnCallUs.p50, 0],
    [`9. spawn() -> 'exit', p50 µs`, (r: UsageRound) => r.spawnToExitUs.p50, 0],
    [`9. ${u} execFile('sh', ['-c', 'echo x']), 16 at a time, ms`, (r: UsageRound) => r.execFileBatchMs, 1],
    [`9. piped stdout, next at 'close': Node's 'exit' p50 µs`, (r: UsageRound) => r.pipedExitUs.p50, 0],
  ] as const) {
    const v = rowsOf(get)
    for (const m of ['default', 'subreaper'] as const) {
      const r = perRound(v[m], v.plain)
      const name = `${label}, ${m} mode`
      rows.push([
        name,
        range(summarize(v[m]), digits),
        `plain Node ${range(summarize(v.plain), digits)}`,
        ratio(r),
        '<= 1.05x',
        target(name, r <= 1.05),
      ])
    }
  }
  const plainExit50 = usage.map((round) => of(round, 'plain').pipedExitUs.p50)
  const plainExit99 = usage.map((round) => of(round, 'plain').pipedExitUs.p99)
  for (const m of ['default', 'subreaper'] as const) {
    const cb50 = usage.map((round) => of(round, m).pipedCallbackUs!.p50)
    const cb99 = usage.map((round) => of(round, m).pipedCallbackUs!.p99)
    const r50 = perRound(cb50, plainExit50)
    const n50 = `9. piped: callback p50 vs Node's 'exit' alone, ${m} mode`
    rows.push([
      n50,
      range(summarize(cb50), 0),
      `'exit' alone ${range(summarize(plainExit50), 0)}`,
      ratio(r50),
      '<= 1.25x',
      target(n50, r50 <= 1.25),
    ])
    const r99 = perRound(cb99, plainExit99)
    const n99 = `9. piped: callback p99 vs Node's 'exit' p99 alone, ${m} mode`
    rows.push([
      n99,
      range(summarize(cb99), 0),
      `'exit' alone ${range(summarize(plainExit99), 0)}`,
      ratio(r99),
      '<= 1x',
      target(n99, r99 <= 1),
    ])
  }
}

const fanout = results.fanout as FanoutResult | undefined
if (fanout) {
  for (const s of ['1', '8', '64']) {
    const nat = fanout.deliveriesPerSecond[s]!
    const em = fanout.emitterDeliveriesPerSecond[s]
    rows.push([
      `3. fan-out, ${s} subscriber${s === '1' ? '' : 's'}: deliveries/s (k)`,
      range(nat, 0, 1e-3),
      em ? `1 subscriber + EventEmitter x${s} ${range(em, 0, 1e-3)}` : '',
      em ? ratio(pairedRatio(nat, em)) : '',
      '',
      '',
    ])
  }
  rows.push([
    '   one exit -> last of 1 / 8 / 64 subscribers, p50 µs',
    ['1', '8', '64'].map((s) => num(fanout.singleExitUs[s]!.p50, 0)).join(' / '),
    '',
    '',
    '',
    '',
  ])
}

const idle = results.idle as IdleResult[] | undefined
if (idle) {
  const byMode = Object.fromEntries(idle.map((r) => [r.mode, r])) as Record<string, IdleResult>
  const sr = byMode.subreaper!
  const ch = byMode.child!
  const bare = byMode.bare!
  const reaperWakes = summarize(sr.reaper!.wakesPerSecond)
  const secs = sr.seconds
  rows.push([
    `4. idle, no child: reaper thread wake-ups/s (${secs} s)`,
    range(reaperWakes, 1),
    '',
    '',
    '<= 1/s',
    target('idle wake-ups <= 1/s', reaperWakes.median <= 1),
  ])
  const cpuUsPerS = sr.reaper!.cpuNs / 1000 / secs
  rows.push([
    `4. idle, no child: reaper thread CPU, µs/s (ticks: ${sr.reaper!.ticks})`,
    num(cpuUsPerS, 1),
    '',
    '',
    'none measurable',
    target('idle CPU not measurable', sr.reaper!.ticks === 0 && cpuUsPerS < 100),
  ])
  rows.push([
    '   idle, no child: broadcast thread wake-ups/s, CPU µs/s',
    `${range(summarize(sr.broadcast!.wakesPerSecond), 1)}, ${num(sr.broadcast!.cpuNs / 1000 / secs, 1)}`,
    '',
    '',
    '',
    '',
  ])
  rows.push([
    '   idle, one live child: reaper wake-ups/s, CPU µs/s',
    `${range(summarize(ch.reaper!.wakesPerSecond), 1)}, ${num(ch.reaper!.cpuNs / 1000 / secs, 1)}`,
    '',
    '',
    '',
    '',
  ])
  rows.push([
    '   idle: whole process wake-ups/s, CPU µs/s',
    `${num(quantile(sr.process.wakesPerSecond, 0.5), 1)}, ${num(sr.process.cpuNs / 1000 / secs, 0)}`,
    `node alone ${num(quantile(bare.process.wakesPerSecond, 0.5), 1)}, ${num(bare.process.cpuNs / 1000 / secs, 0)}`,
    '',
    '',
    '',
  ])
}

const memory = results.memory as { subreaper: MemoryResult; bare: MemoryResult } | undefined
if (memory) {
  const mb = (b: number) => num(b / 1024 / 1024, 2)
  const { subreaper: m, bare: b } = memory
  const label = `5. RSS growth, ${m.exits.toLocaleString('en-US')} exits -> 8 subscribers (after a ${m.warmupExits.toLocaleString('en-US')}-exit warm-up), MB`
  rows.push([
    label,
    mb(m.growth),
    `node alone, same spawns ${mb(b.growth)}`,
    '',
    '< 2 MB',
    target('memory growth < 2 MB', m.growth < 2 * 1024 * 1024),
  ])
  const heapGrowth = (r: MemoryResult) => r.usage.after.heapTotal - r.usage.before.heapTotal
  rows.push([
    '   of which V8 heap: heapTotal / heapUsed growth, MB',
    `${mb(heapGrowth(m))} / ${mb(m.usage.after.heapUsed - m.usage.before.heapUsed)}`,
    `node alone ${mb(heapGrowth(b))} / ${mb(b.usage.after.heapUsed - b.usage.before.heapUsed)}`,
    '',
    '',
    '',
  ])
  const newSpaceGrowth = (r: MemoryResult) => (r.usage.after.newSpace ?? Number.NaN) - (r.usage.before.newSpace ?? Number.NaN)
  rows.push([
    '   of which V8 young generation (new space) growth, MB',
    mb(newSpaceGrowth(m)),
    `node alone ${mb(newSpaceGrowth(b))}`,
    '',
    '',
    '',
  ])
  rows.push([
    '   RSS growth outside the V8 heap (native, addon, allocator), MB',
    mb(m.growth - heapGrowth(m)),
    `node alone ${mb(b.growth - heapGrowth(b))}`,
    '',
    '',
    '',
  ])
  rows.push(['   RSS growth from cold (warm-up included), MB', mb(m.growthFromCold), `node alone ${mb(b.growthFromCold)}`, '', '', ''])
  const batches = summarize(m.rssAfterBatch)
  rows.push([
    '   RSS cold / warm / after each batch [min–max] / end, MB',
    `${mb(m.rssCold)} / ${mb(m.rssBefore)} / [${mb(batches.min)}–${mb(batches.max)}] / ${mb(m.rssAfter)}`,
    `${mb(b.rssCold)} / ${mb(b.rssBefore)} / ${mb(b.rssAfter)}`,
    '',
    '',
    '',
  ])
}

const startup = results.startup as StartupResult | undefined
if (startup) {
  const s = startup
  rows.push([
    '6. start-up: node -e "require(\'subreaper\')", ms',
    range(s.wallMs.require, 1),
    `node -e '' ${range(s.wallMs.bare, 1)}`,
    ratio(pairedRatio(s.wallMs.require, s.wallMs.bare)),
    '',
    '',
  ])
  rows.push([
    '   node -e "import \'subreaper\'" (ESM), ms',
    range(s.wallMs.import, 1),
    '',
    ratio(pairedRatio(s.wallMs.import, s.wallMs.bare)),
    '',
    '',
  ])
  rows.push(['   added by require (paired per round), ms', range(s.overheadMs.require, 1), '', '', '', ''])
  rows.push([
    `   require('subreaper') inside the process, ms (reaper running on return: ${s.reaperRunningAfterRequire ? 'yes' : 'NO'})`,
    range(s.requireInProcessMs, 1),
    '',
    '',
    '',
    '',
  ])
}

const stuck = results.stuck as StuckResult | undefined
if (stuck) {
  const last = <T>(a: T[]) => a[a.length - 1]
  const sr = stuck.subreaper
  for (const [version, label] of [
    ['1', 'containerd 1.4.13'],
    ['2', 'containerd 2.4.2'],
  ] as const) {
    const c = stuck.containerd[version]
    if (!c) continue
    rows.push([
      `7. one subscriber never reads, ${stuck.n} exits: the other's after 1 / ${stuck.seconds} s; leaked per s`,
      `${sr.readerGotAfterEachSecond[0]} / ${last(sr.readerGotAfterEachSecond)} exits; threads +${last(sr.extraThreadsAfterEachSecond)}`,
      `${label}: ${c.readerGotAfterEachSecond[0]} / ${last(c.readerGotAfterEachSecond)} exits; goroutines +${last(c.extraGoroutinesAfterEachSecond)} (${((last(c.extraGoroutinesAfterEachSecond)! - c.extraGoroutinesAfterEachSecond[0]!) / Math.max(1, stuck.seconds - 1)).toFixed(1)}/s)`,
      '',
      '',
      '',
    ])
  }
  rows.push([
    '   subreaper: the reader had every exit after, ms; the one that never reads',
    `${num(sr.readerAllMs ?? Number.NaN, 1)}; ${sr.stuckClosed ? `closed as lagged after ${num(sr.stuckClosedMs ?? Number.NaN, 0)} ms, missed ${sr.stuckMissed}` : 'NOT closed'}`,
    '',
    '',
    '',
    '',
  ])
  if (containerdNote) rows.push([`   containerd rows left out: ${containerdNote}`, '', '', '', '', ''])
}

/** The table of issue 13: each row next to its baselines, from the sections above. */
function issueTable(): string | undefined {
  if (!drain && !latency) return undefined
  const d = drain?.usPerExit
  const N = drain?.n ?? 0
  const msOf = (s: Summary | undefined) => (s ? num((s.median * N) / 1000, 1) : 'n/a')
  const x = (s: Summary | undefined) => (s && d ? num(pairedRatio(s, d.bareWait4), 1) : 'n/a')
  const natives = (results.latencyBaselines as NativeLatencyRound[] | undefined) ?? []
  const lat = (samples: number[][]) =>
    samples.length === 0
      ? 'n/a'
      : `${num(
          quantile(
            samples.map((v) => quantile(v, 0.5)),
            0.5,
          ),
          0,
        )} / ${num(
          quantile(
            samples.map((v) => quantile(v, 0.99)),
            0.5,
          ),
          0,
        )} µs`
  const nativeLat = (mode: string) => lat(natives.filter((r) => r.mode === mode).map((r) => r.samples))
  const rounds = (pick: (r: LatencyRound) => boolean, field: 'exitEvent' | 'callback' | 'recorded') =>
    lat((latency ?? []).filter(pick).map((r) => r[field]))
  const one = (r: LatencyRound) => r.mode === 'subreaper' && (r.subscribers ?? 1) === 1
  const rustRows = (rust?.rows ?? []).filter((r) => !r.label.startsWith('bare'))
  const rustBare = rust?.rows.find((r) => r.label.startsWith('bare'))
  const out: string[][] = [
    ['', `drain ${N.toLocaleString('en-US')}`, '× bare C `wait4` loop', 'latency p50 / p99'],
    ['bare C subreaper, blocking `wait4`', `${msOf(d?.bareWait4)} ms`, '1.0', nativeLat('c')],
    ['C loop, same work as the engine (peek, one `/proc` read, `wait4`)', `${msOf(d?.peekStatWait4)} ms`, x(d?.peekStatWait4), '—'],
    [
      "C loop, the engine's way where served (peek, one taskstats request, `wait4`)",
      `${msOf(d?.peekTaskstatsWait4)} ms`,
      x(d?.peekTaskstatsWait4),
      '—',
    ],
    [
      'containerd 1.4.13, 1 / 8 subscribers',
      `${msOf(d?.containerd1x1)} / ${msOf(d?.containerd1x8)} ms`,
      `${x(d?.containerd1x1)} / ${x(d?.containerd1x8)}`,
      nativeLat('containerd1'),
    ],
    [
      'containerd 2.4.2, 1 / 8 subscribers',
      `${msOf(d?.containerd2x1)} / ${msOf(d?.containerd2x8)} ms`,
      `${x(d?.containerd2x1)} / ${x(d?.containerd2x8)}`,
      nativeLat('containerd2'),
    ],
    [
      "Node's own `child_process` `'exit'`, without / with subreaper",
      '—',
      '—',
      `${rounds((r) => r.mode === 'child_process', 'exitEvent')}; ${rounds(one, 'exitEvent')}`,
    ],
    [
      '**subreaper, JS subscribers, 1 / 8**',
      `**${msOf(d?.engine1)} / ${msOf(d?.engine8)} ms**`,
      `**${x(d?.engine1)} / ${x(d?.engine8)}**`,
      `**${rounds(one, 'callback')}; 8: ${rounds((r) => r.mode === 'subreaper' && r.subscribers === 8, 'callback')}**`,
    ],
    [
      "subreaper's Rust engine alone, 1 / 8 (Rust bench; latency: the engine's own timestamp)",
      rustRows.length ? `${rustRows.map((r) => num((r.usPerExit * N) / 1000, 1)).join(' / ')} ms` : 'n/a',
      rustRows.length && rustBare ? `${rustRows.map((r) => num(r.ratio, 1)).join(' / ')} (vs its own bare loop)` : 'n/a',
      rounds(one, 'recorded'),
    ],
  ]
  return out
    .map((r) => `| ${r.join(' | ')} |`)
    .join('\n')
    .replace(/\n/, `\n|${'---|'.repeat(4)}\n`)
}

function table(rs: Row[]): string {
  const all = [head, ...rs]
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)))
  const line = (r: Row) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rs.map(line)].join('\n')
}

const sectionsLine = Object.entries(sectionSeconds)
  .map(([k, v]) => `${k} ${v.toFixed(0)}`)
  .join(', ')
const machineLine = `${machine.nproc} x ${machine.cpu}, Linux ${machine.kernel}, Node ${machine.node}; load average at the start ${machine.loadAverageAtStart ?? 'n/a'}, at the end ${machine.loadAverageAtEnd}; ${run.date}, ${run.seconds.toFixed(0)} s (${sectionsLine})${run.quick ? ' (--quick)' : ''}`
const addon = machine.addon
const addonLine = addon
  ? `addon ${addon.file.replace(`${root}/`, '')} (sha256 ${addon.sha256}, built ${addon.modified})${
      addon.staleAgainstSources ? ' -- WARNING: older than the Rust sources, run `npm run build`' : ''
    }`
  : 'addon: not found'
const text = `${table(rows)}\n\nValues: median [min–max] over rounds; ratios: median of the per-round ratios (subreaper and its baseline run in every round).\n${machineLine}\n${addonLine}\n`
process.stdout.write(`\n${text}`)
if (results.init) process.stdout.write(`\n${(results.init as { table: string }).table}\n`)
const issue = issueTable()
if (issue) process.stdout.write(`\nIssue 13's table (medians; the Rust bench's drain is its best of 3):\n${issue}\n`)
if (rust?.lines.length) process.stdout.write(`\nRust bench output:\n${rust.lines.join('\n')}\n`)
if (rust?.error) process.stdout.write(`\nRust bench failed:\n${rust.error}\n`)
const missed = targets.filter((t) => !t.met)
process.stdout.write(
  `\nTargets: ${targets.length - missed.length} of ${targets.length} met${missed.length ? `; missed: ${missed.map((t) => t.name).join('; ')}` : ''}\n`,
)

if (!flag('no-write')) {
  writeFileSync(`${resultsFile}.tmp`, `${JSON.stringify({ ...run, targets, table: text, issueTable: issue }, null, 2)}\n`)
  renameSync(`${resultsFile}.tmp`, resultsFile)
  process.stderr.write(`wrote ${resultsFile}\n`)
}
