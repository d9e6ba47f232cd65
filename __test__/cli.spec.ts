// The subreaper command, the native init (crates/subreaper-init), run as real processes: exit
// statuses, signal forwarding, orphan reaping, leftover cleanup, usage errors, the report, what
// the command inherits (fds, argv bytes, the environment byte for byte, signal mask and
// dispositions), a real terminal, the npm launcher, the init as PID 1 of a PID namespace (with and
// without its own /proc), and tini's and dumb-init's options, each run under the peer too. Every process a test starts carries a marker in its environment; each test kills
// what it started when it ends, and the last hook checks that nothing carrying the marker is left.
import test, { type ExecutionContext } from 'ava'
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { constants, tmpdir } from 'node:os'
import { join } from 'node:path'

import { exists, identityOf, type ProcessId } from './fixtures/process-identity.mjs'
import { cliPath, fixture, liveChildren, root as projectRoot, sleep, until, zombieChildren } from './helpers.ts'
import { readStat } from './proc-stat.mjs'

/** The native init, where `npm run build` puts it. */
const CLI = cliPath
/** The npm launcher, as `npm install` links it. */
const LAUNCHER = join(projectRoot, 'node_modules', '.bin', 'subreaper')
const VERSION = (JSON.parse(readFileSync(join(projectRoot, 'packages', 'subreaper', 'package.json'), 'utf8')) as { version: string })
  .version

/** Environment marker of every process these specs start (inherited by their descendants). */
const MARK_NAME = 'SUBREAPER_CLI_SPEC'
const MARK = String(process.pid)

const signo = (name: string): number => (constants.signals as Record<string, number>)[name]!

// --- /proc ----------------------------------------------------------------------------------

/** Whether `pid` exists and is not a zombie. */
const alive = (pid: number) => {
  const s = readStat(pid)
  return s !== undefined && s.state !== 'Z'
}

/** `pid`, which must be alive now: its identity (pid and start time). */
function seen(t: ExecutionContext, pid: number): ProcessId {
  const s = readStat(pid)
  if (s === undefined || s.state === 'Z') t.fail(`process ${pid} is not alive`)
  return identityOf(pid, s?.startTicks ?? -1)
}

/** Whether `p` is gone from /proc: it exited and was reaped. */
const gone = (p: ProcessId) => !exists(p)

function comm(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return null
  }
}

/** Whether `sig` is set in a signal mask of /proc/PID/status: SigCgt (caught) or SigIgn (ignored). */
function sigMask(pid: number, line: 'SigCgt' | 'SigIgn', sig: string): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const hex = new RegExp(`^${line}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1]
    return hex !== undefined && ((BigInt('0x' + hex) >> BigInt(signo(sig) - 1)) & 1n) === 1n
  } catch {
    return false
  }
}

/** Every process below `root`, from a /proc scan. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const s = readStat(name)
    if (!s) continue
    const list = children.get(s.ppid) ?? []
    list.push(Number(name))
    children.set(s.ppid, list)
  }
  const out: number[] = []
  const queue = [root]
  while (queue.length > 0) {
    for (const c of children.get(queue.shift()!) ?? []) {
      out.push(c)
      queue.push(c)
    }
  }
  return out
}

/** Live processes carrying this file's marker. */
function marked(): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || !alive(Number(name))) continue
    try {
      if (readFileSync(`/proc/${name}/environ`, 'utf8').split('\0').includes(`${MARK_NAME}=${MARK}`)) out.push(Number(name))
    } catch {
      // Gone, or not ours to read.
    }
  }
  return out
}

const kill = (pid: number, sig: NodeJS.Signals | number = 'SIGKILL') => {
  try {
    process.kill(pid, sig)
  } catch {
    // Already gone.
  }
}

/** SIGKILLs everything below `root` (the CLI adopts and reaps them meanwhile), then `root`. */
function killTree(root: number): void {
  for (let round = 0; round < 50; round++) {
    const below = descendants(root).filter(alive)
    if (below.length === 0) break
    below.forEach((p) => kill(p))
  }
  kill(root)
}

// --- running the CLI --------------------------------------------------------------------------

interface Result {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** Set when the run outlived its timeout and was killed. */
  timedOut: boolean
}

interface Run {
  child: ChildProcess
  pid: number
  stdout: string
  stderr: string
  /** The process exited (and was reaped). */
  exited: boolean
  /** Its output has ended too. */
  closed: boolean
  result: Promise<Result>
  /** Resolves once stdout holds a line matching `re` (with its groups); rejects at the end of the output or on timeout. */
  line(re: RegExp, ms?: number): Promise<RegExpMatchArray>
  /** Resolves once stdout holds `n` lines matching `re`, with their matches. */
  lines(re: RegExp, n: number, ms?: number): Promise<RegExpMatchArray[]>
}

interface StartOptions {
  env?: Record<string, string>
  /** Kill the run (whole tree) after this long; the test then fails on timedOut. */
  timeout?: number
}

// Node reads NODE_EXTRA_CA_CERTS at every start (tens of ms of CPU each, where it is set): the
// CLI makes no TLS connection, and these specs start a few hundred of it.
const { NODE_EXTRA_CA_CERTS: _extraCerts, ...baseEnv } = process.env

/** Runs not yet exited: killed with their trees if this worker exits before their tests end. */
const running = new Set<Run>()
process.on('exit', () => {
  for (const run of running) if (run.pid) killTree(run.pid)
})

/** Starts `file args` with stdin a pipe, and registers its cleanup with the test. */
function start(t: ExecutionContext, file: string, args: string[], options: StartOptions = {}): Run {
  const child = spawn(file, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...baseEnv, ...options.env, [MARK_NAME]: MARK },
  })
  // 0 when the spawn itself failed (its 'error' ends the run below).
  const pid = child.pid ?? 0
  const watchers = new Set<() => void>()
  const run: Run = {
    child,
    pid,
    stdout: '',
    stderr: '',
    exited: false,
    closed: false,
    result: undefined as unknown as Promise<Result>,
    line: (re, ms) => run.lines(re, 1, ms).then((m) => m[0]!),
    lines: (re, n, ms = 30_000) =>
      new Promise((resolve, reject) => {
        const global = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'gm')
        const check = () => {
          const found = [...run.stdout.matchAll(global)]
          if (found.length >= n) return finish(() => resolve(found.slice(0, n)))
          if (run.closed) return finish(() => reject(new Error(`output ended before ${n} lines ${re}:\n${describe()}`)))
        }
        const timer = setTimeout(() => finish(() => reject(new Error(`no ${n} lines ${re} in ${ms}ms:\n${describe()}`))), ms)
        const finish = (then: () => void) => {
          clearTimeout(timer)
          watchers.delete(check)
          then()
        }
        watchers.add(check)
        check()
      }),
  }
  const describe = () => `stdout: ${run.stdout}\nstderr: ${run.stderr}`
  const notify = () => [...watchers].forEach((w) => w())
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    run.stdout += d
    notify()
  })
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (run.stderr += d))
  child.stdin!.on('error', () => {}) // EPIPE when the command never reads it
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    if (pid) killTree(pid)
  }, options.timeout ?? 30_000)
  running.add(run)
  run.result = new Promise<Result>((resolve) => {
    const end = (code: number | null, signal: NodeJS.Signals | null) => {
      if (run.closed) return
      run.exited = run.closed = true
      running.delete(run)
      notify()
      clearTimeout(timer)
      resolve({ code, signal, stdout: run.stdout, stderr: run.stderr, timedOut })
    }
    child.on('exit', () => {
      run.exited = true
      running.delete(run)
    })
    child.on('close', end)
    // The spawn failed (EAGAIN when the machine is out of processes): no 'close' follows.
    child.on('error', (err) => {
      run.stderr += `spawn failed: ${err.message}\n`
      if (child.pid === undefined) end(null, null)
    })
  })
  t.teardown(() => {
    clearTimeout(timer)
    if (!run.exited && pid) killTree(pid)
  })
  return run
}

/** Starts the CLI with `args`. */
const cli = (t: ExecutionContext, args: string[], options?: StartOptions) => start(t, CLI, args, options)

/**
 * The command (or its shell) could not start for want of processes: the machine is shared,
 * and pids run short when other work forks heavily. Not the CLI's doing.
 */
const outOfResources = (r: Result) => /Resource temporarily unavailable|Cannot fork|EAGAIN/.test(r.stderr)

/** Runs the CLI to its end (again, a few times, if the machine could not start it). */
async function runCli(t: ExecutionContext, args: string[], options?: StartOptions): Promise<Result> {
  for (let attempt = 1; ; attempt++) {
    const r = await cli(t, args, options).result
    if (attempt === 5 || !outOfResources(r)) return r
    t.log(`retrying \`subreaper ${args.join(' ')}\`: out of threads or processes: ${r.stderr.trim().split('\n')[0]}`)
    await sleep(500 * attempt)
  }
}

