// Bad input, generated (fast-check): the options of monitor.start, monitor.wait and
// monitor.subscribe, and the CLI's arguments. Every call ends in a result or a typed error —
// never a crash, a hang, or a lost exit. Runs are bounded (numRuns below, a guard timer on every
// call); a failure prints fast-check's seed and shrunk counterexample.
//
// Tests run one at a time: the subscription checks count exact numbers of exits.
import test from 'ava'
import { ChildProcess, execFileSync, spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import fc from 'fast-check'
import {
  AbortError,
  monitor,
  NotAChildError,
  reaperStats,
  SubscriptionLaggedError,
  WaitTimeoutError,
  type Exit,
  type IterableSubscription,
  type Subscription,
} from 'subreaper'

import { cliPath, fixture, openFds, sleep, until } from './helpers.ts'
import { delivered, idOf, noLiveChildren, noZombies, Recorder } from './procs.ts'
import { buildHelper, fdTargets, type Helper, runFixture } from './fixtures/reliability-lib.ts'
import { describeProcess, isExitOf, type ProcessId } from './fixtures/process-identity.mjs'

const rec = new Recorder()
let helper: Helper
let fdsBefore = 0
const tried: Record<string, { runs: number; results: number; typedErrors: number }> = {}
/** Every child started here (pid and start time): each must reach the subscriber exactly once. */
const started: ProcessId[] = []

test.before(() => {
  helper = buildHelper()
  fdsBefore = openFds()
})

// Which test opened an fd that stayed open (for the final check's message).
const fdHistory: string[] = []
const fdGrowth: string[] = []
test.afterEach.always((t) => {
  fdHistory.push(`${t.title.slice(0, 40)}: ${openFds()}`)
})

test.after.always(
  'nothing lost, nothing left: every child started here seen exactly once; no zombie, stray process, fd or pending wait',
  async (t) => {
    await rec.waitFor(started, 30_000)
    t.true(await delivered(rec), 'every exit recorded so far has been delivered')
    // Pids are recycled over a long file: each process is named by its pid and start time.
    const wrong = started.filter((id) => rec.of(id).length !== 1).map((id) => ({ process: describeProcess(id), seen: rec.of(id) }))
    t.deepEqual(wrong, [], 'each child started here seen exactly once')
    rec.unsubscribe()
    helper?.remove()
    t.deepEqual(await noZombies(), [])
    t.deepEqual(await noLiveChildren(), [])
    t.deepEqual(rec.errors, [])
    t.true(await until(() => reaperStats().pendingWaits === 0 && reaperStats().owned === 0, 10_000), JSON.stringify(reaperStats()))
    t.true(await until(() => reaperStats().subscribers === 0, 10_000), JSON.stringify(reaperStats()))
    t.true(
      await until(() => openFds() <= fdsBefore, 5000),
      `fds ${fdsBefore} -> ${openFds()} (after each test: ${fdHistory.join('; ')}; grew: ${fdGrowth.join('; ')}): ${fdTargets().join(', ')}`,
    )
    t.log(`bad inputs tried: ${JSON.stringify(tried)}; ${started.length} children started, each seen once`)
  },
)

function count(name: string, outcome: 'result' | 'typed'): void {
  const c = (tried[name] ??= { runs: 0, results: 0, typedErrors: 0 })
  c.runs++
  if (outcome === 'result') c.results++
  else c.typedErrors++
}

type Outcome<T> = { value: T } | { error: unknown } | { hang: true }

/** Settles `p` or gives up after `ms` (a hang: the property fails). */
async function guard<T>(p: Promise<T>, ms: number): Promise<Outcome<T>> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<{ hang: true }>((resolve) => (timer = setTimeout(() => resolve({ hang: true }), ms)))
  try {
    return await Promise.race([
      p.then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      ),
      hang,
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A validation error: a TypeError or RangeError with one of Node's ERR_ codes (ours use
 * ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE, ERR_OUT_OF_RANGE; child_process also throws e.g.
 * ERR_UNKNOWN_SIGNAL, ERR_INVALID_SYNC_FORK_INPUT).
 */
function isArgError(err: unknown): boolean {
  return (err instanceof TypeError || err instanceof RangeError) && /^ERR_[A-Z_]+$/.test((err as NodeJS.ErrnoException).code ?? '')
}

/** An error of spawning (ENOENT, EACCES, ...), as child_process gives it. */
function isSpawnError(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException
  return err instanceof Error && /^E[A-Z]+$/.test(e.code ?? '') && (e.syscall ?? '').startsWith('spawn')
}

function describe(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`
  if (typeof v === 'function') return 'function'
  if (typeof v === 'symbol') return v.toString()
  if (v instanceof ChildProcess) return `ChildProcess(${v.pid})`
  try {
    return (
      JSON.stringify(v, (_k, x: unknown) =>
        typeof x === 'symbol' || typeof x === 'function' || typeof x === 'bigint' || (typeof x === 'number' && !Number.isFinite(x))
          ? `<${String(x)}>`
          : x,
      ) ?? String(v)
    )
  } catch {
    return String(v)
  }
}

const junk = fc.constantFrom<unknown>(undefined, null, 0, -1, 1.5, Number.NaN, 'x', '', true, {}, [], 10n, () => 1, Symbol('s'))
// Among spawn arguments, no Symbol: Node's spawn then throws after it created the stdio pipes (and
// started the child), and never closes the pipes: plain Node leaks those fds too. That the child
// is still reaped and reported once has a test of its own below (with stdio 'ignore').
const junkArg = fc.constantFrom<unknown>(undefined, null, 0, -1, 1.5, Number.NaN, 'x', '', true, {}, [], 10n, () => 1)

/** Mostly valid values, sometimes invalid ones: most generated calls get past validation. */
function mostly<T>(valid: fc.Arbitrary<T>, ...invalid: unknown[]): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: fc.constantFrom<unknown>(...invalid) })
}

/** What `ss` says of the unix sockets among `fds` ("fd -> socket:[inode]"): state, queue, peer. */
function peers(fds: string[]): string {
  const inodes = fds.map((f) => /socket:\[(\d+)\]/.exec(f)?.[1]).filter(Boolean) as string[]
  if (inodes.length === 0) return ''
  try {
    const out = execFileSync('ss', ['-xpn'], { encoding: 'utf8' })
    return out
      .split('\n')
      .filter((l) => inodes.some((i) => l.includes(` ${i} `)))
      .map((l) => l.replace(/\s+/g, ' '))
      .join(' | ')
  } catch {
    return ''
  }
}

/** Cleans up after a ChildProcess: ends its stdin, drains its output. */
function release(child: ChildProcess): void {
  child.stdin?.end()
  child.stdout?.resume()
  child.stderr?.resume()
}

// --- monitor.start --------------------------------------------------------------------------

test.serial(
  'monitor.start(command, args, options) with generated arguments: a ChildProcess whose exit is waited and broadcast once, or a typed error',
  async (t) => {
    t.timeout(170_000)
    // Tokens are a fixed pool (with shell: true they become a command line): nothing harmful.
    // No stopping signal, no SIGQUIT (core), no 'inherit' stdin (it would wait for our stdin).
    const token = fc.constantFrom('exit', 'signal', 'sleep', '0', '1', '9', '15', '30', '255', '-c', 'exit 4', 'x', '', ' ', '--', 'a b')
    const command = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.constantFrom(
          helper.path,
          'sh',
          'true',
          'false',
          '/nonexistent/cmd',
          'no-such-command-xyz',
          '',
          '/etc/passwd',
          '/tmp',
        ),
      },
      { weight: 1, arbitrary: junk },
    )
    const args = fc.oneof(
      { weight: 4, arbitrary: fc.array(token, { maxLength: 4 }) },
      { weight: 1, arbitrary: fc.array(fc.oneof(token, junkArg), { maxLength: 3 }) },
      { weight: 1, arbitrary: junkArg },
    )
    const signalKind = fc.constantFrom('aborted', 'later', 'never', 'junk')
    const options = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record(
          {
            cwd: mostly(fc.constantFrom('/', '/tmp', '/nonexistent-dir'), 42, ''),
            env: mostly(fc.constantFrom<unknown>({ PATH: process.env.PATH }, { PATH: '' }, {}), 'junk'),
            shell: mostly(fc.constantFrom<unknown>(false, true, '/bin/sh', '/nonexistent-shell'), 42),
            timeout: mostly(fc.constantFrom(0, 1, 30), -1, 'x', 1.5),
            killSignal: mostly(fc.constantFrom<unknown>('SIGTERM', 'SIGKILL', 9, 'SIGHUP'), 'SIGBOGUS', 1.5),
            detached: mostly(fc.boolean(), 'yes'),
            stdio: mostly(
              fc.constantFrom<unknown>(
                'ignore',
                'pipe',
                ['ignore', 'ignore', 'ignore'],
                ['pipe', 'pipe', 'pipe'],
                ['ignore', 'pipe', 'ignore'],
              ),
              'bogus',
              42,
              ['bogus'],
            ),
            argv0: mostly(fc.constant('renamed'), 42),
            uid: mostly(fc.constantFrom(0, 65534), -1, 1.5),
            signal: signalKind,
          },
          { requiredKeys: [] },
        ),
      },
      { weight: 1, arbitrary: junk },
    )
    const shape = fc.constantFrom('command, args, options', 'command, options', 'command, args', 'command')
    let runs = 0
    await fc.assert(
      fc.asyncProperty(command, args, options, shape, async (cmd, argv, rawOptions, form) => {
        runs++
        const fdsAt = new Set(fdTargets())
        try {
          await startOnce(cmd, argv, rawOptions, form)
        } finally {
          // Which generated call left fds open (for the final check's message).
          const grown = fdTargets().filter((f) => !fdsAt.has(f))
          if (grown.length > 0 && fdGrowth.length < 5) {
            fdGrowth.push(
              `${grown.join(', ')} after start(${describe(cmd)}, ${describe(argv)}, ${describe(rawOptions)}) [${form}] ${peers(grown)}`,
            )
          }
        }
      }),
      { numRuns: 200, endOnFailure: true, includeErrorInReport: true },
    )
    t.log(`monitor.start: ${runs} generated calls, ${JSON.stringify(tried['monitor.start'])}`)
    t.is(runs, 200)

    async function startOnce(cmd: unknown, argv: unknown, rawOptions: unknown, form: string): Promise<void> {
      let opts = rawOptions as Record<string, unknown> | undefined
      let controller: AbortController | undefined
      if (opts && typeof opts === 'object' && 'signal' in opts) {
        const kind = opts.signal
        opts = { ...opts }
        if (kind === 'aborted') opts.signal = AbortSignal.abort()
        else if (kind === 'later' || kind === 'never') {
          controller = new AbortController()
          opts.signal = controller.signal
        } else opts.signal = {}
        if (kind === 'later') setTimeout(() => controller!.abort(), 5)
      }
      let child: ChildProcess
      try {
        const start = monitor.start.bind(monitor) as (...a: unknown[]) => ChildProcess
        child =
          form === 'command, args, options'
            ? start(cmd, argv, opts)
            : form === 'command, options'
              ? start(cmd, opts)
              : form === 'command, args'
                ? start(cmd, argv)
                : start(cmd)
      } catch (err) {
        // Our own checks and Node's give a TypeError/RangeError with an ERR_ code. Node's spawn
        // also throws a plain TypeError for some nonsense it does not check (a Symbol among the
        // args with `shell`): what child_process.spawn itself throws for it is accepted too.
        if (!isArgError(err) && !isSpawnError(err) && !(err instanceof TypeError || err instanceof RangeError)) {
          throw new Error(`start threw an untyped error: ${describe(err)} ${String(err)}`, { cause: err })
        }
        count('monitor.start', 'typed')
        return
      }
      if (child.pid !== undefined) idOf(child) // before the event loop runs (and libuv reaps it)
      const errors: Error[] = []
      child.on('error', (e) => errors.push(e))
      const nodeExit = new Promise<[number | null, string | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])))
      const closed = new Promise<void>((resolve) => child.on('close', () => resolve()))
      release(child)
      const waited = await guard(monitor.wait(child), 30_000)
      if ('hang' in waited) throw new Error(`wait(child) hung: ${describe(cmd)} ${describe(argv)} ${describe(rawOptions)}`)
      if ('hang' in (await guard(closed, 30_000))) throw new Error('the ChildProcess never closed')
      if (child.pid === undefined) {
        if (!('error' in waited) || !isSpawnError(waited.error)) throw new Error(`a failed spawn's wait: ${describe(waited)}`)
        if (errors[0] !== waited.error) throw new Error("wait's error is not the 'error' event's")
        count('monitor.start', 'typed')
        return
      }
      started.push(idOf(child))
      if (!('value' in waited)) throw new Error(`wait(child) of pid ${child.pid} rejected: ${String((waited as { error: unknown }).error)}`)
      const exit = waited.value
      const [code, signal] = await nodeExit
      if (exit.pid !== child.pid || exit.code !== code || exit.signal !== signal) {
        throw new Error(`exit ${describe(exit)} vs Node's exit event ${code} ${signal}`)
      }
      for (const e of errors) if (e.name !== 'AbortError') throw new Error(`unexpected error event: ${String(e)}`)
      count('monitor.start', 'result')
    }
  },
)

