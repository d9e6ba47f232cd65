// 4. Idle cost: how often the engine's threads wake, and how much CPU they use, while nothing
// happens. One mode per process (the runner starts the three side by side):
//
//   node idle.ts bare        subreaper not loaded: the baseline Node process
//   node idle.ts subreaper   subreaper loaded, one subscriber, no child at all
//   node idle.ts child       subreaper loaded, one subscriber, one live child (`sleep`)
//
// Wake-ups are the thread's context switches (voluntary + involuntary, /proc/self/task/<tid>/
// status), CPU time its schedstat run time (ns) and utime + stime (clock ticks), sampled once a
// second for SECONDS seconds after a settling second.
import { spawn } from 'node:child_process'

import { engineThreads, intEnv, report, sleep, threadCounters, type ThreadCounters } from './lib.ts'

const mode = process.argv[2]
if (mode !== 'bare' && mode !== 'subreaper' && mode !== 'child') throw new Error('usage: idle.ts bare|subreaper|child')
const SECONDS = intEnv('SUBREAPER_BENCH_IDLE_SECONDS', 10)

let stopChild = () => {}
if (mode !== 'bare') {
  const { monitor } = await import('./sr.ts')
  monitor.subscribe(() => {})
  if (mode === 'child') {
    const child = spawn('sleep', [String(SECONDS + 30)], { stdio: 'ignore' })
    stopChild = () => child.kill()
  }
}
await sleep(1000)

type Sample = { reaper?: ThreadCounters; broadcast?: ThreadCounters; process: { wakes: number; cpuNs: number } }
function sample(): Sample {
  const all = threadCounters()
  return {
    ...engineThreads(),
    process: {
      wakes: all.reduce((sum, t) => sum + t.voluntary + t.nonvoluntary, 0),
      cpuNs: all.reduce((sum, t) => sum + t.cpuNs, 0),
    },
  }
}

const samples: Sample[] = [sample()]
for (let i = 0; i < SECONDS; i++) {
  await sleep(1000)
  samples.push(sample())
}
stopChild()

const perSecond = (pick: (s: Sample) => number | undefined) => {
  const out: number[] = []
  for (let i = 1; i < samples.length; i++) {
    const a = pick(samples[i - 1]!)
    const b = pick(samples[i]!)
    if (a !== undefined && b !== undefined) out.push(b - a)
  }
  return out
}
const wakes = (t: ThreadCounters | undefined) => (t ? t.voluntary + t.nonvoluntary : undefined)
const first = samples[0]!
const last = samples[samples.length - 1]!
const thread = (pick: (s: Sample) => ThreadCounters | undefined) =>
  pick(first)
    ? {
        wakesPerSecond: perSecond((s) => wakes(pick(s))),
        totalWakes: wakes(pick(last))! - wakes(pick(first))!,
        cpuNs: pick(last)!.cpuNs - pick(first)!.cpuNs,
        ticks: pick(last)!.ticks - pick(first)!.ticks,
      }
    : null

report({
  mode,
  seconds: SECONDS,
  reaper: thread((s) => s.reaper),
  broadcast: thread((s) => s.broadcast),
  process: {
    wakesPerSecond: perSecond((s) => s.process.wakes),
    cpuNs: last.process.cpuNs - first.process.cpuNs,
  },
})