/** The CLI ended by itself (not killed, not timed out) with exit status `code`. */
function expectExit(t: ExecutionContext, r: Result, code: number): void {
  t.false(r.timedOut, 'the run timed out')
  t.is(r.signal, null, 'the CLI itself was killed by a signal')
  t.is(r.code, code, `exit status; stderr: ${r.stderr}`)
}

// --- the report -------------------------------------------------------------------------------

/** One process of the report (`--report=json`, `--report-file`). */
interface ReportProcess {
  pid: number
  comm: string | null
  main: boolean
  leftover: boolean
  action: 'terminated' | 'killed' | null
  status: number
  code: number | null
  signal: string | null
  coreDumped: boolean
  userCPUTimeUs: number
  systemCPUTimeUs: number
  maxRSSKiB: number | null
  startTime: number | null
  exitTime: number
  lifetimeMs: number | null
}

interface Report {
  command: string[]
  pid: number
  status: number
  code: number | null
  signal: string | null
  pid1: boolean
  processes: ReportProcess[]
  summary: { exited: number; leftovers: number; terminated: number; killed: number }
}

function parseReport(t: ExecutionContext, text: string): Report {
  try {
    return JSON.parse(text) as Report
  } catch (err) {
    t.log(text)
    throw err
  }
}

const byPid = (report: Report) => new Map(report.processes.map((p) => [p.pid, p]))

/** What the test expects of one reported process (the rest is checked for type). */
type Expected = Pick<ReportProcess, 'main' | 'leftover' | 'action' | 'status' | 'code' | 'signal'> & { comm?: string }

const exited = (code: number, more: Partial<Expected> = {}): Expected => ({
  main: false,
  leftover: false,
  action: null,
  status: code,
  code,
  signal: null,
  ...more,
})

const killedBy = (signal: string, more: Partial<Expected> = {}): Expected => ({
  main: false,
  leftover: false,
  action: null,
  status: 128 + signo(signal),
  code: null,
  signal,
  ...more,
})

/** The report lists exactly the pids of `expected`, each as described, once. */
function checkProcesses(t: ExecutionContext, report: Report, expected: Map<number, Expected>): void {
  t.deepEqual(
    report.processes.map((p) => p.pid).sort((a, b) => a - b),
    [...expected.keys()].sort((a, b) => a - b),
    'the report lists exactly the processes of the tree, once each',
  )
  const got = byPid(report)
  for (const [pid, want] of expected) {
    const p = got.get(pid)
    if (!p) continue
    const { comm: wantComm, ...flags } = want
    t.deepEqual(
      { main: p.main, leftover: p.leftover, action: p.action, status: p.status, code: p.code, signal: p.signal },
      flags,
      `process ${pid}`,
    )
    if (wantComm !== undefined) t.is(p.comm, wantComm, `comm of ${pid}`)
    t.true(Number.isInteger(p.userCPUTimeUs) && p.userCPUTimeUs >= 0, `user CPU of ${pid}`)
    t.true(Number.isInteger(p.systemCPUTimeUs) && p.systemCPUTimeUs >= 0, `system CPU of ${pid}`)
    t.true(p.maxRSSKiB !== null && p.maxRSSKiB > 0, `max RSS of ${pid}`)
    // Integers only: ms since the epoch, ms of lifetime (no float noise).
    t.true(Number.isInteger(p.exitTime) && p.exitTime > 0, `exit time of ${pid}`)
    t.true(p.startTime === null || (Number.isInteger(p.startTime) && p.startTime <= p.exitTime), `start time of ${pid}`)
    t.true(p.lifetimeMs === null || (Number.isInteger(p.lifetimeMs) && p.lifetimeMs >= 0), `lifetime of ${pid}`)
  }
}

// --- helpers ----------------------------------------------------------------------------------

/** Runs `tasks` with at most `limit` at a time. */
async function pool<T>(limit: number, tasks: Array<() => Promise<T>>): Promise<T[]> {
  const out: T[] = new Array(tasks.length)
  let next = 0
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++
      out[i] = await tasks[i]!()
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker))
  return out
}

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'subreaper-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Polls `cond` (generously: the machine may be busy) and fails the test with `what` if it never holds. */
async function eventually(t: ExecutionContext, cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  if (!(await until(cond, ms, 10))) t.fail(`timed out waiting until ${what}`)
}

const pid1Unsupported = (() => {
  try {
    execFileSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'pipe', timeout: 20_000 })
    return null
  } catch (err) {
    return (err as Error).message.split('\n')[0]
  }
})()

/**
 * Runs the CLI as PID 1 of a new PID namespace, with a /proc of its own (`--mount-proc`) or with
 * the host's; returns the run (of unshare) and PID 1's host pid.
 */
function pid1(t: ExecutionContext, args: string[], options?: StartOptions & { mountProc?: boolean }): { run: Run; init: () => number } {
  const mount = options?.mountProc === false ? [] : ['--mount-proc']
  const run = start(t, 'unshare', ['--pid', '--fork', ...mount, CLI, ...args], options)
  // unshare's only child is PID 1 of the namespace: the CLI, under its host pid.
  const init = () => {
    const children = liveChildren(run.pid)
    if (children.length !== 1) throw new Error(`unshare has children ${children.join(', ')}`)
    return children[0]!
  }
  return { run, init }
}

function skipWithoutNamespaces(t: ExecutionContext): boolean {
  if (pid1Unsupported === null) return false
  t.log(`skipped: \`unshare --pid --fork --mount-proc true\` fails here (${pid1Unsupported})`)
  t.pass()
  return true
}

test.after.always('no process started by these specs is left', async (t) => {
  await until(() => marked().length === 0, 5000, 20)
  const left = marked()
  left.forEach((p) => kill(p))
  t.deepEqual(left, [], 'stray processes (killed now)')
  // libuv reaps a child's zombie on its next turn after the exit: waited for, not read once.
  let zombies: number[] = []
  await until(() => (zombies = zombieChildren()).length === 0, 5000, 20)
  t.deepEqual(zombies, [])
})

// --- exit statuses ----------------------------------------------------------------------------

for (const mode of ['subreaper', 'PID 1'] as const) {
  test(`exit codes 0-255 propagate (${mode})`, async (t) => {
    if (mode === 'PID 1' && skipWithoutNamespaces(t)) return
    const codes = Array.from({ length: 256 }, (_, i) => i)
    const command = (code: number) => ['--', 'sh', '-c', `exit ${code}`]
    const results = await pool(
      16,
      codes.map((code) => async () => {
        if (mode === 'subreaper') return runCli(t, command(code), { timeout: 60_000 })
        return pid1(t, command(code), { timeout: 60_000, mountProc: false }).run.result
      }),
    )
    const wrong = results
      .map((r, code) => ({ code, got: r.code, signal: r.signal, timedOut: r.timedOut, stderr: r.stderr }))
      .filter((r) => r.got !== r.code || r.signal !== null || r.timedOut || r.stderr !== '')
    t.deepEqual(wrong, [])
  })
}

const SIGRTMIN = 34
const SIGRTMAX = 64
/** Signals whose default action ends a process: a command dying of each gives 128 + n. */
const FATAL = ['HUP', 'INT', 'QUIT', 'ILL', 'TRAP', 'ABRT', 'BUS', 'FPE', 'KILL', 'USR1', 'SEGV', 'USR2', 'PIPE', 'ALRM', 'TERM', 'STKFLT']
  .concat(['XCPU', 'XFSZ', 'VTALRM', 'PROF', 'IO', 'PWR', 'SYS'])
  .map((n) => signo(`SIG${n}`))