// --- monitor.wait --------------------------------------------------------------------------

test.serial(
  'monitor.wait(target, options) with generated targets and options: an Exit of ours, or a typed error, in bounded time; the child is still waitable after',
  async (t) => {
    t.timeout(170_000)
    const target = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.constantFrom(
          'live child',
          'live pid',
          'exited child',
          'exited pid',
          'unspawned',
          'failed spawn',
          'own pid',
          'parent pid',
          'init',
        ),
      },
      { weight: 2, arbitrary: fc.integer({ min: -10, max: 2 ** 31 + 10 }) },
      { weight: 1, arbitrary: fc.double() },
      { weight: 1, arbitrary: junk },
    )
    const options = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record(
          {
            timeout: mostly(
              fc.oneof(fc.integer({ min: 0, max: 60 }), fc.constantFrom(1.5, 60_000, 2 ** 31 - 1)),
              -1,
              Number.NaN,
              Infinity,
              2 ** 31,
              'x',
              null,
            ),
            signal: fc.constantFrom('aborted', 'later', 'never', 'junk'),
          },
          { requiredKeys: [] },
        ),
      },
      { weight: 1, arbitrary: junk },
    )
    let runs = 0
    await fc.assert(
      fc.asyncProperty(target, options, fc.integer({ min: 10, max: 80 }), async (kind, rawOptions, ms) => {
        runs++
        const live = monitor.start(helper.path, ['sleep', String(ms)], { stdio: 'ignore' })
        const exited = monitor.start(helper.path, ['exit', '3'], { stdio: 'ignore' })
        started.push(idOf(live), idOf(exited))
        await monitor.wait(exited)
        const failed = monitor.start('/nonexistent/cmd', [], { stdio: 'ignore' })
        failed.on('error', () => {})
        const values: Record<string, unknown> = {
          'live child': live,
          'live pid': live.pid,
          'exited child': exited,
          'exited pid': exited.pid,
          unspawned: new ChildProcess(),
          'failed spawn': failed,
          'own pid': process.pid,
          'parent pid': process.ppid,
          init: 1,
        }
        const value = typeof kind === 'string' && kind in values ? values[kind] : kind
        let opts = rawOptions as Record<string, unknown> | undefined
        if (opts && typeof opts === 'object' && 'signal' in opts) {
          const s = opts.signal
          opts = {
            ...opts,
            signal:
              s === 'aborted'
                ? AbortSignal.abort()
                : s === 'later'
                  ? AbortSignal.timeout(5)
                  : s === 'never'
                    ? new AbortController().signal
                    : {},
          }
        }
        const outcome = await guard((monitor.wait as (...a: unknown[]) => Promise<Exit>)(value, opts), 20_000)
        if ('hang' in outcome) throw new Error(`wait(${describe(value)}, ${describe(rawOptions)}) hung`)
        if ('value' in outcome) {
          const pid = value instanceof ChildProcess ? value.pid : value
          if (outcome.value.pid !== pid) throw new Error(`wait(${describe(value)}) resolved with pid ${outcome.value.pid}`)
          count('monitor.wait', 'result')
        } else {
          const err = outcome.error
          const typed =
            isArgError(err) ||
            err instanceof NotAChildError ||
            err instanceof AbortError ||
            err instanceof WaitTimeoutError ||
            (kind === 'failed spawn' && isSpawnError(err))
          if (!typed) throw new Error(`wait(${describe(value)}, ${describe(rawOptions)}) rejected with an untyped error: ${String(err)}`)
          count('monitor.wait', 'typed')
        }
        // Whatever happened to that wait, the live child's exit is not lost.
        const after = await guard(monitor.wait(live), 20_000)
        if (!('value' in after) || after.value.status !== 0) throw new Error(`the live child's plain wait: ${describe(after)}`)
      }),
      { numRuns: 150, endOnFailure: true, includeErrorInReport: true },
    )
    t.true(await until(() => reaperStats().pendingWaits === 0, 10_000), `pending waits left: ${reaperStats().pendingWaits}`)
    t.log(`monitor.wait: ${runs} generated calls, ${JSON.stringify(tried['monitor.wait'])}`)
    t.is(runs, 150)
  },
)

