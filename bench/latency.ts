// 2. Exit-to-callback latency, one round (the runner alternates the two modes, round by round):
//
//   node latency.ts child_process   subreaper NOT loaded: Node's own child_process 'exit' event
//                                   latency (the baseline).
//   node latency.ts subreaper [S]   subreaper loaded, one callback subscriber (or S, timed to the
//                                   last of them, and then without the orphans): for each
//                                   child_process child, both the subscriber's callback and the
//                                   'exit' event (the same exit, both paths); then orphans,
//                                   which the engine reaps itself (this process is a subreaper).
//
// A child's exit time is the CLOCK_MONOTONIC time it appends to a file just before _exit (the
// C helper's `stamp`); callbacks read process.hrtime, which libuv takes from CLOCK_MONOTONIC
// too, so the two are directly comparable (checked at the start of each round). The child also
// writes CLOCK_REALTIME, against which the engine's own wall-clock timestamp of the exit splits
// the latency into "engine saw it" and "JavaScript was called". Each spawn() call is timed too:
// what the module adds to it (its fork hook, the child's declaration). Children are run one at a time
// with a quiet gap between them: the event loop is idle when each exits.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { helperPath, intEnv, keepAlive, nowUs, readStamps, report, sleep, until, type Stamp } from './lib.ts'

const mode = process.argv[2]
if (mode !== 'child_process' && mode !== 'subreaper') throw new Error('usage: latency.ts child_process|subreaper')
const COUNT = intEnv('SUBREAPER_BENCH_LATENCY_N', 300)
const SUBSCRIBERS = Number(process.argv[3] ?? 1)
const GAP_MS = 3
/** How long an orphan lives after its parent exits: long enough to have been re-parented. */
const ORPHAN_DELAY_US = 5000
const helper = helperPath()
const dir = mkdtempSync(join(tmpdir(), 'subreaper-bench-'))

/** Checks that the helper's CLOCK_MONOTONIC and process.hrtime are one clock. */
function clockCheck(): { ok: boolean; stampMinusBeforeUs: number; afterMinusStampUs: number } {
  const file = join(dir, 'clock')
  const before = nowUs()
  const r = spawnSync(helper, ['stamp', file], { stdio: 'ignore' })
  const after = nowUs()
  const stamp = readStamps(file).get(r.pid)?.mono
  if (stamp === undefined) throw new Error('clock check: no stamp')
  return { ok: before <= stamp && stamp <= after, stampMinusBeforeUs: stamp - before, afterMinusStampUs: after - stamp }
}

interface Sample {
  pid: number
  /** How long the spawn() call took (it returns once the child has exec'd). */
  spawnUs: number
  exitEvent?: number
  callback?: number
  /** The engine's timestamp of the exit (ms since the epoch, CLOCK_REALTIME). */
  recorded?: number
}

const release = keepAlive()
const clock = clockCheck()
const stampFile = join(dir, 'stamps')

// With subreaper loaded: every exit the subscribers see, by pid, once the last of them has.
const callbacks = new Map<number, { at: number; reapedBy: string; recorded: number }>()
if (mode === 'subreaper') {
  const { monitor, setSubreaper } = await import('./sr.ts')
  setSubreaper(true)
  const seen = new Map<number, number>()
  for (let i = 0; i < SUBSCRIBERS; i++) {
    monitor.subscribe((exit) => {
      const n = (seen.get(exit.pid) ?? 0) + 1
      seen.set(exit.pid, n)
      if (n < SUBSCRIBERS) return
      seen.delete(exit.pid)
      callbacks.set(exit.pid, { at: nowUs(), reapedBy: exit.reapedBy, recorded: exit.timestamp })
    })
  }
}

async function runChild(args: string[], samples: Sample[] | null): Promise<void> {
  const before = nowUs()
  const child = spawn(helper, args, { stdio: 'ignore' })
  const spawnUs = nowUs() - before
  const pid = child.pid!
  const sample: Sample = { pid, spawnUs }
  await new Promise<void>((resolve) =>
    child.once('exit', () => {
      sample.exitEvent = nowUs()
      resolve()
    }),
  )
  if (mode === 'subreaper') {
    await until(() => callbacks.has(pid), 5000, `the subscriber to see pid ${pid}`)
    sample.callback = callbacks.get(pid)!.at
    sample.recorded = callbacks.get(pid)!.recorded
    callbacks.delete(pid)
  }
  samples?.push(sample)
  await sleep(GAP_MS)
}

// Warm-up: a few children, not counted.
for (let i = 0; i < 10; i++) await runChild(['stamp', join(dir, 'warmup')], null)

const direct: Sample[] = []
for (let i = 0; i < COUNT; i++) await runChild(['stamp', stampFile], direct)

// Orphans: the helper forks a grandchild and exits; the grandchild exits ORPHAN_DELAY_US later.
const orphanFile = join(dir, 'orphans')
const orphans: { pid: number; at: number; recorded: number }[] = []
if (mode === 'subreaper' && SUBSCRIBERS === 1) {
  for (let i = 0; i < COUNT; i++) {
    callbacks.clear()
    const child = spawn(helper, ['orphan-stamp', orphanFile, String(ORPHAN_DELAY_US)], { stdio: 'ignore' })
    await new Promise((resolve) => child.once('exit', resolve))
    const found = () => [...callbacks].find(([, c]) => c.reapedBy === 'subreaper')
    await until(() => found() !== undefined, 5000, 'an orphan exit')
    const [pid, c] = found()!
    orphans.push({ pid, at: c.at, recorded: c.recorded })
    await sleep(GAP_MS)
  }
}

const stamps = readStamps(stampFile)
const orphanStamps = readStamps(orphanFile)
const latency = (at: number | undefined, pid: number, from: Map<number, Stamp>) => {
  const stamp = from.get(pid)
  return at === undefined || stamp === undefined ? undefined : at - stamp.mono
}
// The engine's own timestamp is wall-clock: compared with the child's CLOCK_REALTIME stamp.
const recordedLatency = (recorded: number | undefined, pid: number, from: Map<number, Stamp>) => {
  const stamp = from.get(pid)
  return recorded === undefined || stamp === undefined ? undefined : recorded * 1000 - stamp.real
}
const defined = (v: number | undefined): v is number => v !== undefined
const exitEvent = direct.map((s) => latency(s.exitEvent, s.pid, stamps)).filter(defined)
const callback = direct.map((s) => latency(s.callback, s.pid, stamps)).filter(defined)
const spawnUs = direct.map((s) => s.spawnUs)
const recorded = direct.map((s) => recordedLatency(s.recorded, s.pid, stamps)).filter(defined)
const orphan = orphans.map((o) => latency(o.at, o.pid, orphanStamps)).filter(defined)
const orphanRecorded = orphans.map((o) => recordedLatency(o.recorded, o.pid, orphanStamps)).filter(defined)
// For the same child: how often the subscriber ran before the 'exit' event.
const callbackFirst = direct.filter((s) => s.callback !== undefined && s.exitEvent !== undefined && s.callback < s.exitEvent).length

rmSync(dir, { recursive: true, force: true })
release()
report({
  mode,
  subscribers: SUBSCRIBERS,
  clock,
  exitEvent,
  callback,
  recorded,
  orphan,
  orphanRecorded,
  callbackFirst,
  spawnUs,
  children: direct.length,
})
