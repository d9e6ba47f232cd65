// A process that ends by itself while exits are still in flight: an idle reaper must not hold
// the process open, a busy one must finish delivering before the process ends. Each run is a
// separate `node` process (fixtures/natural-exit.mjs) with nothing but a callback subscriber on
// its event loop.
import test from 'ava'

import { setSubreaper } from 'subreaper'

import { fixture } from './helpers.ts'
import { noLiveChildren, noZombies } from './procs.ts'
import { buildHelper, type FixtureRun, type Helper, runFixture } from './fixtures/reliability-lib.ts'

let helper: Helper

// The scripts' own children are re-parented here if a script is killed: reap them.
test.before(() => {
  setSubreaper(true)
  helper = buildHelper()
})

test.after.always('no zombie and no live child left by the scripts', async (t) => {
  helper?.remove()
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
})

interface Result {
  seen: number
  distinct: number
  lagged: number | null
  beforeExits: number
  heldAtFirstBeforeExit: string[]
}

function result(t: import('ava').ExecutionContext, run: FixtureRun, label: string): Result {
  t.false(run.timedOut, `${label}: did not end by itself; stderr: ${run.stderr}`)
  t.is(run.signal, null, `${label}: killed by ${run.signal}; stderr: ${run.stderr}`)
  t.is(run.code, 0, `${label}: exit code ${run.code}; stderr: ${run.stderr}`)
  return run.messages.at(-1) as unknown as Result
}

test.serial(
  '10,000 adopted zombies and a callback subscriber, nothing else on the loop: all 10,001 exits delivered before the process ends, 20 of 20 runs',
  async (t) => {
    t.timeout(15 * 60_000)
    const runs = 20
    let complete = 0
    for (let i = 0; i < runs; i++) {
      const run = await runFixture(fixture('natural-exit.mjs'), ['zombies', helper.path], { timeout: 120_000 })
      const r = result(t, run, `run ${i + 1}`)
      t.is(r.lagged, null, `run ${i + 1}: the subscriber did not lag`)
      t.is(r.distinct, r.seen, `run ${i + 1}: each exit delivered once`)
      if (r.seen === 10_001) complete++
      else t.log(`run ${i + 1}: ${r.seen} of 10,001 exits delivered`)
    }
    t.is(complete, runs, `${complete} of ${runs} runs delivered all 10,001 exits`)
  },
)

test.serial('an idle callback subscriber lets the process exit at once: nothing holds the loop when it empties', async (t) => {
  const run = await runFixture(fixture('natural-exit.mjs'), ['idle'], { timeout: 60_000 })
  const r = result(t, run, 'idle')
  t.is(r.seen, 0)
  t.is(r.beforeExits, 1, "the loop emptied once: subreaper's 'beforeExit' scheduled nothing")
  t.deepEqual(r.heldAtFirstBeforeExit, [], 'nothing was holding the loop')
})
