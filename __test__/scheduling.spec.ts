// How the package shares the event loop's time: the engine's threads never preempt the loop's
// thread (they run SCHED_BATCH, the loop's thread is left as it was), and a child_process
// child's exit reaches callback subscribers right after Node's own 'exit' listeners, in the
// same turn of the loop. Each case runs in a `node` process of its own.
import test, { type ExecutionContext } from 'ava'

import { configureReaping, reaperStats } from 'subreaper'

import { readStat } from './proc-stat.mjs'
import { noLiveChildren, noZombies } from './procs.ts'
import { runNode } from './fixtures/reliability-lib.ts'

test.after.always('no zombie and no live child left by the scripts', async (t) => {
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
})

function lastJson(stdout: string): unknown {
  return JSON.parse(stdout.trim().split('\n').pop() ?? 'null')
}

// A thread's scheduling policy is field 41 of its stat (0 SCHED_OTHER, 3 SCHED_BATCH,
// 5 SCHED_IDLE). A thread names itself and sets its policy once it runs: the script waits (up
// to 5 s) until the three engine threads are named and scheduled, then reports every thread.
/** The policy an engine thread runs under in a process started with `policy`. */
const engineWants = (policy: number): number => (policy === 0 ? 3 : policy)
// It runs in the script too (TypeScript's types are gone from its compiled source).
const THREADS = `
const { readdirSync } = require('node:fs')
require('subreaper')
const { readStat } = require('./__test__/proc-stat.mjs')
const engineWants = ${engineWants.toString()}
const read = () => readdirSync('/proc/self/task').flatMap((tid) => {
  const stat = readStat('self', tid)
  return stat ? [{ tid: Number(tid), name: stat.comm, policy: stat.policy }] : []
})
const want = engineWants(readStat('self').policy)
const deadline = Date.now() + 5000
const check = () => {
  const threads = read()
  const engine = threads.filter((th) => th.name.startsWith('subreaper'))
  if ((engine.length < 3 || engine.some((th) => th.policy !== want)) && Date.now() < deadline) return setTimeout(check, 10)
  console.log(JSON.stringify({ pid: process.pid, threads }))
}
check()
`

test("the engine's threads are batch-scheduled (or keep a policy the process was started with); the event loop's thread keeps its policy", async (t) => {
  // The node process inherits this one's policy (SCHED_OTHER, unless the suite runs under chrt).
  const given = readStat('self')!.policy
  const want = engineWants(given)
  const run = await runNode(['-e', THREADS])
  t.is(run.code, 0, run.stderr)
  const { pid, threads } = lastJson(run.stdout) as {
    pid: number
    threads: { tid: number; name: string; policy: number }[]
  }
  const engine = threads.filter((th) => th.name.startsWith('subreaper'))
  t.is(engine.length, 3, `engine threads: ${JSON.stringify(threads)}`)
  for (const th of engine) t.is(th.policy, want, `${th.name} (${th.tid}) runs policy ${th.policy}, not ${want} (started with ${given})`)
  t.is(threads.find((th) => th.tid === pid)?.policy, given, `the main thread no longer runs policy ${given}`)
})

// The report grace is raised so that a loop slowed by a busy machine still gets each exit from
// libuv's report (with the default 20 ms, a loop late by more would get it from the engine).
const ORDER = `
const { spawn } = require('node:child_process')
const { configureReaping, monitor, reaperStats } = require('subreaper')
configureReaping({ reportGrace: 10000 })
if (reaperStats().reportGraceMs !== 10000) throw new Error('reportGrace not applied')
const seen = []
let current
monitor.subscribe((exit) => {
  if (current && exit.pid === current.pid) {
    current.callback = { afterExit: current.exitEvent, sameTurn: !current.immediateRan }
    current.done()
  }
})
;(async () => {
  for (let i = 0; i < 20; i++) {
    await new Promise((done) => {
      const child = spawn('sh', ['-c', 'exit ' + i])
      current = { pid: child.pid, exitEvent: false, immediateRan: false, done }
      const c = current
      child.on('exit', (code) => {
        c.exitEvent = true
        c.code = code
        setImmediate(() => { c.immediateRan = true })
      })
    })
    seen.push({ code: current.code, ...current.callback })
  }
  console.log(JSON.stringify(seen))
})()
`