const REALTIME = Array.from({ length: SIGRTMAX - SIGRTMIN + 1 }, (_, i) => SIGRTMIN + i)
const signalName = (n: number) =>
  n >= SIGRTMIN ? `SIGRTMIN+${n - SIGRTMIN}` : Object.entries(constants.signals).find(([, v]) => v === n)![0]

test('death by each fatal signal, standard and real-time, gives 128 + n', async (t) => {
  const signals = [...FATAL, ...REALTIME]
  const results = await pool(
    8,
    signals.map((n) => () => runCli(t, ['--report=json', '--', 'sh', '-c', `ulimit -c 0; kill -${n} $$`], { timeout: 60_000 })),
  )
  const wrong = []
  for (const [i, r] of results.entries()) {
    const n = signals[i]!
    const report = r.code === 128 + n ? parseReport(t, r.stderr) : null
    const ok =
      !r.timedOut &&
      r.signal === null &&
      report?.status === 128 + n &&
      report.signal === signalName(n) &&
      report.code === null &&
      report.processes.length === 1 &&
      report.processes[0]!.main
    if (!ok) wrong.push({ signal: n, code: r.code, killed: r.signal, stderr: r.stderr.slice(0, 200) })
  }
  t.deepEqual(wrong, [])
})

// --- signal forwarding ------------------------------------------------------------------------

const JOB_CONTROL = [signo('SIGTSTP'), signo('SIGTTIN'), signo('SIGTTOU')]
/** Every catchable signal but SIGCHLD (the init's own) and the job-control stops: forwarded. */
const FORWARDED = Array.from({ length: SIGRTMAX }, (_, i) => i + 1).filter(
  (n) => ![signo('SIGKILL'), signo('SIGSTOP'), signo('SIGCHLD'), 32, 33, ...JOB_CONTROL].includes(n),
)

/** Whether every signal of `signals` is in PID's blocked mask (SigBlk of /proc/PID/status). */
function blocksAll(pid: number, signals: number[]): boolean {
  try {
    const hex = /^SigBlk:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    if (hex === undefined) return false
    const mask = BigInt('0x' + hex)
    return signals.every((n) => ((mask >> BigInt(n - 1)) & 1n) === 1n)
  } catch {
    return false
  }
}

for (const group of [false, true]) {
  const title = group
    ? `--group: each of the ${FORWARDED.length} forwarded signals reaches the command's whole process group once`
    : `each of the ${FORWARDED.length} forwarded signals (standard and real-time) reaches the command once, not its group`
  test(title, async (t) => {
    const run = cli(t, [...(group ? ['--group'] : []), '--', 'python3', fixture('cli-signals.py'), 'child'])
    const [, childText, grandchildText] = await run.line(/^ready (\d+) (\d+)$/)
    const child = Number(childText)
    const grandchild = Number(grandchildText)
    // The grandchild is in the child's group; with --group the child leads a group of its own.
    if (group) {
      t.is(readStat(child)?.pgrp, child)
      t.is(readStat(grandchild)?.pgrp, child)
    } else {
      t.is(readStat(child)?.pgrp, readStat(run.pid)?.pgrp)
      t.is(readStat(grandchild)?.pgrp, readStat(run.pid)?.pgrp)
    }
    t.true(blocksAll(run.pid, FORWARDED), 'the init blocks every signal (it reads them from a signalfd)')
    // One at a time, each once it was seen, so that none is merged with a pending one.
    for (const n of FORWARDED) {
      process.kill(run.pid, n)
      await run.line(new RegExp(`^child got ${n}$`))
      if (group) await run.line(new RegExp(`^grandchild got ${n}$`))
    }
    t.true(alive(run.pid), 'the init survived every signal')
    run.child.stdin!.end()
    const r = await run.result
    expectExit(t, r, 0)
    const lines = r.stdout.trim().split('\n')
    const got = (role: string) => lines.filter((l) => l.startsWith(`${role} got `)).map((l) => Number(l.split(' ')[2]))
    t.deepEqual(got('child'), FORWARDED, 'each signal once, in order')
    t.deepEqual(got('grandchild'), group ? FORWARDED : [])
  })
}

test('SIGTSTP, SIGTTIN, SIGTTOU: forwarded, then the init stops itself until SIGCONT, which is forwarded too', async (t) => {
  const run = cli(t, ['--', 'python3', fixture('cli-signals.py'), 'child'])
  await run.line(/^ready (\d+) (\d+)$/)
  for (const n of JOB_CONTROL) {
    process.kill(run.pid, n)
    await run.line(new RegExp(`^child got ${n}$`))
    await eventually(t, () => readStat(run.pid)?.state === 'T', `the init is stopped after signal ${n}`)
    process.kill(run.pid, 'SIGCONT')
    await eventually(t, () => readStat(run.pid)?.state !== 'T', 'the init runs again')
    // Once per SIGCONT: lines() fails if the output ends without it.
    await run.lines(new RegExp(`^child got ${signo('SIGCONT')}$`), JOB_CONTROL.indexOf(n) + 1)
  }
  run.child.stdin!.end()
  const r = await run.result
  expectExit(t, r, 0)
  t.is(r.stdout.split('\n').filter((l) => l === `child got ${signo('SIGCONT')}`).length, JOB_CONTROL.length)
})

// --- orphans and leftovers --------------------------------------------------------------------

test('orphans are adopted while the command runs, reaped at once, and reported', async (t) => {
  const n = 20
  const run = cli(t, ['--report=json', '--', 'sh', fixture('cli-orphans.sh'), String(n)])
  const main = Number((await run.line(/^main (\d+)$/))[1])
  const orphans = (await run.lines(/^orphan (\d+)$/, n)).map((m) => Number(m[1]))
  // Adopted: their parents exited, and the CLI (not init) is their parent now.
  await eventually(
    t,
    () => orphans.every((p) => readStat(p)?.ppid === run.pid && comm(p) === 'sleep'),
    'every orphan is a child of the CLI, running sleep',
  )
  const procs = orphans.map((p) => seen(t, p))
  orphans.forEach((p) => kill(p, 'SIGTERM'))
  // Reaped while the command still runs: gone from /proc, no zombie left under the CLI.
  await eventually(t, () => procs.every(gone), 'every orphan is reaped')
  t.deepEqual(zombieChildren(run.pid), [])
  t.deepEqual(liveChildren(run.pid), [main])
  run.child.stdin!.end()
  const r = await run.result
  expectExit(t, r, 0)
  const expected = new Map<number, Expected>([[main, exited(0, { main: true, comm: 'sh' })]])
  for (const p of orphans) expected.set(p, killedBy('SIGTERM', { comm: 'sleep' }))
  checkProcesses(t, parseReport(t, r.stderr), expected)
})

test('leftovers get SIGTERM, and SIGKILL after --grace when they ignore it', async (t) => {
  const run = cli(t, ['--grace', '300ms', '--report=json', '--', 'sh', fixture('cli-leftovers.sh')])
  const main = Number((await run.line(/^main (\d+)$/))[1])
  const term = Number((await run.line(/^term (\d+)$/))[1])
  const stubborn = Number((await run.line(/^stubborn (\d+)$/))[1])
  await eventually(t, () => comm(term) === 'sleep' && comm(stubborn) === 'sleep', 'both leftovers run sleep')
  t.true(sigMask(stubborn, 'SigIgn', 'SIGTERM'), 'the stubborn leftover ignores SIGTERM')
  const procs = [seen(t, term), seen(t, stubborn)]
  run.child.stdin!.end()
  const r = await run.result
  expectExit(t, r, 0)
  t.true(procs.every(gone), 'the leftovers are gone')
  const report = parseReport(t, r.stderr)
  checkProcesses(
    t,
    report,
    new Map([
      [main, exited(0, { main: true, comm: 'sh' })],
      [term, killedBy('SIGTERM', { leftover: true, action: 'terminated', comm: 'sleep' })],
      [stubborn, killedBy('SIGKILL', { leftover: true, action: 'killed', comm: 'sleep' })],
    ]),
  )
  t.deepEqual(report.summary, { exited: 3, leftovers: 2, terminated: 1, killed: 1 })
  // SIGKILL came only after the grace period (a lower bound: a busy machine only adds to it).
  const got = byPid(report)
  t.true(got.get(stubborn)!.exitTime - got.get(main)!.exitTime >= 300, 'the grace period was given')
})

