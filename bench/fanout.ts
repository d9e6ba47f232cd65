// 3. Fan-out: exits delivered to 1, 8 and 64 subscribers, deliveries per second.
//
// Throughput: N ready zombies are made (as in the drain) while this thread is blocked, and the
// thread stays blocked until the engine has recorded all N, so the exits wait in every
// subscriber's queue; then the event loop runs and the clock measures delivery alone: from the
// first turn of the loop to the last callback of the last subscriber (N x S deliveries). The
// baseline is one subscriber re-emitting each exit to S listeners of a plain EventEmitter, the
// fan-out a user would write in JavaScript.
//
// Single exit: one orphan exits on an idle loop; the time from its exit (its own CLOCK_MONOTONIC
// stamp) to the callback of the last of the S subscribers.
import { spawn, spawnSync } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { monitor, reaperStats, setSubreaper, type Exit } from './sr.ts'

import { blockFor, helperPath, intEnv, keepAlive, nowUs, progress, quantile, report, sleep, summarize, until } from './lib.ts'

const N = intEnv('SUBREAPER_BENCH_FANOUT_N', 2000)
const ROUNDS = intEnv('SUBREAPER_BENCH_ROUNDS', 5)
const SINGLE = intEnv('SUBREAPER_BENCH_FANOUT_SINGLE', 30)
const FANOUT = [1, 8, 64]
const helper = helperPath()
const dir = mkdtempSync(join(tmpdir(), 'subreaper-bench-'))

setSubreaper(true)
const release = keepAlive()

function makeZombiesAndWait(): void {
  const before = reaperStats().exitsRecorded
  const r = spawnSync(helper, ['zombies', String(N)], { stdio: 'ignore' })
  if (r.status !== 0) throw new Error(`helper zombies failed: ${r.status}`)
  // Keep the loop blocked until every exit is recorded (+1: the helper's own exit).
  const deadline = Date.now() + 60_000
  while (reaperStats().exitsRecorded < before + N + 1) {
    if (Date.now() > deadline) throw new Error('the engine did not record the exits in time')
    blockFor(1)
  }
  // Let the broadcast thread finish queueing them for every subscriber.
  blockFor(20)
}

/** Native fan-out: S subscribers. Returns deliveries per second. */
async function nativeFanout(s: number): Promise<number> {
  let remaining = s
  let lagged = 0
  const counts = new Array<number>(s).fill(0)
  let end = 0
  const subs = counts.map((_, i) =>
    monitor.subscribe(
      (exit) => {
        if (exit.reapedBy !== 'subreaper') return
        if (++counts[i]! === N && --remaining === 0) end = nowUs()
      },
      { lagTimeout: 30_000, onError: () => lagged++ },
    ),
  )
  makeZombiesAndWait()
  const t0 = nowUs()
  await until(() => end > 0 || lagged > 0, 60_000, 'every subscriber to get every exit')
  for (const sub of subs) sub.unsubscribe()
  if (lagged > 0) throw new Error(`${lagged} subscriber(s) lagged`)
  return (N * s) / ((end - t0) / 1e6)
}

/** Baseline: one subscriber, re-emitted to S EventEmitter listeners. */
async function emitterFanout(s: number): Promise<number> {
  const emitter = new EventEmitter()
  emitter.setMaxListeners(0)
  let remaining = s
  let end = 0
  for (let i = 0; i < s; i++) {
    let count = 0
    emitter.on('exit', (exit: Exit) => {
      if (exit.reapedBy !== 'subreaper') return
      if (++count === N && --remaining === 0) end = nowUs()
    })
  }
  const sub = monitor.subscribe((exit) => emitter.emit('exit', exit), { lagTimeout: 30_000 })
  makeZombiesAndWait()
  const t0 = nowUs()
  await until(() => end > 0, 60_000, 'every listener to get every exit')
  sub.unsubscribe()
  return (N * s) / ((end - t0) / 1e6)
}

/** One orphan exit at a time on an idle loop; stamp-to-last-callback latencies, µs. */
async function singleExit(s: number, count: number): Promise<number[]> {
  const file = join(dir, `single-${s}`)
  let last = new Map<number, { n: number; at: number }>()
  const subs = Array.from({ length: s }, () =>
    monitor.subscribe((exit) => {
      if (exit.reapedBy !== 'subreaper') return
      const e = last.get(exit.pid) ?? { n: 0, at: 0 }
      e.n++
      e.at = nowUs()
      last.set(exit.pid, e)
    }),
  )
  const done: { pid: number; at: number }[] = []
  for (let i = 0; i < count; i++) {
    last = new Map()
    const child = spawn(helper, ['orphan-stamp', file, '5000'], { stdio: 'ignore' })
    await new Promise((resolve) => child.once('exit', resolve))
    await until(() => [...last.values()].some((e) => e.n === s), 5000, 'an orphan exit at every subscriber')
    const [pid, e] = [...last].find(([, exit]) => exit.n === s)!
    done.push({ pid, at: e.at })
    await sleep(3)
  }
  for (const sub of subs) sub.unsubscribe()
  const stamps = new Map<number, number>()
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [pid, ns] = line.split(' ')
    if (pid && ns) stamps.set(Number(pid), Number(BigInt(ns)) / 1000)
  }
  return done.filter((d) => stamps.has(d.pid)).map((d) => d.at - stamps.get(d.pid)!)
}

const native: Record<number, number[]> = {}
const emitter: Record<number, number[]> = {}
const single: Record<number, number[]> = {}
for (const s of FANOUT) {
  native[s] = []
  emitter[s] = []
  single[s] = []
}

progress(`fan-out: warm-up (${N} exits)`)
await nativeFanout(8)
for (let round = 1; round <= ROUNDS; round++) {
  progress(`fan-out: round ${round}/${ROUNDS}`)
  for (const s of FANOUT) {
    native[s]!.push(await nativeFanout(s))
    if (s > 1) emitter[s]!.push(await emitterFanout(s))
  }
}
progress(`fan-out: single exits (${SINGLE} per subscriber count)`)
for (const s of FANOUT) single[s] = await singleExit(s, SINGLE)

rmSync(dir, { recursive: true, force: true })
release()
report({
  n: N,
  rounds: ROUNDS,
  deliveriesPerSecond: Object.fromEntries(FANOUT.map((s) => [s, summarize(native[s]!)])),
  emitterDeliveriesPerSecond: Object.fromEntries(FANOUT.filter((s) => s > 1).map((s) => [s, summarize(emitter[s]!)])),
  singleExitUs: Object.fromEntries(
    FANOUT.map((s) => [s, { p50: quantile(single[s]!, 0.5), p99: quantile(single[s]!, 0.99), samples: single[s]!.length }]),
  ),
})
