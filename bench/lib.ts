// Shared pieces of the benchmark sections: statistics, the helper binary, /proc readers, and the
// way a section hands its result to the runner (one `RESULT <json>` line on stdout).
import { readdirSync, readFileSync } from 'node:fs'

import { readStat } from '../__test__/proc-stat.mjs'

/** The compiled bench/helper.c (the runner passes its path). */
export function helperPath(): string {
  const path = process.env.SUBREAPER_BENCH_HELPER
  if (!path) throw new Error('SUBREAPER_BENCH_HELPER is not set: run the sections through `npm run bench`')
  return path
}

/** containerd's reaper baseline (bench/containerd), when the runner could build it. */
export function containerdPath(): string | undefined {
  return process.env.SUBREAPER_BENCH_CONTAINERD || undefined
}

/** A child's exit stamps (`helper stamp`): CLOCK_MONOTONIC and CLOCK_REALTIME, µs. */
export interface Stamp {
  mono: number
  real: number
}

const nsToUs = (ns: string) => Number(BigInt(ns) / 1000n) + Number(BigInt(ns) % 1000n) / 1000

/** The stamps appended to `file` by `helper stamp`, by pid. */
export function readStamps(file: string): Map<number, Stamp> {
  const stamps = new Map<number, Stamp>()
  let text = ''
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return stamps
  }
  for (const line of text.split('\n')) {
    const [pid, mono, real] = line.split(' ')
    if (pid && mono && real) stamps.set(Number(pid), { mono: nsToUs(mono), real: nsToUs(real) })
  }
  return stamps
}

/** An integer from the environment, at least `min` (1 unless given: 0 where 0 turns a row off). */
export function intEnv(name: string, fallback: number, min = 1): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer of at least ${min}; got ${raw}`)
  return n
}

/** Median and spread of a set of per-round values. */
export interface Summary {
  median: number
  min: number
  max: number
  /** The per-round values, in run order. */
  rounds: number[]
}

export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const pos = (sorted.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo)
}

export function summarize(rounds: readonly number[]): Summary {
  return {
    median: quantile(rounds, 0.5),
    min: Math.min(...rounds),
    max: Math.max(...rounds),
    rounds: [...rounds],
  }
}

/** Monotonic time in microseconds (CLOCK_MONOTONIC on Linux: libuv's uv_hrtime). */
export function nowUs(): number {
  return Number(process.hrtime.bigint()) / 1000
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Holds the event loop open until released. Subscriptions of subreaper do not keep the loop
 * alive (by design), so a section awaiting exits must.
 */
export function keepAlive(): () => void {
  const timer = setInterval(() => {}, 1000)
  return () => clearInterval(timer)
}

/** Resolves when `done()` is true, checked every `everyMs`; rejects after `timeoutMs`. */
export async function until(done: () => boolean, timeoutMs: number, what: string, everyMs = 1): Promise<void> {
  const start = Date.now()
  while (!done()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

/** Blocks this thread (no event loop turns) for `ms`. */
export function blockFor(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

export interface ThreadCounters {
  tid: number
  comm: string
  voluntary: number
  nonvoluntary: number
  /** CPU time on the thread, ns (from schedstat; 0 when the kernel does not keep it). */
  cpuNs: number
  /** utime + stime, clock ticks. */
  ticks: number
}

/** Counters of every thread of this process. */
export function threadCounters(): ThreadCounters[] {
  const out: ThreadCounters[] = []
  for (const name of readdirSync('/proc/self/task')) {
    const dir = `/proc/self/task/${name}`
    try {
      const comm = readFileSync(`${dir}/comm`, 'utf8').trim()
      const status = readFileSync(`${dir}/status`, 'utf8')
      const field = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN)
      const stat = readStat('self', name)
      if (!stat) continue
      const cpuNs = schedstat(Number(name)).runNs
      out.push({
        tid: Number(name),
        comm,
        voluntary: field('voluntary_ctxt_switches'),
        nonvoluntary: field('nonvoluntary_ctxt_switches'),
        cpuNs,
        ticks: stat.utime + stat.stime,
      })
    } catch {
      // the thread ended while we read it
    }
  }
  return out
}

/** A thread's time on a CPU and waiting for one (runnable), ns; 0 when the kernel keeps no schedstat. */
export function schedstat(tid: number): { runNs: number; waitNs: number } {
  try {
    const [run, wait] = readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')
    return { runNs: Number(run), waitNs: Number(wait) }
  } catch {
    return { runNs: 0, waitNs: 0 }
  }
}

/** The engine's threads: "subreaper" and "subreaper-broadcast" (comm is cut to 15 characters). */
export function engineThreads(): { reaper?: ThreadCounters; broadcast?: ThreadCounters } {
  const all = threadCounters()
  return {
    reaper: all.find((t) => t.comm === 'subreaper'),
    broadcast: all.find((t) => t.comm.startsWith('subreaper-b')),
  }
}

export function rssBytes(): number {
  const status = readFileSync('/proc/self/status', 'utf8')
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN) * 1024
}

/** Prints a section's result for the runner. */
export function report(result: unknown): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`)
}

/** Progress for whoever watches the run (stderr, so it never mixes with the result). */
export function progress(message: string): void {
  if (process.env.SUBREAPER_BENCH_QUIET !== '1') process.stderr.write(`  ${message}\n`)
}
