// The event loop: an idle reaper does not keep a process alive; a pending wait() or an awaited
// iterator does; a process may exit while exits are still flowing. Each case is a separate
// `node` process (fixtures/event-loop.mjs) that must end by itself.
import test from 'ava'

import { setSubreaper } from 'subreaper'

import { fixture } from './helpers.ts'
import { noLiveChildren, noZombies } from './procs.ts'
import { type FixtureRun, runNode } from './fixtures/reliability-lib.ts'

// Children a script leaves running when it exits are re-parented here and reaped.
test.before(() => setSubreaper(true))

test.after.always('no zombie and no live child left by the scripts', async (t) => {
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
})

function parse(run: FixtureRun): Record<string, unknown> {
  const line = run.stdout.trim().split('\n').pop() ?? ''
  return JSON.parse(line) as Record<string, unknown>
}

/** The run ended by itself, normally, without a crash report. */
function endedByItself(t: import('ava').ExecutionContext, run: FixtureRun) {
  t.false(run.timedOut, `did not exit by itself; stderr: ${run.stderr}`)
  t.is(run.signal, null, `killed by ${run.signal}; stderr: ${run.stderr}`)
  t.is(run.code, 0, `exit code ${run.code}; stderr: ${run.stderr}`)
  t.notRegex(run.stderr, /FATAL|Abort|panicked|Segmentation/i)
}

test('a script that only loads subreaper and subscribes exits by itself (ESM)', async (t) => {
  const run = await runNode([fixture('event-loop.mjs'), 'idle'])
  endedByItself(t, run)
  t.deepEqual(parse(run), { loaded: true })
})

test('the same with require() (CommonJS)', async (t) => {
  const run = await runNode([
    '-e',
    "const { monitor } = require('subreaper'); monitor.subscribe(() => {}); console.log(JSON.stringify({ loaded: true }))",
  ])
  endedByItself(t, run)
  t.deepEqual(parse(run), { loaded: true })
})

test('a subscribed script that ran a child_process child exits by itself once its work is done', async (t) => {
  const run = await runNode([fixture('event-loop.mjs'), 'idle-after-work'])
  endedByItself(t, run)
  t.like(parse(run), { code: 3, stdout: 'hi\n', status: 3 })
})

test('a pending wait(child) keeps the process alive until the (unref-ed) child exits', async (t) => {
  const run = await runNode([fixture('event-loop.mjs'), 'wait-child'])
  endedByItself(t, run)
  const out = parse(run)
  t.is(out.exitPid, out.pid)
  t.is(out.sameProcess, true, 'the exit of that very process (pid and start time)')
  t.is(out.status, 4)
})

test('a pending wait(pid) keeps the process alive', async (t) => {
  const run = await runNode([fixture('event-loop.mjs'), 'wait-pid'])
  endedByItself(t, run)
  const out = parse(run)
  t.is(out.exitPid, out.pid)
  t.is(out.sameProcess, true, 'the exit of that very process (pid and start time)')
  t.is(out.status, 5)
})

test('a pending wait on an adopted orphan (no ChildProcess at all) keeps the process alive', async (t) => {
  const run = await runNode([fixture('event-loop.mjs'), 'wait-orphan'])
  endedByItself(t, run)
  const out = parse(run)
  t.is(out.exitPid, out.pid)
  t.is(out.sameProcess, true, 'the exit of that very process (pid and start time)')
  t.is(out.status, 0)
  t.is(out.comm, 'sleep')
})

test('an iterator being awaited keeps the process alive', async (t) => {
  const run = await runNode([fixture('event-loop.mjs'), 'iterator'])
  endedByItself(t, run)
  const out = parse(run)
  t.is(out.exitPid, out.pid)
  t.is(out.sameProcess, true, 'the exit of that very process (pid and start time)')
  t.is(out.status, 6)
})

test('a wait that timed out or was aborted no longer holds the process', async (t) => {
  const run = await runNode([fixture('event-loop.mjs'), 'timeout-releases'])
  endedByItself(t, run)
  t.deepEqual(parse(run), { timeout: true, aborted: true, loopEmptiedWhileRunning: true, killed: 'SIGKILL' })
})

test('process.exit() while exits are flowing to subscribers and waits: no crash', async (t) => {
  for (let i = 0; i < 3; i++) {
    const run = await runNode([fixture('event-loop.mjs'), 'exit-mid-stream'])
    endedByItself(t, run)
    t.deepEqual(parse(run), { seen: 5 })
  }
})

test('exits recorded before the loop empties reach callback subscribers before the process exits', async (t) => {
  for (let i = 0; i < 5; i++) {
    const run = await runNode([fixture('event-loop.mjs'), 'deliver-before-exit'])
    endedByItself(t, run)
    t.deepEqual(parse(run), { started: 60, seen: 60 }, `run ${i}`)
  }
})
