// 2,000 mixed calls (execFile with codes and output, spawnSync, spawn killed by signals, fork,
// a child of a worker that did not load subreaper, half of those workers terminated while their
// child runs, monitor.start + wait, orphans adopted in subreaper mode), 32 in flight, in a node process of
// its own (fixtures/mixed-load.mjs): every callback and event once with the right result, every
// pid seen by a callback and an iterator subscriber, no zombie, no live child, and the process
// ends by itself.
import test from 'ava'

import { setSubreaper } from 'subreaper'

import { fixture } from './helpers.ts'
import { noLiveChildren, noZombies } from './procs.ts'
import { runNode } from './fixtures/reliability-lib.ts'

// Anything the load process left behind would be re-parented here, and found below.
test.before(() => setSubreaper(true))

interface Summary {
  total: number
  kinds: Record<string, number>
  pids: number
  reusedPids: number
  missing: number
  problems: string[]
  zombies: number[]
  live: number[]
  loadMs: number
}

test('2,000 mixed calls, 32 in flight: every result right, every pid seen, nothing left, exits by itself', async (t) => {
  t.timeout(240_000)
  const started = Date.now()
  const run = await runNode([fixture('mixed-load.mjs'), '2000', '32'], { timeout: 180_000 })
  t.log(`load process ran ${((Date.now() - started) / 1000).toFixed(1)} s`)
  t.false(run.timedOut, `the load process did not end by itself; stderr: ${run.stderr.slice(-2000)}`)
  t.is(run.signal, null)
  t.is(run.code, 0, run.stderr.slice(-2000))
  const summary = JSON.parse(run.stdout.trim().split('\n').pop()!) as Summary
  t.log(`kinds ${JSON.stringify(summary.kinds)}, ${summary.pids} exits (${summary.reusedPids} pids recycled), load ${summary.loadMs} ms`)
  t.is(summary.total, 2000)
  t.is(
    Object.values(summary.kinds).reduce((a, b) => a + b, 0),
    2000,
  )
  t.true(
    Object.values(summary.kinds).every((n) => n >= 50),
    'every kind ran at least 50 times',
  )
  t.deepEqual(summary.problems, [])
  t.is(summary.missing, 0)
  t.is(summary.pids, 2000 + summary.kinds.orphan!, 'one exit per call, plus one per orphan')
  t.deepEqual(summary.zombies, [], 'no zombie in the load process')
  t.deepEqual(summary.live, [], 'no live child in the load process')
  t.deepEqual(await noZombies(), [], 'nothing re-parented here as a zombie')
  t.deepEqual(await noLiveChildren(), [], 'no stray process re-parented here')
})