test('--wait-leftovers waits for the leftovers instead of terminating them', async (t) => {
  const dir = tempDir(t)
  const go = join(dir, 'go')
  const run = cli(t, ['--wait-leftovers', '--grace', '100ms', '--report=json', '--', 'sh', fixture('cli-wait.sh')], {
    env: { CLI_GO: go },
  })
  const main = Number((await run.line(/^main (\d+)$/))[1])
  const leftover = Number((await run.line(/^leftover (\d+)$/))[1])
  const mainProc = seen(t, main)
  const leftoverProc = seen(t, leftover)
  run.child.stdin!.end()
  await eventually(t, () => gone(mainProc), 'main is reaped')
  // The leftover cannot end before the test creates the file: the CLI must still be waiting,
  // however long this takes.
  await sleep(500)
  t.false(run.exited, 'the CLI exited before its leftover')
  t.true(exists(leftoverProc) && alive(leftover), 'the leftover was terminated')
  writeFileSync(go, '')
  const r = await run.result
  expectExit(t, r, 0)
  t.regex(r.stdout, /^leftover done$/m)
  const report = parseReport(t, r.stderr)
  checkProcesses(
    t,
    report,
    new Map([
      [main, exited(0, { main: true, comm: 'sh' })],
      [leftover, exited(5, { leftover: true, comm: 'sh' })],
    ]),
  )
  t.deepEqual(report.summary, { exited: 2, leftovers: 1, terminated: 0, killed: 0 })
})

/**
 * Sends SIGTERM to the CLI until it exits: the first may come before the CLI has seen its
 * command's exit (it then goes to the command, already gone), and is not needed twice.
 */
async function stopCli(run: Run): Promise<Result> {
  while (!run.exited) {
    kill(run.pid, 'SIGTERM')
    await Promise.race([run.result, sleep(250)])
  }
  return run.result
}

test('SIGTERM to subreaper while leftovers have their grace period kills them at once', async (t) => {
  // The grace period is longer than the run's own timeout: only the SIGTERM can end it in time.
  const run = cli(t, ['--grace', '60s', '--report=json', '--', 'sh', fixture('cli-leftovers.sh')])
  const main = seen(t, Number((await run.line(/^main (\d+)$/))[1]))
  const term = Number((await run.line(/^term (\d+)$/))[1])
  const stubborn = Number((await run.line(/^stubborn (\d+)$/))[1])
  await eventually(t, () => comm(term) === 'sleep' && comm(stubborn) === 'sleep', 'both leftovers run sleep')
  run.child.stdin!.end()
  await eventually(t, () => gone(main), 'main is reaped')
  const r = await stopCli(run)
  expectExit(t, r, 0)
  const report = parseReport(t, r.stderr)
  checkProcesses(
    t,
    report,
    new Map([
      [main.pid, exited(0, { main: true, comm: 'sh' })],
      [term, killedBy('SIGTERM', { leftover: true, action: 'terminated', comm: 'sleep' })],
      [stubborn, killedBy('SIGKILL', { leftover: true, action: 'killed', comm: 'sleep' })],
    ]),
  )
})

test('SIGTERM to subreaper --wait-leftovers stops the wait and terminates the leftovers', async (t) => {
  const dir = tempDir(t)
  const run = cli(t, ['--wait-leftovers', '--report=json', '--', 'sh', fixture('cli-wait.sh')], {
    env: { CLI_GO: join(dir, 'go') }, // never created: the leftover would run for 30 s
  })
  const main = seen(t, Number((await run.line(/^main (\d+)$/))[1]))
  const leftover = seen(t, Number((await run.line(/^leftover (\d+)$/))[1]))
  run.child.stdin!.end()
  await eventually(t, () => gone(main), 'main is reaped')
  const r = await stopCli(run)
  expectExit(t, r, 0)
  t.notRegex(r.stdout, /leftover done/)
  t.true(gone(leftover), 'the leftover is gone')
  const report = parseReport(t, r.stderr)
  const got = byPid(report)
  t.like(got.get(main.pid), { main: true, code: 0 })
  // The leftover (a shell polling for the file) dies of the SIGTERM; its last `sleep 0.05`, if
  // any, is adopted in turn and may be listed too.
  t.like(got.get(leftover.pid), { leftover: true, action: 'terminated', signal: 'SIGTERM' })
})

// --- usage errors -----------------------------------------------------------------------------

test('usage errors exit 2 with a message and the usage, and run nothing', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[], /no command given/],
    [['--'], /no command given/],
    [['--report'], /no command given/],
    [['--bogus', '--', 'sh', '-c', 'echo ran'], /unknown option --bogus/],
    [['-x', 'sh', '-c', 'echo ran'], /unknown option -x/],
    [['--grace', 'abc', '--', 'sh', '-c', 'echo ran'], /bad duration "abc"/],
    [['--grace=5x', '--', 'sh', '-c', 'echo ran'], /bad duration "5x"/],
    [['--grace'], /--grace needs a value/],
    [['--report=xml', '--', 'sh', '-c', 'echo ran'], /unknown report format "xml"/],
  ]
  const results = await Promise.all(cases.map(([args]) => runCli(t, args)))
  results.forEach((r, i) => {
    const [args, message] = cases[i]!
    const what = `subreaper ${args.join(' ')}`
    t.is(r.code, 2, what)
    t.is(r.stdout, '', what)
    t.regex(r.stderr, new RegExp(`^subreaper: ${message.source}`), what)
    t.regex(r.stderr, /^Usage: subreaper \[options\] \[--\] command \[args\.\.\.\]$/m, what)
  })
})

test('--help and --version', async (t) => {
  const [help, version] = await Promise.all([runCli(t, ['--help']), runCli(t, ['-V'])])
  expectExit(t, help, 0)
  t.regex(help.stdout, /^Usage: subreaper/)
  expectExit(t, version, 0)
  t.is(version.stdout, `${VERSION}\n`)
})

test('a command that does not exist exits 127', async (t) => {
  const dir = tempDir(t)
  const results = await Promise.all([
    runCli(t, ['--', 'subreaper-no-such-command']),
    runCli(t, [join(dir, 'missing')]),
    runCli(t, [join(dir, 'no-dir', 'missing')]),
  ])
  for (const [r, name] of [
    [results[0]!, 'subreaper-no-such-command'],
    [results[1]!, join(dir, 'missing')],
    [results[2]!, join(dir, 'no-dir', 'missing')],
  ] as const) {
    expectExit(t, r, 127)
    t.is(r.stderr, `subreaper: ${name}: command not found\n`)
  }
})

test('a file that is not executable exits 126', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'script.sh')
  writeFileSync(file, '#!/bin/sh\necho ran\n')
  chmodSync(file, 0o644)
  const results = await Promise.all([runCli(t, ['--', file]), runCli(t, ['--', dir])])
  for (const [r, name] of [
    [results[0]!, file],
    [results[1]!, dir],
  ] as const) {
    expectExit(t, r, 126)
    t.is(r.stdout, '')
    t.is(r.stderr, `subreaper: ${name}: cannot run: Permission denied (os error 13)\n`)
  }
})

// --- the report -------------------------------------------------------------------------------

/** Runs cli-tree.sh under the CLI with `args`; returns the run's result and the tree's pids. */
async function runTree(t: ExecutionContext, args: string[]) {
  const go = join(tempDir(t), 'go')
  const run = cli(t, [...args, '--', 'sh', fixture('cli-tree.sh')], { env: { CLI_GO: go } })
  const roles = ['main', 'exit0', 'exit3', 'exit7', 'usr1', 'kill', 'leftover'] as const
  const pids = {} as Record<(typeof roles)[number], number>
  for (const role of roles) pids[role] = Number((await run.line(new RegExp(`^${role} (\\d+)$`)))[1])
  // Every orphan but the leftover finishes and is reaped, and the leftover runs sleep, before
  // main exits.
  const quick = [pids.exit0, pids.exit3, pids.exit7, pids.usr1, pids.kill].map((p) => seen(t, p))
  writeFileSync(go, '')
  await eventually(t, () => quick.every(gone) && comm(pids.leftover) === 'sleep', 'the orphans are reaped')
  const leftover = seen(t, pids.leftover)
  t.deepEqual(zombieChildren(run.pid), [])
  run.child.stdin!.end()
  const r = await run.result
  expectExit(t, r, 4)
  t.true(gone(leftover), 'the leftover is gone')
  const expected = new Map<number, Expected>([
    [pids.main, exited(4, { main: true, comm: 'sh' })],
    [pids.exit0, exited(0, { comm: 'sh' })],
    [pids.exit3, exited(3, { comm: 'sh' })],
    [pids.exit7, exited(7, { comm: 'sh' })],
    [pids.usr1, killedBy('SIGUSR1', { comm: 'sh' })],
    [pids.kill, killedBy('SIGKILL', { comm: 'sh' })],
    [pids.leftover, killedBy('SIGTERM', { leftover: true, action: 'terminated', comm: 'sleep' })],
  ])
  return { r, pids, expected }
}