// --- monitor.subscribe ----------------------------------------------------------------------

test.serial(
  'monitor.subscribe(callbackOrOptions, options) with generated options: a subscription that gets every exit in reap order, or lags with a SubscriptionLaggedError (missed >= 1, never more than it was sent), or a typed error',
  async (t) => {
    t.timeout(170_000)
    const optionRecord = fc.record(
      {
        // Small buffers and overflows mostly, so that unread iterators lag.
        bufferSize: mostly(
          fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 3 }) }, { weight: 1, arbitrary: fc.constantFrom(8, 64, 2 ** 20) }),
          0,
          -1,
          1.5,
          2 ** 20 + 1,
          'x',
          Number.NaN,
        ),
        lagTimeout: mostly(fc.oneof(fc.integer({ min: 0, max: 30 }), fc.constantFrom(1000, 2.5)), -1, Number.NaN, Infinity, 'x'),
        maxOverflow: mostly(
          fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 2 }) }, { weight: 1, arbitrary: fc.constantFrom(8, 1000) }),
          -1,
          2 ** 24 + 1,
          'x',
          1.5,
        ),
        onError: mostly(fc.constantFrom<unknown>('fn', undefined), 'x'),
      },
      { requiredKeys: [] },
    )
    const first = fc.oneof(
      { weight: 3, arbitrary: fc.constant<unknown>('callback') },
      { weight: 3, arbitrary: optionRecord },
      { weight: 1, arbitrary: junk },
    )
    const second = fc.oneof(
      { weight: 3, arbitrary: optionRecord },
      { weight: 1, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: junk },
    )
    const warnings: Error[] = []
    const onWarning = (w: Error) => {
      if (w instanceof SubscriptionLaggedError) warnings.push(w)
    }
    process.on('warning', onWarning)
    let runs = 0
    let lags = 0
    try {
      await fc.assert(
        fc.asyncProperty(first, second, fc.integer({ min: 1, max: 8 }), async (a, b, k) => {
          runs++
          const got: number[] = []
          let lagged: SubscriptionLaggedError | undefined
          const fixOnError = (o: unknown) => {
            if (!o || typeof o !== 'object' || !('onError' in o)) return o
            const v = (o as { onError: unknown }).onError
            return { ...o, onError: v === 'fn' ? (e: SubscriptionLaggedError) => (lagged = e) : v }
          }
          // A function as the first argument (the generated callback, or a junk function) is the callback form.
          const callbackForm = a === 'callback' || typeof a === 'function'
          // This run's children; an exit of another process recorded meanwhile (one held for a
          // grace, say) is the subscription's too, but not this run's to compare.
          const ids: ProcessId[] = []
          const mine = (e: Exit) => ids.some((id) => isExitOf(e, id))
          const firstArg = callbackForm ? (e: Exit) => mine(e) && got.push(e.pid) : fixOnError(a)
          const secondArg = fixOnError(b)
          const warningsBefore = warnings.length
          let sub: Subscription
          try {
            sub = (monitor.subscribe as (...x: unknown[]) => Subscription)(firstArg, secondArg)
          } catch (err) {
            if (!isArgError(err)) throw new Error(`subscribe threw an untyped error: ${String(err)}`, { cause: err })
            count('monitor.subscribe', 'typed')
            return
          }
          try {
            const pids: number[] = []
            for (let i = 0; i < k; i++) {
              const child = monitor.start(helper.path, ['exit', String(i)], { stdio: 'ignore' })
              pids.push(child.pid!)
              ids.push(idOf(child))
              started.push(idOf(child))
            }
            await Promise.all(pids.map((p) => monitor.wait(p)))
            let missed = 0
            if (callbackForm) {
              await until(() => got.length >= k || sub.closed, 10_000, 2)
              await sleep(20)
              if (sub.closed) {
                const err = lagged ?? (warnings.length > warningsBefore ? (warnings.at(-1) as SubscriptionLaggedError) : undefined)
                if (!(err instanceof SubscriptionLaggedError)) throw new Error('a callback subscription closed without a lagged error')
                missed = err.missed
              }
            } else {
              for (;;) {
                const r = await guard((sub as IterableSubscription).next(), 10_000)
                if ('hang' in r) {
                  if (got.length === k) break // everything read; the next one would wait for a new exit
                  throw new Error(`iterator: next() hung after ${got.length} of ${k}`)
                }
                if ('error' in r) {
                  if (!(r.error instanceof SubscriptionLaggedError)) throw new Error(`iterator rejected with ${String(r.error)}`)
                  missed = r.error.missed
                  break
                }
                if (r.value.done) throw new Error(`iterator ended after ${got.length} of ${k}`)
                if (!mine(r.value.value)) continue
                got.push(r.value.value.pid)
                if (got.length === k) break
              }
            }
            // What it got: the first exits, in order, once each. Lagged: it missed at least one,
            // and the exits it got and missed are those offered to it until it was closed (the
            // exits after that are no longer its own), so they add up to at most all of them.
            // A buffer that holds them all never lags.
            // Reap order (every subscriber sees the same): as the file's recorder saw them.
            await rec.waitFor(ids, 10_000)
            const order = rec.exits.filter((e) => ids.some((id) => isExitOf(e, id))).map((e) => e.pid)
            const want = order.slice(0, got.length)
            if (JSON.stringify(got) !== JSON.stringify(want))
              throw new Error(`got ${describe(got)}, expected a prefix of ${describe(order)}`)
            const used = (callbackForm ? secondArg : (firstArg ?? secondArg)) as { bufferSize?: number } | undefined
            const bufferSize = used?.bufferSize ?? 32
            if (missed === 0 && got.length !== k) throw new Error(`got ${got.length} of ${k} without a lagged error`)
            if (missed > 0 && got.length + missed > k) throw new Error(`got ${got.length} + missed ${missed} > ${k}`)
            if (missed > 0 && bufferSize >= k) throw new Error(`lagged with a buffer of ${bufferSize} for ${k} exits`)
            if (missed > 0) lags++
            count('monitor.subscribe', 'result')
          } finally {
            sub.unsubscribe()
          }
          if (!sub.closed) throw new Error('not closed after unsubscribe')
        }),
        { numRuns: 150, endOnFailure: true, includeErrorInReport: true },
      )
    } finally {
      process.off('warning', onWarning)
    }
    t.true(await until(() => reaperStats().subscribers === 1, 10_000), `subscribers left: ${reaperStats().subscribers}`)
    t.log(
      `monitor.subscribe: ${runs} generated calls, ${JSON.stringify(tried['monitor.subscribe'])}, ${lags} lagged (${warnings.length} as process warnings)`,
    )
    t.is(runs, 150)
  },
)

