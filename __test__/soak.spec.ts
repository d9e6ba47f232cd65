// Soak: many exits — orphans adopted in subreaper mode, monitor.start children, child_process
// calls — through 8 subscribers and concurrent waits, in a node process of its own
// (fixtures/reliability-soak.mjs). Exact counts everywhere, and fds, threads and memory flat.
//
// Size: SUBREAPER_SOAK_EXITS (default 15,000 under `npm test`; `npm run soak` runs 120,000).
import test from 'ava'

import { fixture, liveChildren, openFds, zombieChildren } from './helpers.ts'
import { buildHelper, crashSigns, type Helper, type Resources, runFixture } from './fixtures/reliability-lib.ts'

const EXITS = Number(process.env.SUBREAPER_SOAK_EXITS ?? 15_000)
// RSS after a GC at the end may exceed RSS after a GC at the end of the warm-up by at most this
// much. The soak process runs with V8's young generation pinned at 16 MiB (it otherwise grows
// to its working size at a point of V8's choosing, +15 MiB of RSS); with that, RSS at the
// checkpoints of 15k- and 100k-exit runs here stayed within -3..+3 MiB of the warm-up reading.
// A leak of 200 bytes per exit would add 20 MiB over 100,000 exits.
const RSS_SLACK_KIB = 16 * 1024
// V8 heap in use after a GC: the JavaScript side keeps nothing per exit.
const HEAP_SLACK_KIB = 4 * 1024

let helper: Helper
const fdsBefore = openFds()

test.before(() => {
  helper = buildHelper()
})

test.after.always('no zombie, no stray process, no leaked fd in the test process', (t) => {
  helper?.remove()
  t.deepEqual(zombieChildren(), [])
  t.deepEqual(liveChildren(), [])
  t.true(openFds() <= fdsBefore, `fds ${fdsBefore} -> ${openFds()}`)
})

interface SoakSummary {
  total: number
  target: number
  rounds: number
  warmRounds: number
  elapsedMs: number
  kinds: Record<string, number>
  subscribers: Array<{ name: string; form: string; total: number; errors: string[] }>
  waits: { started: number; settled: number; resolved: number; aborted: number; timedOut: number; recycled: number }
  exitsRecorded: number
  stats: { before: Record<string, number>; after: Record<string, number> }
  resources: {
    start: Resources
    warm: Resources & { heapUsedKiB: number }
    peak: Resources
    end: Resources & { heapUsedKiB: number }
    checkpoints: unknown[]
  }
  zombies: number[]
  live: number[]
  problems: string[]
}

test(`soak: at least ${EXITS} exits through 8 subscribers and concurrent waits, exactly once each; fds, threads and memory flat`, async (t) => {
  // Generous: ~10 s for 15,000 exits on 2 idle cores; a hang is killed, and reported, at the end.
  const timeout = Math.max(110_000, EXITS * 20)
  t.timeout(timeout + 10_000)
  const run = await runFixture(fixture('reliability-soak.mjs'), [String(EXITS), helper.path], {
    nodeArgs: ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16'],
    timeout,
    // With SUBREAPER_SOAK_PROGRESS=1 (npm run soak), its progress lines show as it runs.
    inheritStderr: process.env.SUBREAPER_SOAK_PROGRESS === '1',
  })
  t.false(run.timedOut, 'the soak ended by itself')
  t.deepEqual(crashSigns(run), [])
  t.is(run.code, 0, run.stderr)
  const s = run.messages.at(-1) as unknown as SoakSummary
  t.truthy(s, run.stdout)
  t.log(
    `${s.total} exits in ${(s.elapsedMs / 1000).toFixed(1)} s (${Math.round(s.total / (s.elapsedMs / 1000))}/s), ${s.rounds} rounds: ` +
      JSON.stringify(s.kinds),
  )
  // recycled: waits by pid made after the process was reaped, whose pid a later child of the
  // soak held by then (that child's exit is the answer).
  t.log(`waits: ${JSON.stringify(s.waits)}`)
  t.log(`resources start/warm/peak/end: ${JSON.stringify([s.resources.start, s.resources.warm, s.resources.peak, s.resources.end])}`)

  t.deepEqual(
    s.problems,
    [],
    'every round: each subscriber saw each process (pid and start time) once with its status, each wait as expected',
  )
  t.true(s.total >= EXITS)
  t.is(s.exitsRecorded, s.total, 'the engine recorded exactly the exits made, no more')
  for (const sub of s.subscribers) {
    t.is(sub.total, s.total, `${sub.name} received every exit exactly once in total`)
    t.deepEqual(sub.errors, [], `${sub.name} never lagged`)
  }
  t.is(s.waits.settled, s.waits.started, 'every wait settled')
  t.is(s.waits.resolved + s.waits.aborted + s.waits.timedOut, s.waits.started, 'and settled once')
  t.true(s.kinds.orphan! > 0 && s.kinds.startExit! > 0 && s.kinds.execFile! > 0 && s.kinds.spawnSync! > 0 && s.kinds.fork! > 0)
  t.like(s.stats.before, { owned: 0, pendingWaits: 0, subscribers: 8 })
  t.like(s.stats.after, { owned: 0, pendingWaits: 0, subscribers: 0 })
  t.deepEqual(s.zombies, [], 'no zombie left in the soak process')
  t.deepEqual(s.live, [], 'no child left running')

  const { warm, end } = s.resources
  t.is(end.fds, warm.fds, 'open fds flat after the warm-up')
  t.is(end.threads, warm.threads, 'threads flat after the warm-up')
  t.true(end.rssKiB - warm.rssKiB <= RSS_SLACK_KIB, `RSS ${warm.rssKiB} -> ${end.rssKiB} KiB (bound +${RSS_SLACK_KIB})`)
  t.true(
    end.heapUsedKiB - warm.heapUsedKiB <= HEAP_SLACK_KIB,
    `heap used ${warm.heapUsedKiB} -> ${end.heapUsedKiB} KiB (bound +${HEAP_SLACK_KIB})`,
  )
})