test('--report=json and --report-file list exactly the processes of a known tree', async (t) => {
  const file = join(tempDir(t), 'report.json')
  const { r, pids, expected } = await runTree(t, ['--report=json', '--report-file', file])
  const report = parseReport(t, r.stderr)
  t.notRegex(r.stderr, /":\s*-?\d+\.\d/, 'no fractional number in the JSON')
  t.deepEqual(parseReport(t, readFileSync(file, 'utf8')), report, 'the file holds the same report')
  t.deepEqual(report.command, ['sh', fixture('cli-tree.sh')])
  t.like(report, { pid: pids.main, status: 4, code: 4, signal: null, pid1: false })
  t.deepEqual(report.summary, { exited: 7, leftovers: 1, terminated: 1, killed: 0 })
  checkProcesses(t, report, expected)
  // A child's max RSS starts from its parent's resident size at fork: under a small native init,
  // a shell's or a sleep's is its own few MB (under an init in Node it was Node's ~44 MB).
  const rss = report.processes.map((p) => p.maxRSSKiB ?? 0)
  t.true(Math.max(...rss) < 8 * 1024, `max RSS of sh and sleep, KiB: ${rss.join(', ')}`)
})

test('--report prints a table of exactly the processes of a known tree', async (t) => {
  const { r, expected } = await runTree(t, ['--report'])
  const lines = r.stderr.trimEnd().split('\n')
  t.deepEqual(lines[0]!.split(/\s{2,}/), ['PID', 'COMMAND', 'STATUS', 'CPU', 'MAX RSS', 'LIFETIME', 'NOTE'])
  t.is(
    lines.at(-1),
    `subreaper: 'sh' '${fixture('cli-tree.sh')}' exited with code 4; ` +
      '7 processes exited under subreaper, 1 leftover (1 terminated, 0 killed)',
  )
  const rows = lines.slice(1, -1).map((l) => l.split(/\s{2,}/))
  t.deepEqual(
    rows.map((row) => Number(row[0])).sort((a, b) => a - b),
    [...expected.keys()].sort((a, b) => a - b),
  )
  for (const row of rows) {
    const want = expected.get(Number(row[0]))
    if (!want) continue
    const status = want.signal ?? `exit ${want.code}`
    const note = want.main ? 'main' : want.leftover ? `leftover, ${want.action}` : undefined
    t.deepEqual([row[1], row[2], row[6]], [want.comm, status, note], `row ${row.join(' | ')}`)
    t.regex(row[3]!, /^\d+ms$|^\d+\.\d\ds$/, 'CPU')
    t.regex(row[4]!, /^\d+K$|^\d+\.\dM$/, 'MAX RSS')
    t.regex(row[5]!, /^\d+ms$|^\d+\.\d\ds$|^\d+\.\dm$/, 'LIFETIME')
  }
})

// --- as PID 1 of a PID namespace --------------------------------------------------------------

test('as PID 1: reaps 200 orphans, answers SIGTERM with 143, and leaves no zombie', async (t) => {
  if (skipWithoutNamespaces(t)) return
  const n = 200
  const { run, init } = pid1(t, ['--report=json', '--', 'sh', fixture('cli-pid1.sh'), String(n)], { timeout: 50_000 })
  const main = Number((await run.line(/^main (\d+)$/))[1])
  await run.line(/^ready$/, 45_000)
  t.notRegex(run.stdout, /not reaped/)
  const orphans = [...run.stdout.matchAll(/^orphan (\d+)$/gm)].map((m) => Number(m[1]))
  t.is(orphans.length, n)
  // Seen from outside: PID 1 has no zombie, and only the main command as a child.
  const host = init()
  const seenUnshare = seen(t, run.pid)
  t.deepEqual(zombieChildren(host), [])
  t.is(liveChildren(host).length, 1)
  t.true(blocksAll(host, [signo('SIGTERM')]), 'PID 1 blocks SIGTERM (it reads it from its signalfd)')
  process.kill(host, 'SIGTERM')
  const r = await run.result
  expectExit(t, r, 143)
  const report = parseReport(t, r.stderr)
  t.like(report, { pid: main, pid1: true, status: 143, code: null, signal: 'SIGTERM' })
  const expected = new Map<number, Expected>([[main, killedBy('SIGTERM', { main: true, comm: 'sleep' })]])
  for (const p of orphans) expected.set(p, exited(0, { comm: 'sh' }))
  checkProcesses(t, report, expected)
  t.deepEqual(report.summary, { exited: n + 1, leftovers: 0, terminated: 0, killed: 0 })
  // The namespace is gone with its PID 1; unshare was reaped (the last hook checks for zombies
  // once no other test runs).
  t.true(gone(seenUnshare), 'unshare is reaped')
})

/**
 * Runs the leftovers fixture under the CLI as PID 1 and checks what its report says: the
 * command exited 0, its two leftovers were terminated and killed. Returns the report.
 */
async function pid1Leftovers(t: ExecutionContext, options: { mountProc?: boolean } = {}) {
  const { run } = pid1(t, ['--grace', '300ms', '--report=json', '--', 'sh', fixture('cli-leftovers.sh')], options)
  const main = Number((await run.line(/^main (\d+)$/))[1])
  const term = Number((await run.line(/^term (\d+)$/))[1])
  const stubborn = Number((await run.line(/^stubborn (\d+)$/))[1])
  run.child.stdin!.end()
  const r = await run.result
  expectExit(t, r, 0)
  const report = parseReport(t, r.stderr)
  t.like(report, { pid: main, pid1: true, status: 0 })
  // The command's name is read only from a /proc of the namespace's own.
  const mainExit = options.mountProc === false ? exited(0, { main: true }) : exited(0, { main: true, comm: 'sh' })
  checkProcesses(
    t,
    report,
    new Map([
      [main, mainExit],
      [term, killedBy('SIGTERM', { leftover: true, action: 'terminated' })],
      [stubborn, killedBy('SIGKILL', { leftover: true, action: 'killed' })],
    ]),
  )
  return { report, main }
}

test('as PID 1: leftovers are terminated and killed, and the status propagates', async (t) => {
  if (skipWithoutNamespaces(t)) return
  await pid1Leftovers(t)
})

test("as PID 1 without a /proc of its own (the host's): leftovers are ended through kill(-1), and the init exits", async (t) => {
  if (skipWithoutNamespaces(t)) return
  // The host's /proc lists other processes under the namespace's pids: the init must not walk it.
  const { report, main } = await pid1Leftovers(t, { mountProc: false })
  t.is(main, 2, 'the command is pid 2 of the namespace')
  t.true(
    report.processes.every((p) => p.comm === null),
    "no name read from a /proc that is not the namespace's",
  )
})

// --- what the command inherits ------------------------------------------------------------------

/** Runs `file args` to its end with extra descriptors; returns the output of each. */
function runSync(file: string, args: string[], stdio: Array<'pipe' | 'ignore'> = ['ignore', 'pipe', 'pipe']) {
  const r = spawnSync(file, args, { stdio, env: { ...baseEnv, [MARK_NAME]: MARK }, timeout: 30_000, encoding: 'utf8' })
  const output: string[] = (r.output ?? []).map((o) => (o ?? '').toString())
  return { status: r.status, signal: r.signal, out: (i: number) => output[i] ?? '' }
}

test('an executable script without #! runs with /bin/sh (ENOEXEC), as the C inits do', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'no-shebang')
  writeFileSync(file, 'echo "ran with $# args: $1"\nexit 9\n')
  chmodSync(file, 0o755)
  const r = await runCli(t, ['--', file, 'one'])
  expectExit(t, r, 9)
  t.is(r.stdout, 'ran with 1 args: one\n')
})