// --- the CLI ---------------------------------------------------------------------------------

interface CliRun {
  argv: string[]
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  hung: boolean
}

function runCli(argv: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    // In the temporary directory: a report file named by a relative path lands there.
    const child = spawn(cliPath, argv, { cwd: helper.dir, stdio: ['ignore', 'pipe', 'pipe'] })
    started.push(idOf(child))
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    let hung = false
    const timer = setTimeout(() => {
      hung = true
      child.kill('SIGKILL')
    }, 30_000)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ argv, code, signal, stdout, stderr, hung })
    })
  })
}

/** Processes still running the helper (a leftover the CLI did not clean up). */
function helperProcesses(): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').startsWith(helper.path + '\0')) out.push(Number(name))
    } catch {
      // gone
    }
  }
  return out
}

test.serial(
  'the CLI with generated arguments: a usage error (exit 2, with a message), help/version (0), or it runs the command and exits with its status; never a crash or a hang',
  async (t) => {
    t.timeout(170_000)
    const reportPath = join(helper.dir, 'report.json')
    // Option words, alone or with the value they take. `--report-file` only ever takes the
    // temporary report path: followed by a command word it would write its report there.
    const option = fc.constantFrom<string[]>(
      ['-g'],
      ['--group'],
      ['-w'],
      ['--wait-leftovers'],
      ['--grace'],
      ['--grace', '250ms'],
      ['--grace', 'abc'],
      ['--grace=0'],
      ['--grace=250ms'],
      ['--grace=1.5s'],
      ['--grace=2m'],
      ['--grace=abc'],
      ['--grace=-1'],
      ['--grace=99999999999'],
      ['--grace='],
      ['500ms'],
      ['--report'],
      ['--report=json'],
      ['--report=table'],
      ['--report=xml'],
      ['--report-file', reportPath],
      [`--report-file=${reportPath}`],
      ['--report-file=/nonexistent-dir/report.json'],
      ['-h'],
      ['--help'],
      ['-V'],
      ['--version'],
      ['--bogus'],
      ['-x'],
      ['-'],
      ['--'],
      [''],
    )
    // Each command with the status the CLI must exit with when it runs it.
    const commands: Array<[string[], number]> = [
      [['true'], 0],
      [['false'], 1],
      [['sh', '-c', 'exit 5'], 5],
      [[helper.path, 'exit', '7'], 7],
      [[helper.path, 'signal', '15'], 143],
      [['/nonexistent/cmd'], 127],
      [['/etc/passwd'], 126],
      [['sh', '-c', 'kill -TERM $$'], 143],
      [[helper.path, 'sleep', '50'], 0],
      [['sh', '-c', `${helper.path} sleep 300 & exit 3`], 3], // a leftover
    ]
    const argvArb = fc.tuple(
      fc.array(option, { maxLength: 4 }).map((groups) => groups.flat()),
      fc.option(fc.integer({ min: 0, max: commands.length - 1 }), { nil: undefined }),
    )
    let runs = 0
    const outcomes = { usage: 0, info: 0, ran: 0 }
    await fc.assert(
      // Three command lines at once per run.
      fc.asyncProperty(fc.array(argvArb, { minLength: 1, maxLength: 3 }), async (batch) => {
        const runsOf = await Promise.all(
          batch.map(([opts, which]) => {
            const argv = which === undefined ? opts : [...opts, ...commands[which]![0]]
            return runCli(argv).then((r) => ({ r, status: which === undefined ? undefined : commands[which]![1] }))
          }),
        )
        for (const { r, status } of runsOf) {
          runs++
          const what = `subreaper ${describe(r.argv)}: code ${r.code} signal ${r.signal}\n${r.stderr}`
          if (r.hung) throw new Error(`hung: ${what}`)
          if (r.signal !== null) throw new Error(`died of a signal: ${what}`)
          if (/\n\s+at .+:\d+:\d+\)?\n/.test(r.stderr)) throw new Error(`printed a stack trace: ${what}`)
          if (r.code === 2 && r.stderr.startsWith('subreaper: ') && r.stderr.includes('Usage:')) outcomes.usage++
          else if (r.code === 0 && (r.stdout.includes('Usage:') || /^\d+\.\d+\.\d+/.test(r.stdout))) outcomes.info++
          else if (status !== undefined && r.code === status) outcomes.ran++
          // A word taken as the command ('-', '500ms', or the command's own first word after a bare --grace):
          // run, and reported as not found or not runnable.
          else if (r.code === 127 && /^subreaper: .*: command not found\n$/.test(r.stderr)) outcomes.ran++
          else if (r.code === 126 && /^subreaper: .*: cannot run/.test(r.stderr)) outcomes.ran++
          else throw new Error(`neither a usage error, help/version, nor the command's status (${status}): ${what}`)
        }
        // The CLI cleaned up after its command: no helper process is left running.
        if (!(await until(() => helperProcesses().length === 0, 10_000))) throw new Error(`left running: ${helperProcesses()}`)
      }),
      { numRuns: 50, endOnFailure: true, includeErrorInReport: true },
    )
    tried.cli = { runs, results: outcomes.ran + outcomes.info, typedErrors: outcomes.usage }
    t.log(
      `CLI: ${runs} generated command lines: ${outcomes.usage} usage errors (exit 2), ${outcomes.info} help/version, ${outcomes.ran} ran with the command's status`,
    )
    t.true(outcomes.usage > 0 && outcomes.ran > 0)
  },
)

