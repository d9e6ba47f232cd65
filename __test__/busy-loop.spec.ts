// A busy event loop and its neighbours: a callback that blocks the loop does not get another
// subscriber on the same thread closed as lagged (each subscriber is judged by its own reading),
// and monitor.reap() reaps off the loop (on libuv's thread pool; or it waits there for the
// engine's own thread, which reaps under the same lock), which keeps running meanwhile.
//
// This process is a subreaper for the whole file: the zombies both tests make are orphans of a
// helper, re-parented here. The tests run one at a time, each checking that nothing is left.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

import { monitor, setSubreaper, SubscriptionLaggedError, type Exit } from 'subreaper'

import { bindingPath, root, until } from './helpers.ts'
import { noZombies } from './procs.ts'
import { buildHelper, type Helper } from './fixtures/reliability-lib.ts'
import { readStat } from './proc-stat.mjs'

let helper: Helper
test.before(() => {
  helper = buildHelper()
  setSubreaper(true)
})
test.after.always(() => helper?.remove())

/** The pids in the output of the helper's `orphans N` ("pid status" lines). */
function orphanPids(text: string): number[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => Number(l.split(' ')[0]))
}

/** Blocks this thread (no turn of the event loop) for `ms`. */
function block(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

test.serial('a callback that blocks the loop for 2 s does not get a fast subscriber on the same thread closed', async (t) => {
  const N = 300
  const LAG_MS = 200
  const out = join(helper.dir, 'lag-orphans')
  const fastGot: Exit[] = []
  const fastErrors: SubscriptionLaggedError[] = []
  let blockedFor = 0
  let fastPendingWhenBlocked = 0
  // The slow one comes first: on its first exit it blocks the loop until every orphan below has
  // been offered to the fast one, then 2 s more, ten times the fast one's lag deadline.
  const slow = monitor.subscribe(() => {
    if (blockedFor > 0) return
    const start = Date.now()
    while (Date.now() - start < 60_000 && fast.pending < N) block(10)
    fastPendingWhenBlocked = fast.pending
    block(2000)
    blockedFor = Date.now() - start
  })
  const fast = monitor.subscribe((e) => fastGot.push(e), { lagTimeout: LAG_MS, onError: (e) => fastErrors.push(e) })
  // A background shell, re-parented here at once, makes N orphans half a second later: by then
  // the slow callback is blocking the loop (the shell's own exit reached it first).
  spawnSync('sh', ['-c', `(sleep 0.5; exec '${helper.path}' orphans ${N} 0 > '${out}') >/dev/null 2>&1 &`], { stdio: 'ignore' })
  t.true(await until(() => blockedFor > 0, 90_000), 'the slow callback ran and returned')
  t.true(fastPendingWhenBlocked >= N, `the fast one held ${fastPendingWhenBlocked} exits while the loop was blocked`)
  t.true(blockedFor >= 2000)
  const pids = orphanPids(readFileSync(out, 'utf8'))
  t.is(pids.length, N)
  t.true(await until(() => pids.every((p) => fastGot.some((e) => e.pid === p)), 30_000), 'the fast one got every orphan')
  t.deepEqual(fastErrors, [], 'it was never closed as lagged')
  t.false(fast.closed)
  const mine = fastGot.filter((e) => pids.includes(e.pid))
  t.is(mine.length, N, 'once each')
  slow.unsubscribe()
  fast.unsubscribe()
  t.deepEqual(await noZombies(), [])
})

test.serial('monitor.reap() does not block the event loop while 5,000 zombies are reaped: a 1 ms timer keeps firing', async (t) => {
  const N = 5000
  const native = createRequire(join(root, 'package.json'))(bindingPath) as { pause(owner?: number): void; resume(owner?: number): void }
  const delivered: number[] = []
  const sub = monitor.subscribe((e) => delivered.push(e.pid), { bufferSize: 1 << 16, lagTimeout: 60_000 })
  // Held while the zombies are made, so that they are all there when the sweep starts.
  native.pause()
  let made
  try {
    made = spawnSync(helper.path, ['orphans', String(N), '0'], { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 })
  } catch (err) {
    native.resume()
    throw err
  }
  let ticks = 0
  const timer = setInterval(() => ticks++, 1)
  // Released first: a sweep that started while the engine was paused would find nothing to do.
  // The engine's own thread may then take some of them too (both reap under one lock): the
  // Promise resolves once this sweep has run, after whatever the engine's thread was draining.
  native.resume()
  const reaping = monitor.reap()
  const swept = await reaping
  const during = ticks
  clearInterval(timer)
  t.is(made.status, 0)
  const pids = orphanPids(made.stdout.toString())
  t.is(pids.length, N)
  // Resolved once every child that had exited when it was called is reaped.
  t.deepEqual(
    pids.filter((p) => readStat(p)?.state === 'Z'),
    [],
    'no zombie left when reap() resolved',
  )
  t.log(`${during} timer callbacks while reap() was pending; ${swept.length} of ${N} reaped by the sweep itself`)
  t.true(during >= 5, `only ${during} timer callbacks while reap() was pending`)
  const mine = new Set(pids)
  t.true(
    swept.every((e) => mine.has(e.pid) || e.pid === made.pid),
    'the sweep returned only our zombies',
  )
  // Every zombie reaped and announced exactly once, by the sweep or by the engine's thread.
  t.true(await until(() => delivered.filter((p) => mine.has(p)).length >= N, 30_000))
  t.is(new Set(delivered.filter((p) => mine.has(p))).size, N)
  t.is(delivered.filter((p) => mine.has(p)).length, N, 'once each')
  sub.unsubscribe()
  t.deepEqual(await noZombies(), [])
})
