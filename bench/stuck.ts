// 7. A subscriber that never reads, next to one that does: N = 64 zombies at once (twice the
// default buffer of 32), watched for SECONDS.
//
// - containerd's reaper (v1.4.13, v2.4.2; bench/containerd, when built): its Reap() waits up to
//   1 s per exit for every subscriber, and each exit's notify goroutine retries the full one
//   forever. So the reading subscriber gets one exit a second once the other's buffer is full,
//   and a goroutine leaks a second.
// - subreaper, here: an async iterator that is never read (default options: buffer 32, lag
//   deadline 1 s) next to a callback subscriber. The reader gets every exit at once; the stuck
//   one is closed as lagged once its deadline passes, with the exact count it missed.
import { execFileSync, spawnSync } from 'node:child_process'

import { monitor, setSubreaper } from './sr.ts'

import { containerdPath, engineThreads, helperPath, intEnv, keepAlive, nowUs, report, sleep, threadCounters } from './lib.ts'

const N = 64
const SECONDS = intEnv('SUBREAPER_BENCH_STUCK_SECONDS', 5)
const helper = helperPath()
const containerd = containerdPath()

interface ContainerdStuck {
  readerGotAfterEachSecond: number[]
  extraGoroutinesAfterEachSecond: number[]
}
const baseline: Record<string, ContainerdStuck> = {}
if (containerd) {
  for (const version of ['1', '2']) {
    const out = execFileSync(containerd, ['stuck', version, String(N), helper, String(SECONDS)], { encoding: 'utf8' })
    baseline[version] = JSON.parse(out) as ContainerdStuck
  }
}

setSubreaper(true)
const release = keepAlive()
const stuck = monitor.subscribe()
let stuckMissed: number | undefined
/** When the stuck one's overflow was dropped (it was closed): its queue then holds its buffer only. */
let stuckClosedMs: number | undefined
let got = 0
let allAt: number | undefined
const reader = monitor.subscribe(() => {
  if (++got === N) allAt = nowUs()
})
const threadsBefore = threadCounters().length
spawnSync(helper, ['zombies', String(N)], { stdio: 'ignore' })
const t0 = nowUs()
// The stuck iterator is read only once, after its deadline, to see how it ended.
const readerGotAfterEachSecond: number[] = []
const threadsAfterEachSecond: number[] = []
for (let s = 0; s < SECONDS; s++) {
  for (let i = 0; i < 100; i++) {
    await sleep(10)
    if (stuckClosedMs === undefined && got >= N && stuck.pending === 32) stuckClosedMs = (nowUs() - t0) / 1000
  }
  readerGotAfterEachSecond.push(got)
  threadsAfterEachSecond.push(threadCounters().length - threadsBefore)
}
try {
  for (;;) {
    const r = await stuck.next()
    if (r.done) break
  }
} catch (err) {
  stuckMissed = (err as { missed: number }).missed
}
reader.unsubscribe()
release()
report({
  n: N,
  seconds: SECONDS,
  containerd: baseline,
  subreaper: {
    readerGotAfterEachSecond,
    readerAllMs: allAt === undefined ? null : (allAt - t0) / 1000,
    extraThreadsAfterEachSecond: threadsAfterEachSecond,
    stuckClosed: stuck.closed,
    stuckClosedMs: stuckClosedMs ?? null,
    stuckMissed: stuckMissed ?? null,
    engineThreads: Object.keys(engineThreads()).length,
  },
})