test('descriptors 3 and up are inherited by the command', (t) => {
  const r = runSync(CLI, ['--', 'sh', '-c', 'echo through-fd-3 >&3; echo through-fd-4 >&4'], ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'])
  t.is(r.status, 0, r.out(2))
  t.is(r.out(3), 'through-fd-3\n')
  t.is(r.out(4), 'through-fd-4\n')
})

test('arguments reach the command byte for byte, invalid UTF-8 included', (t) => {
  // The shell makes the argument: Node's own strings cannot hold the byte 0xff.
  const script = `exec "$0" -- sh -c 'printf %s "$1" | od -An -tx1' sh "$(printf 'a\\377b\\001\\303')"`
  const r = runSync('sh', ['-c', script, CLI])
  t.is(r.status, 0, r.out(2))
  t.is(r.out(1).trim().split(/\s+/).join(' '), '61 ff 62 01 c3')
})

/**
 * What the command gets as its environment when `caller` (a Python program, which can give
 * arbitrary bytes) execs `file` with the environment `entries`, byte for byte: the command, sh,
 * prints /proc/$$/environ (what its exec got, whatever sh then makes of it) and its parent's, the
 * init's.
 */
async function environmentThrough(
  t: ExecutionContext,
  file: string,
  entries: Array<[string, string]>,
): Promise<{ command: Buffer; init: Buffer; stderr: string; status: number | null }> {
  const caller = [
    'import os, sys',
    'env = [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in (e.split(":") for e in sys.stdin.read().split(",") if e)]',
    "script = b'cat /proc/$$/environ && cat /proc/$PPID/environ >&2'",
    'os.execve(sys.argv[1], [sys.argv[1], "--", "/bin/sh", "-c", script], dict(env))',
  ].join('\n')
  const hex = (s: string) => Buffer.from(s, 'latin1').toString('hex')
  // The entries go in on stdin: a 1 MiB environment is more than one argument may hold. Not
  // spawnSync: the other tests of this file run meanwhile, and need the event loop.
  const child = spawn('python3', ['-c', caller, file], { stdio: ['pipe', 'pipe', 'pipe'] })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (d: Buffer) => out.push(d))
  child.stderr.on('data', (d: Buffer) => err.push(d))
  child.stdin.on('error', () => {})
  child.stdin.end(entries.map(([k, v]) => `${hex(k)}:${hex(v)}`).join(','))
  const timer = setTimeout(() => killTree(child.pid ?? 0), 30_000)
  t.teardown(() => {
    clearTimeout(timer)
    if (child.exitCode === null && child.signalCode === null && child.pid) killTree(child.pid)
  })
  const status = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => resolve(code))
  })
  clearTimeout(timer)
  const stderr = Buffer.concat(err)
  return { command: Buffer.concat(out), init: stderr, stderr: stderr.toString('latin1'), status }
}

/** `entries` as the kernel holds an environment: NAME=value, each ended by a NUL byte. */
const environBytes = (entries: Array<[string, string]>) => Buffer.from(entries.map(([k, v]) => `${k}=${v}\0`).join(''), 'latin1')

/** Where two byte strings first differ, with a little of each from there. */
function firstDifference(a: Buffer, b: Buffer): string {
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  const show = (x: Buffer) => JSON.stringify(x.subarray(i, i + 60).toString('latin1'))
  return `${i} (lengths ${a.length} and ${b.length}): ${show(a)} against ${show(b)}`
}

/** An odd environment (a newline in a value, bytes that are not UTF-8, a name no shell takes, an empty value), an empty one, a huge one (1 MiB). */
const ENVIRONMENTS: Array<[string, Array<[string, string]>]> = [
  [
    'odd',
    [
      ['PATH', '/usr/bin:/bin'],
      ['FOO', 'bar'],
      ['ODD', 'x\ny=z'],
      ['BYTES', 'a\xffb\x01\xc3'],
      ['A-B', '1'],
      ['EMPTY', ''],
      [MARK_NAME, MARK],
    ],
  ],
  ['empty', []],
  ['huge', [[MARK_NAME, MARK], ...Array.from({ length: 2000 }, (_, i): [string, string] => [`BIG_${i}`, `${i}:`.padEnd(500, 'x')])]],
]

for (const [name, entries] of ENVIRONMENTS) {
  test(`the environment reaches the command byte for byte, in order (${name}: ${entries.length} variables)`, async (t) => {
    const r = await environmentThrough(t, CLI, entries)
    t.is(r.status, 0, r.stderr.slice(0, 2000))
    // Buffer.equals: ava's deepEqual of two 1 MiB buffers takes seconds.
    const want = environBytes(entries)
    t.true(r.command.equals(want), `the command's environment differs from byte ${firstDifference(r.command, want)}`)
    t.true(r.init.equals(want), `the init's own environment (what it was given) differs from byte ${firstDifference(r.init, want)}`)
  })
}