test("a child_process child's exit reaches a callback subscriber right after its 'exit' listeners, in the same turn", async (t) => {
  const run = await runNode(['-e', ORDER])
  t.is(run.code, 0, run.stderr)
  const seen = lastJson(run.stdout) as { code: number; afterExit: boolean; sameTurn: boolean }[]
  t.is(seen.length, 20)
  seen.forEach((s, i) => {
    t.is(s.code, i)
    t.true(s.afterExit, `child ${i}: the subscriber ran before Node's 'exit' listener`)
    t.true(s.sameTurn, `child ${i}: the subscriber waited for a later turn of the loop`)
  })
})

test('configureReaping({ reportGrace }) takes 0 to 3600000 ms and says what was wrong otherwise', (t) => {
  for (const bad of [-1, Number.NaN, 3_600_001, '20', Infinity]) {
    const err = t.throws(() => configureReaping({ reportGrace: bad as number }), { instanceOf: RangeError })
    t.is((err as NodeJS.ErrnoException).code, 'ERR_OUT_OF_RANGE')
    t.regex(err!.message, /^reportGrace must be a number of milliseconds from 0 to 3600000; got /)
  }
  const before = reaperStats().reportGraceMs
  t.is(before, 20, 'the default')
  configureReaping({ reportGrace: 35 })
  t.is(reaperStats().reportGraceMs, 35)
  configureReaping({ reportGrace: before })
  t.is(reaperStats().reportGraceMs, before)
})

// While every child of the process is a child_process child (its owner, libuv, reports its
// exit), the reaper's thread waits for those reports out of waitid, so that the kernel does not
// wake it from each exiting child's exit path; the package's SIGCHLD handle on the main
// thread's loop hints it for any other zombie.
const REPORTS = `
const { spawn } = require('node:child_process')
const { monitor, reaperStats } = require('subreaper')
const exits = []
monitor.subscribe((e) => exits.push({ pid: e.pid, status: e.status, reapedBy: e.reapedBy }))
const child = spawn('sleep', ['1'], { stdio: 'ignore' })
const seen = new Set()
const poll = setInterval(() => seen.add(reaperStats().activity), 5)
child.on('exit', () => setTimeout(() => {
  clearInterval(poll)
  console.log(JSON.stringify({ pid: child.pid, seen: [...seen], exits }))
}, 50))
`

/** What the REPORTS and ORPHAN scripts print: their child, the reaper's states, the exits. */
interface ReaperRun {
  pid: number
  seen: string[]
  exits: { pid: number; status: number; reapedBy: string; comm?: string }[]
}

async function runReaper(t: ExecutionContext, script: string): Promise<ReaperRun> {
  const run = await runNode(['-e', script])
  t.is(run.code, 0, run.stderr)
  return lastJson(run.stdout) as ReaperRun
}

test('while every child reports through its owner, the reaper waits for the reports, out of waitid', async (t) => {
  const { pid, seen, exits } = await runReaper(t, REPORTS)
  t.true(seen.includes("waiting for its owners' reports"), `the reaper's states: ${seen.join('; ')}`)
  t.false(seen.includes('waiting for an exit'), `the reaper slept in waitid: ${seen.join('; ')}`)
  t.deepEqual(exits, [{ pid, status: 0, reapedBy: 'owner' }])
})

// An orphan re-parented while the reaper waits for reports (the subshell that started it exits
// at once): its exit is announced and it is reaped (the file's last check: no zombie left).
const ORPHAN = `
const { spawn } = require('node:child_process')
const { monitor, reaperStats, setSubreaper } = require('subreaper')
setSubreaper(true)
const exits = []
monitor.subscribe((e) => exits.push({ pid: e.pid, status: e.status, reapedBy: e.reapedBy, comm: e.comm }))
const child = spawn('sh', ['-c', 'sleep 0.3; (sh -c "sleep 0.2; exit 7" &); sleep 2'], { stdio: 'ignore' })
const seen = []
const poll = setInterval(() => {
  const a = reaperStats().activity
  if (seen[seen.length - 1] !== a) seen.push(a)
}, 5)
child.on('exit', () => setTimeout(() => {
  clearInterval(poll)
  console.log(JSON.stringify({ pid: child.pid, seen, exits }))
}, 50))
`

test('an orphan re-parented while the reaper waits for reports is announced and reaped', async (t) => {
  const { pid, seen, exits } = await runReaper(t, ORPHAN)
  t.true(seen.includes("waiting for its owners' reports"), `the reaper's states: ${seen.join('; ')}`)
  t.is(exits.length, 2, JSON.stringify(exits))
  t.like(exits[0], { status: 7, reapedBy: 'subreaper', comm: 'sh' })
  t.not(exits[0]!.pid, pid)
  t.deepEqual(exits[1], { pid, status: 0, reapedBy: 'owner', comm: 'sh' })
})
