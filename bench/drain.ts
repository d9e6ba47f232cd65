// 1. Drain throughput: N ready zombies reaped by the engine and delivered to 0, 1 and 8 JavaScript
// subscribers, against a bare wait4(-1) loop draining the same N zombies in a C process (and
// against the engine's own syscalls, with and without its /proc inspection, to show what limits
// it), against a C loop doing the engine's work (peek, one read of /proc/<pid>/stat, wait4; and
// peek, one taskstats request, wait4, the engine's way where the kernel serves taskstats), and
// against containerd's reaper (v1.4.13 and v2.4.2, bench/containerd) to 1 and 8 subscribers,
// when the runner could build it. All variants run interleaved in each round. Then the drain to 1
// subscriber again, and containerd's, beside LIVE live children (`sleep`, 1,000 by default), as
// a supervisor has them: every wait for "any child" walks them too.
//
// How the zombies are made: the helper vforks N children that _exit(0) at once, then exits; its
// N zombies are re-parented to this process (a subreaper). The clock of EVERY row (the C loops,
// containerd, the engine) starts at the helper's own CLOCK_MONOTONIC stamp, taken once all N are
// zombies, just before its exit (`helper zombies N stamp` prints it); the measuring side reads
// CLOCK_MONOTONIC at the end (process.hrtime.bigint() is libuv's uv_hrtime, CLOCK_MONOTONIC on
// Linux). Up to issue 34 the engine's t0 was when spawnSync of the helper returned, after the
// zombies were re-parented and the engine had begun on them: that clock is kept, labelled
// `...LateClock`, for comparison with older figures only.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'

import { monitor, reaperStats, setSubreaper, type Exit } from './sr.ts'

import {
  containerdPath,
  engineThreads,
  helperPath,
  intEnv,
  keepAlive,
  nowUs,
  progress,
  report,
  schedstat,
  summarize,
  until,
} from './lib.ts'

const N = intEnv('SUBREAPER_BENCH_DRAIN_N', 10_000)
const ROUNDS = intEnv('SUBREAPER_BENCH_ROUNDS', 5)
const LIVE = intEnv('SUBREAPER_BENCH_DRAIN_LIVE', 1000, 0)
const helper = helperPath()

setSubreaper(true)

interface CRun {
  usPerExit: number
  spawnUsPerChild: number
}

const containerd = containerdPath()

/** containerd's reaper (`bench/containerd`) draining N zombies to `subscribers` channels. */
function containerdDrain(version: '1' | '2', subscribers: number, live = 0): number {
  const out = execFileSync(containerd!, ['drain', version, String(N), String(subscribers), helper, String(live)], { encoding: 'utf8' })
  const r = JSON.parse(out) as { usPerExit: number; loopUsPerExit?: number }
  if (r.loopUsPerExit === undefined) throw new Error('bench/containerd is older than the helper-stamp clock: rebuild it')
  return r.usPerExit
}

/** A C loop's drain, or null for `taskstats` where the kernel does not serve it (exit 3). */
function cDrainIfServed(mode: 'taskstats'): CRun | null {
  const r = spawnSync(helper, ['drain', String(N), mode], { encoding: 'utf8' })
  if (r.status === 3) return null
  if (r.status !== 0) throw new Error(`bare ${mode} drain failed: ${r.status} ${r.signal} ${r.stderr}`)
  return JSON.parse(r.stdout) as CRun
}

function cDrain(mode: 'wait4' | 'peek' | 'proc' | 'stat1'): CRun {
  const out = execFileSync(helper, ['drain', String(N), mode], { encoding: 'utf8' })
  const r = JSON.parse(out) as { reaped: number; usPerExit: number; spawnUsPerChild: number }
  if (r.reaped !== N) throw new Error(`bare ${mode} drain reaped ${r.reaped} of ${N}`)
  return r
}