/** The Sig* lines of a /proc/PID/status text. */
const sigLines = (status: string) =>
  Object.fromEntries(['SigBlk', 'SigIgn', 'SigCgt'].map((k) => [k, new RegExp(`^${k}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1] ?? '?']))
const hasSignal = (hex: string, name: string) => ((BigInt('0x' + hex) >> BigInt(signo(name) - 1)) & 1n) === 1n

test('the command starts with a clean signal mask and dispositions', (t) => {
  // Node's spawn hands a clean caller: nothing blocked, ignored or caught.
  const r = runSync(CLI, ['--', 'cat', '/proc/self/status'])
  t.is(r.status, 0, r.out(2))
  t.deepEqual(sigLines(r.out(1)), { SigBlk: '0000000000000000', SigIgn: '0000000000000000', SigCgt: '0000000000000000' })
})

test("the caller's ignored and blocked signals are passed on to the command (nohup)", (t) => {
  // A caller that ignores SIGHUP and SIGUSR2 and blocks SIGUSR1 (Python also ignores SIGPIPE and
  // SIGXFSZ), prints its own masks, then becomes the init.
  const caller = [
    'import os, signal, sys',
    'signal.signal(signal.SIGHUP, signal.SIG_IGN)',
    'signal.signal(signal.SIGUSR2, signal.SIG_IGN)',
    'signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])',
    'sys.stdout.write(open("/proc/self/status").read()); sys.stdout.flush()',
    'os.execv(sys.argv[1], sys.argv[1:])',
  ].join('\n')
  const r = runSync('python3', ['-c', caller, CLI, '--', 'cat', '/proc/self/status'])
  t.is(r.status, 0, r.out(2))
  const [callerStatus, commandStatus] = r.out(1).split(/(?=^Name:)/m)
  const before = sigLines(callerStatus!)
  const after = sigLines(commandStatus!)
  t.true(hasSignal(before.SigIgn!, 'SIGHUP') && hasSignal(before.SigIgn!, 'SIGUSR2') && hasSignal(before.SigBlk!, 'SIGUSR1'))
  t.is(after.SigIgn, before.SigIgn, 'the ignored signals')
  t.is(after.SigBlk, before.SigBlk, 'the blocked signals')
  t.is(after.SigCgt, '0000000000000000')
  // nohup itself.
  const nohup = runSync('nohup', [CLI, '--', 'cat', '/proc/self/status'])
  t.is(nohup.status, 0, nohup.out(2))
  t.true(hasSignal(sigLines(nohup.out(1)).SigIgn!, 'SIGHUP'), 'nohup subreaper cmd: cmd ignores SIGHUP')
})

// --- in a terminal --------------------------------------------------------------------------------

/** Runs a scenario of cli-pty.py: the CLI as the session leader of a real pseudo-terminal. */
async function inTerminal(
  t: ExecutionContext,
  scenario: string,
): Promise<{ status: number; screen: string; ok?: boolean; stopped?: boolean }> {
  const run = start(t, 'python3', [fixture('cli-pty.py'), scenario, CLI], { timeout: 60_000 })
  const r = await run.result
  t.false(r.timedOut, 'the scenario timed out')
  t.is(r.code, 0, r.stderr)
  return JSON.parse(r.stdout) as { status: number; screen: string; ok?: boolean; stopped?: boolean }
}

test('in a terminal: an interactive shell runs a typed command and exits with its status', async (t) => {
  const r = await inTerminal(t, 'shell')
  t.true(r.ok, r.screen)
  t.is(r.status, 7, r.screen)
})

test('in a terminal: one Ctrl-C and one resize reach the command once each', async (t) => {
  const r = await inTerminal(t, 'ctrl-c')
  t.true(r.ok, r.screen)
  t.is(r.status, 0, r.screen)
  // The terminal echoes Ctrl-C as ^C, on the line of the first output that follows.
  const count = (n: number) => r.screen.split('\n').filter((l) => l.trim().replace(/^\^C/, '') === `child got ${n}`).length
  t.is(count(signo('SIGINT')), 1, r.screen)
  t.is(count(signo('SIGWINCH')), 1, r.screen)
})

test('in a terminal: a hang-up ends the command with SIGHUP, and the init with 129', async (t) => {
  const r = await inTerminal(t, 'hangup')
  t.is(r.status, 129, r.screen)
})

test('in a terminal: with -g the command gets the terminal and can read it', async (t) => {
  const r = await inTerminal(t, 'read')
  t.true(r.ok, r.screen)
  t.is(r.status, 0, r.screen)
})

// --- the npm launcher -------------------------------------------------------------------------

test('node_modules/.bin/subreaper execs the native init: nothing between the caller and the init', async (t) => {
  const r = await start(t, LAUNCHER, ['--', 'sh', '-c', 'echo "$PPID"; readlink /proc/$PPID/exe; grep ^PPid: /proc/$PPID/status']).result
  t.is(r.code, 0, r.stderr)
  const [initPid, exe, ppidLine] = r.stdout.trim().split('\n')
  t.is(exe, realpathSync(CLI), "the command's parent runs the native binary")
  t.is(ppidLine, `PPid:\t${process.pid}`, 'whose parent is the caller (this test): no node, no shell in between')
  t.true(Number(initPid) > 0)
})

test("the sh launcher (bin/subreaper before the postinstall, or with --ignore-scripts) passes the caller's variables and no PWD of its own", async (t) => {
  // Names a shell can hold; their order is the shell's (the native init keeps it: tested above).
  const entries: Array<[string, string]> = [
    ['PATH', '/usr/bin:/bin'],
    ['FOO', 'bar'],
    ['ODD', 'x\ny=z'],
    [MARK_NAME, MARK],
  ]
  const sorted = (b: Buffer) => b.toString('latin1').split('\0').sort().join('\0')
  const r = await environmentThrough(t, LAUNCHER, entries)
  t.is(r.status, 0, r.stderr.slice(0, 2000))
  t.is(sorted(r.command), sorted(environBytes(entries)))
  const withPwd: Array<[string, string]> = [...entries, ['PWD', process.cwd()]]
  const given = await environmentThrough(t, LAUNCHER, withPwd)
  t.is(sorted(given.command), sorted(environBytes(withPwd)), 'a PWD the caller gave stays')
})

test("in a terminal: Ctrl-Z reaches the command once and stops the init with it; the job's SIGCONT continues both, once", async (t) => {
  const r = await inTerminal(t, 'job-stop')
  t.true(r.ok, r.screen)
  t.true(r.stopped, 'the init was seen stopped by its caller')
  t.is(r.status, 0, r.screen)
  const count = (n: number) => r.screen.split('\n').filter((l) => l.trim().replace(/^\^Z/, '') === `child got ${n}`).length
  t.is(count(signo('SIGTSTP')), 1, r.screen)
  t.is(count(signo('SIGCONT')), 1, r.screen)
})

test("in a terminal with -g: Ctrl-Z stops the command's group and the init; SIGCONT to the init continues the command, which gets the terminal back", async (t) => {
  const r = await inTerminal(t, 'ctrl-z')
  t.true(r.ok, r.screen)
  t.true(r.stopped, 'the init was seen stopped by its caller')
  t.is(r.status, 0, r.screen)
})

// --- coming from tini and dumb-init ---------------------------------------------------------------
// Each scenario runs under the peer (Debian's tini and dumb-init, which .ci/run installs) and under
// subreaper with the peer's spelling (the binary, and for -e, -p and -r node_modules/.bin/subreaper
// too), and compares what the command saw and how the init exited. They run one at a time, before
// the rest of the file (ava runs serial tests first): many processes each, they would otherwise
// add to the load the signal specs above run under.

/** A peer init by name, from PATH: the scenarios need it (`apt-get install tini dumb-init`). */
function peer(t: ExecutionContext, name: 'tini' | 'dumb-init'): string {
  const found = (process.env.PATH ?? '')
    .split(':')
    .map((d) => join(d, name))
    .find((f) => {
      try {
        return (statSync(f).mode & 0o111) !== 0
      } catch {
        return false
      }
    })
  if (found === undefined) t.fail(`${name} is not installed: apt-get install -y tini dumb-init (bash .ci/run does)`)
  return found ?? name
}

/** `peer-signals.py`'s lines of what a process got, in order. */
const gotLines = (stdout: string) => stdout.split('\n').filter((l) => / got \d+$/.test(l))

const PEER_SIGNALS = ['python3', fixture('cli-peer-signals.py')]

test.serial("-e CODE (tini's spelling): that status exits 0, others pass through; as tini does", async (t) => {
  const tini = peer(t, 'tini')
  const cases: Array<[string[], string, number]> = [
    [['-e', '143'], 'kill -TERM $$', 0],
    [['-e', '3', '-e', '4'], 'exit 4', 0],
    [['-e3'], 'exit 5', 5],
    [['-e', '0'], 'exit 0', 0],
  ]
  for (const [flags, script, want] of cases) {
    for (const init of [tini, CLI, LAUNCHER]) {
      const r = await start(t, init, ['-s', ...flags, '--', 'sh', '-c', script]).result
      expectExit(t, r, want)
    }
  }
  const bad = await runCli(t, ['-e', '256', '--', 'true'])
  expectExit(t, bad, 2)
  t.regex(bad.stderr, /bad exit status "256" for -e: use a number from 0 to 255/)
})

test.serial(
  '--report when the init gets SIGTERM: forwarded, the command dies of it, and the report (schema 1) still prints; -e 143 makes it exit 0',
  async (t) => {
    for (const [flags, code] of [
      [[], 143],
      [['-e', '143'], 0],
    ] as const) {
      const run = cli(t, [...flags, '--report=json', '--', 'sh', '-c', 'echo ready; exec sleep 1000'])
      await run.line(/^ready$/)
      kill(run.pid, 'SIGTERM')
      const r = await run.result
      expectExit(t, r, code)
      const report = parseReport(t, r.stderr) as Report & { schema: number; exitStatus: number }
      t.is(report.schema, 1)
      t.like(report, { status: 143, signal: 'SIGTERM', exitStatus: code, code: null })
    }
  },
)

test.serial("-p SIGNAL (tini's spelling): the init gets SIGNAL when its parent dies and forwards it; as tini does", async (t) => {
  const tini = peer(t, 'tini')
  for (const init of [tini, CLI, LAUNCHER]) {
    // The parent: a shell that starts the init in the background and waits; killed below.
    const run = start(t, 'sh', ['-c', '"$@" & wait', 'parent', init, '-s', '-p', 'SIGURG', '--', ...PEER_SIGNALS])
    await run.line(/^command ready \d+$/)
    kill(run.pid, 'SIGKILL')
    // The init outlives its parent and keeps the output open until its command exits.
    const r = await run.result
    t.false(r.timedOut, `${init}: the command never got the parent-death signal`)
    t.deepEqual(gotLines(r.stdout), [`command got ${signo('SIGURG')}`], `${init}: ${r.stdout}`)
  }
})

/** Sends `sig` to the init and waits until it has taken it (no longer pending): it has acted on it. */
async function sendAndWaitTaken(t: ExecutionContext, pid: number, sig: NodeJS.Signals): Promise<void> {
  const pending = () => {
    try {
      const hex = /^ShdPnd:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '0'
      return ((BigInt('0x' + hex) >> BigInt(signo(sig) - 1)) & 1n) === 1n
    } catch {
      return false
    }
  }
  kill(pid, sig)
  await eventually(t, () => !pending(), `the init took ${sig}`)
}

test.serial("-r S:R / --rewrite (dumb-init's spelling): S is forwarded as R, R = 0 drops S; as dumb-init does", async (t) => {
  const dumbInit = peer(t, 'dumb-init')
  const outcomes: string[][] = []
  for (const init of [dumbInit, CLI, LAUNCHER]) {
    for (const rewrite of [
      ['-r', '15:3'],
      ['--rewrite', '15:0'],
    ]) {
      const run = start(t, init, [...rewrite, '--', ...PEER_SIGNALS])
      await run.line(/^command ready \d+$/)
      await sendAndWaitTaken(t, run.pid, 'SIGTERM')
      if (rewrite[1] === '15:3') await run.line(/^command got 3$/)
      kill(run.pid, 'SIGURG')
      const r = await run.result
      expectExit(t, r, 0)
      outcomes.push(gotLines(r.stdout))
    }
  }
  const want = [[`command got ${signo('SIGQUIT')}`, `command got ${signo('SIGURG')}`], [`command got ${signo('SIGURG')}`]]
  t.deepEqual(outcomes, [...want, ...want, ...want])
})

test.serial("TINI_KILL_PROCESS_GROUP (and -g): signals go to the command's whole process group; as tini does", async (t) => {
  const tini = peer(t, 'tini')
  for (const [init, args] of [
    [tini, []],
    [CLI, []],
    [CLI, ['-g']],
  ] as const) {
    const env: Record<string, string> = args.length === 0 ? { TINI_KILL_PROCESS_GROUP: '1' } : {}
    const run = start(t, init, [...args, '-s', '--', ...PEER_SIGNALS, 'grandchild'], { env })
    await run.lines(/^(command|grandchild) ready \d+$/, 2)
    kill(run.pid, 'SIGTERM')
    await run.lines(/^(command|grandchild) got 15$/, 2)
    kill(run.pid, 'SIGURG')
    const r = await run.result
    expectExit(t, r, 0)
    t.deepEqual(
      gotLines(r.stdout).sort(),
      ['command got 15', 'command got 23', 'grandchild got 15', 'grandchild got 23'],
      `${init} ${args.join(' ')}`,
    )
  }
})

/** The command's and the init's process group and session, each compared with the other. */
async function groupOf(t: ExecutionContext, init: string, args: string[], env?: Record<string, string>) {
  const script = 'for p in $$ $PPID; do read -r pid comm state ppid pgrp sid rest < /proc/$p/stat; echo "$pid $pgrp $sid"; done'
  const r = await start(t, init, [...args, '--', 'sh', '-c', script], { env }).result
  expectExit(t, r, 0)
  const [command, parent] = r.stdout
    .trim()
    .split('\n')
    .map((l) => l.split(' ').map(Number))
  return { ownGroup: command![1] === command![0], sameGroup: command![1] === parent![1], sameSession: command![2] === parent![2] }
}

test.serial(
  "-c / --single-child and DUMB_INIT_SETSID=0 (dumb-init's spellings): the command stays in the init's process group; as dumb-init -c does",
  async (t) => {
    const dumbInit = peer(t, 'dumb-init')
    const single = { ownGroup: false, sameGroup: true, sameSession: true }
    t.deepEqual(await groupOf(t, dumbInit, ['-c']), single, 'dumb-init -c')
    t.deepEqual(await groupOf(t, dumbInit, [], { DUMB_INIT_SETSID: '0' }), single, 'DUMB_INIT_SETSID=0 dumb-init')
    t.deepEqual(await groupOf(t, CLI, ['-c']), single, 'subreaper -c')
    t.deepEqual(await groupOf(t, CLI, ['-g', '-c']), single, 'subreaper -g -c')
    t.deepEqual(await groupOf(t, CLI, ['-g'], { DUMB_INIT_SETSID: '0' }), single, 'DUMB_INIT_SETSID=0 subreaper -g')
    t.deepEqual(await groupOf(t, CLI, []), single, 'subreaper (the default)')
    // dumb-init's default gives the command a session of its own; subreaper -g a process group of its own.
    t.like(await groupOf(t, dumbInit, []), { ownGroup: true, sameSession: false }, 'dumb-init')
    t.like(await groupOf(t, CLI, ['-g']), { ownGroup: true, sameSession: true }, 'subreaper -g')
  },
)

test.serial("-w (tini's spelling): each reaped zombie that is not the command is named on stderr; as tini -w does", async (t) => {
  const tini = peer(t, 'tini')
  // An orphan: started by a shell that exits at once; it exits 3 once that shell is gone (so the
  // shell cannot have reaped it), and the command waits until the init reaped it.
  const orphan = 'while kill -0 \\$1 2>/dev/null; do :; done; exit 3'
  const script = `p=$(sh -c 'sh -c "${orphan}" orphan $$ >/dev/null & echo $!'); echo "orphan $p"; while kill -0 "$p" 2>/dev/null; do :; done`
  for (const [init, named] of [
    [tini, (pid: string) => new RegExp(`Reaped zombie process with pid=${pid}\\b`)],
    [CLI, (pid: string) => new RegExp(`^subreaper: reaped zombie process ${pid}: exited with 3$`, 'm')],
  ] as const) {
    const r = await start(t, init, ['-s', '-w', '--', 'sh', '-c', script]).result
    expectExit(t, r, 0)
    const pid = /^orphan (\d+)$/m.exec(r.stdout)?.[1] ?? 'none'
    t.regex(r.stderr, named(pid), `${init}: ${r.stderr}`)
    const quiet = await start(t, init, ['-s', '--', 'sh', '-c', script]).result
    t.notRegex(quiet.stderr, /[Rr]eaped/, `${init} without -w`)
  }
})

test.serial('-v (both peers), TINI_VERBOSITY and DUMB_INIT_DEBUG: the init says what it does; without them, nothing', async (t) => {
  const run = async (args: string[], env?: Record<string, string>) =>
    (await start(t, CLI, [...args, '--', 'sh', '-c', 'exit 4'], { env }).result).stderr
  t.is(await run([]), '')
  t.is(await run([], { TINI_VERBOSITY: '1' }), '', "TINI_VERBOSITY=1 is tini's default")
  for (const [args, env] of [
    [['-v'], undefined],
    [['--verbose'], undefined],
    [[], { TINI_VERBOSITY: '2' }],
    [[], { DUMB_INIT_DEBUG: '1' }],
  ] as const) {
    const said = await run([...args], env)
    t.regex(
      said,
      /^subreaper: started sh as pid (\d+)\nsubreaper: the command \(pid \1\) ended: exited with 4\n$/,
      `${args.join(' ')} ${JSON.stringify(env)}`,
    )
  }
  // The peers say so too, each in its own words.
  const tini = await start(t, peer(t, 'tini'), ['-s', '-v', '--', 'sh', '-c', 'exit 4']).result
  t.regex(tini.stdout + tini.stderr, /tini/)
  const dumb = await start(t, peer(t, 'dumb-init'), ['-v', '--', 'sh', '-c', 'exit 4']).result
  t.regex(dumb.stderr, /\[dumb-init\]/)
})

test('the shell launcher without a native init says which package and file are missing, where it looked, and what to run (exit 127)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'subreaper-launcher-'))
  try {
    // A package as an install with --omit=optional leaves it: the launcher, no platform package.
    const bin = join(dir, 'node_modules', 'subreaper', 'bin')
    execFileSync('mkdir', ['-p', bin])
    const launcher = join(bin, 'subreaper')
    writeFileSync(launcher, readFileSync(join(projectRoot, 'packages', 'subreaper', 'bin', 'subreaper')))
    chmodSync(launcher, 0o755)
    const missing = spawnSync(launcher, ['--', 'true'], { encoding: 'utf8' })
    t.is(missing.status, 127)
    t.regex(missing.stderr, /optional dependency subreaper-linux-x64-(gnu|musl) of subreaper, which is not in node_modules/)
    t.regex(missing.stderr, /--omit=optional/)
    t.regex(missing.stderr, /npm install/)
    // The platform package is there, without its binary (a tarball packed without it).
    execFileSync('mkdir', [
      '-p',
      join(dir, 'node_modules', 'subreaper-linux-x64-gnu'),
      join(dir, 'node_modules', 'subreaper-linux-x64-musl'),
    ])
    const empty = spawnSync(launcher, ['--', 'true'], { encoding: 'utf8' })
    t.is(empty.status, 127)
    t.regex(empty.stderr, /the platform package subreaper-linux-x64-(gnu|musl) is installed at \S+ but holds no executable 'subreaper'/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