// Found by the generated runs above and fixed since: each keeps a test of its own.

test.serial(
  '--report-file to a path that cannot be written: the command still runs and the CLI exits with its status, saying why there is no report',
  async (t) => {
    const r = await runCli(['--report-file=/nonexistent-dir/report.json', '--', 'sh', '-c', 'exit 5'])
    t.false(r.hung)
    t.is(r.signal, null)
    t.false(/\n\s+at .+:\d+:\d+\)?\n/.test(r.stderr), r.stderr)
    t.is(r.code, 5, r.stderr)
    t.regex(r.stderr, /^subreaper: cannot write the report to \/nonexistent-dir\/report\.json/m)
  },
)

test.serial(
  'iterating a callback subscription fails at once with a TypeError (it is not async iterable), instead of waiting forever',
  async (t) => {
    const got: number[] = []
    const sub = monitor.subscribe((e) => got.push(e.pid))
    try {
      const child = monitor.start(helper.path, ['exit', '0'], { stdio: 'ignore' })
      started.push(idOf(child))
      await monitor.wait(child)
      await until(() => got.length === 1, 10_000)
      const iterate = async () => {
        for await (const _ of sub as unknown as AsyncIterable<Exit>) break
      }
      const r = await guard(iterate(), 10_000)
      t.false('hang' in r, 'iterating a callback subscription settles')
      t.true('error' in r && (r as { error: unknown }).error instanceof TypeError, describe(r))
      t.deepEqual(got.length, 1, 'the callback still got its exit')
    } finally {
      sub.unsubscribe()
    }
  },
)