/**
 * Makes N ready zombies of this process; returns the helper's CLOCK_MONOTONIC stamp just before
 * its exit (µs, the drain's t0) and when spawnSync returned (µs, the late clock up to issue 34).
 */
function makeZombies(): { stampUs: number; returnedUs: number } {
  const r = spawnSync(helper, ['zombies', String(N), 'stamp'], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' })
  const returnedUs = nowUs()
  if (r.status !== 0) throw new Error(`helper zombies failed: ${r.status} ${r.signal} ${r.error}`)
  const ns = BigInt(r.stdout.trim())
  return { stampUs: Number(ns) / 1000, returnedUs }
}

interface EngineRun {
  /** The helper's stamp to the last callback of the last subscriber (or to the last exit recorded), per exit. */
  usPerExit: number
  /** The same from when spawnSync of the helper returned (the clock up to issue 34: late). */
  lateClockUsPerExit: number
  /** First to last engine timestamp, per exit: the reaper thread alone. */
  reaperUsPerExit?: number
  /** The reaper thread from t0 to the end: on a CPU, and runnable but waiting for one, ms. */
  reaperRunMs?: number
  reaperWaitMs?: number
}

async function engineDrain(subscribers: number): Promise<EngineRun> {
  const release = keepAlive()
  try {
    const counts = new Array<number>(subscribers).fill(0)
    const doneAt = new Array<number>(subscribers).fill(0)
    let first: Exit | undefined
    let last: Exit | undefined
    let lagged = 0
    const subs = counts.map((_, i) =>
      monitor.subscribe(
        (exit) => {
          if (exit.reapedBy !== 'subreaper') return
          if (i === 0) {
            first ??= exit
            last = exit
          }
          if (++counts[i]! === N) doneAt[i] = nowUs()
        },
        { lagTimeout: 10_000, onError: () => lagged++ },
      ),
    )
    const before = reaperStats().exitsRecorded
    const reaperTid = engineThreads().reaper?.tid
    const made = makeZombies()
    const t0 = made.stampUs
    const sched0 = reaperTid === undefined ? undefined : schedstat(reaperTid)
    let end: number
    if (subscribers === 0) {
      // +1: the helper's own exit, announced when spawnSync returns.
      await until(() => reaperStats().exitsRecorded >= before + N + 1, 60_000, 'the engine to record the exits')
      end = nowUs()
    } else {
      await until(() => doneAt.every((t) => t > 0) || lagged > 0, 60_000, 'every subscriber to get every exit')
      if (lagged > 0) throw new Error(`${lagged} subscriber(s) lagged during the drain`)
      end = Math.max(...doneAt)
    }
    const sched1 = reaperTid === undefined ? undefined : schedstat(reaperTid)
    for (const s of subs) s.unsubscribe()
    const run: EngineRun = { usPerExit: (end - t0) / N, lateClockUsPerExit: (end - made.returnedUs) / N }
    if (sched0 && sched1 && sched1.runNs > 0) {
      run.reaperRunMs = (sched1.runNs - sched0.runNs) / 1e6
      run.reaperWaitMs = (sched1.waitNs - sched0.waitNs) / 1e6
    }
    if (first && last) run.reaperUsPerExit = ((last.timestamp - first.timestamp) * 1000) / (N - 1)
    return run
  } finally {
    release()
  }
}

/** `n` children that live until `stop()` is awaited (which kills them and waits for their exits). */
async function liveChildren(n: number): Promise<{ stop: () => Promise<void> }> {
  const children: ChildProcess[] = []
  for (let i = 0; i < n; i++) children.push(spawn('sleep', ['600'], { stdio: 'ignore' }))
  await Promise.all(children.map((c) => new Promise((resolve, reject) => c.once('spawn', resolve).once('error', reject))))
  return {
    stop: async () => {
      const exited = children.map((c) => new Promise((resolve) => c.once('exit', resolve)))
      for (const c of children) c.kill()
      await Promise.all(exited)
    },
  }
}

const rows = {
  bareWait4: [] as number[],
  peekWait4: [] as number[],
  peekProcWait4: [] as number[],
  peekStatWait4: [] as number[],
  peekTaskstatsWait4: [] as number[],
  containerd1x1: [] as number[],
  containerd1x8: [] as number[],
  containerd2x1: [] as number[],
  containerd2x8: [] as number[],
  engine0: [] as number[],
  engine1: [] as number[],
  engine8: [] as number[],
  engine1LateClock: [] as number[],
  engine8LateClock: [] as number[],
  reaper1: [] as number[],
  reaper8: [] as number[],
  engine1Live: [] as number[],
  containerd1x1Live: [] as number[],
  containerd2x1Live: [] as number[],
}
const spawnUs: number[] = []
/** The reaper thread in each drain to 1 subscriber: on a CPU, and waiting for one, ms. */
const reaperThread1 = { runMs: [] as number[], waitMs: [] as number[] }

// Warm-up: the first drain of a fresh process pays for page faults and JIT.
progress(`drain: warm-up (${N} zombies)`)
cDrain('wait4')
await engineDrain(1)

for (let round = 1; round <= ROUNDS; round++) {
  progress(`drain: round ${round}/${ROUNDS}`)
  const bare = cDrain('wait4')
  rows.bareWait4.push(bare.usPerExit)
  spawnUs.push(bare.spawnUsPerChild)
  rows.peekWait4.push(cDrain('peek').usPerExit)
  rows.peekProcWait4.push(cDrain('proc').usPerExit)
  rows.peekStatWait4.push(cDrain('stat1').usPerExit)
  const taskstats = cDrainIfServed('taskstats')
  if (taskstats) rows.peekTaskstatsWait4.push(taskstats.usPerExit)
  if (containerd) {
    rows.containerd1x1.push(containerdDrain('1', 1))
    rows.containerd1x8.push(containerdDrain('1', 8))
    rows.containerd2x1.push(containerdDrain('2', 1))
    rows.containerd2x8.push(containerdDrain('2', 8))
  }
  rows.engine0.push((await engineDrain(0)).usPerExit)
  const one = await engineDrain(1)
  rows.engine1.push(one.usPerExit)
  rows.engine1LateClock.push(one.lateClockUsPerExit)
  if (one.reaperUsPerExit !== undefined) rows.reaper1.push(one.reaperUsPerExit)
  if (one.reaperRunMs !== undefined && one.reaperWaitMs !== undefined) {
    reaperThread1.runMs.push(one.reaperRunMs)
    reaperThread1.waitMs.push(one.reaperWaitMs)
  }
  const eight = await engineDrain(8)
  rows.engine8.push(eight.usPerExit)
  rows.engine8LateClock.push(eight.lateClockUsPerExit)
  if (eight.reaperUsPerExit !== undefined) rows.reaper8.push(eight.reaperUsPerExit)
  if (LIVE > 0) {
    if (containerd) {
      rows.containerd1x1Live.push(containerdDrain('1', 1, LIVE))
      rows.containerd2x1Live.push(containerdDrain('2', 1, LIVE))
    }
    const live = await liveChildren(LIVE)
    try {
      rows.engine1Live.push((await engineDrain(1)).usPerExit)
    } finally {
      await live.stop()
    }
  }
}

report({
  n: N,
  live: LIVE,
  rounds: ROUNDS,
  usPerExit: Object.fromEntries(
    Object.entries(rows)
      .filter(([, v]) => v.length > 0)
      .map(([k, v]) => [k, summarize(v)]),
  ),
  /** How fast the helper made the zombies (vfork), µs per child: not part of any drain. */
  helperSpawnUsPerChild: summarize(spawnUs),
  ...(reaperThread1.runMs.length > 0
    ? { reaperThread1: { runMs: summarize(reaperThread1.runMs), waitMs: summarize(reaperThread1.waitMs) } }
    : {}),
})