test.serial(
  "a spawn that throws after it started its child (a Symbol among the args): the child stays libuv's, its exit event fires, subscribers get it once, and the process ends by itself",
  async (t) => {
    const run = await runFixture(fixture('reliability-symbol-arg.cjs'), [helper.path], { timeout: 30_000 })
    t.false(run.timedOut, 'the process ended by itself (before the fix it was held forever)')
    t.is(run.code, 0, run.stderr)
    const r = run.messages.at(-1) as {
      thrown: { name: string } | null
      pid: number | null
      exits: unknown[]
      seen: number[]
      stats: { owned: number }
    }
    // Up to Node 22 the native spawn converts the arguments after starting the child and
    // throws; from Node 24 on it passes a Symbol's description and throws nothing. Whichever
    // this Node does without subreaper, it must do with it.
    const plain = execFileSync(
      process.execPath,
      [
        '-e',
        "try { require('child_process').spawn('true', [Symbol('x')], { stdio: 'ignore' }); console.log('') } catch (e) { console.log(e.name) }",
      ],
      { encoding: 'utf8' },
    ).trim()
    t.is(r.thrown?.name ?? '', plain, 'spawn threw, or did not, as Node does')
    t.true(typeof r.pid === 'number', 'yet a child was started')
    t.deepEqual(r.exits, [[0, null]], "its 'exit' event fired once")
    t.deepEqual(r.seen, [r.pid], 'its exit was broadcast once')
    t.is(r.stats.owned, 0)
  },
)
