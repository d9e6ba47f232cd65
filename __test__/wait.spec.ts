// monitor.wait: by ChildProcess and by pid, before and after the exit, every kind of status,
// abort and timeout, NotAChildError, and a command that does not exist.
import test from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { constants } from 'node:os'

import { AbortError, monitor, NotAChildError, reaperStats, WaitTimeoutError, type Exit } from 'subreaper'

import { sleep, until } from './helpers.ts'
import { idOf, noLiveChildren, noZombies } from './procs.ts'
import { isExitOf, type ProcessId } from './fixtures/process-identity.mjs'
import { readStat } from './proc-stat.mjs'

test.after.always('no zombie, no live child, no pending wait', async (t) => {
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
  t.true(await until(() => reaperStats().pendingWaits === 0, 10_000), `pending waits: ${reaperStats().pendingWaits}`)
})

/** Checks the shape of an Exit beyond its status. */
function checkShape(t: import('ava').ExecutionContext, exit: Exit, id: ProcessId, startedAt: number) {
  t.is(exit.pid, id.pid)
  t.true(isExitOf(exit, id), `the exit of that very process (start time ${exit.startTime}, expected ${id.startTime})`)
  t.is(typeof exit.timestamp, 'number')
  t.true(exit.timestamp >= startedAt - 1000 && exit.timestamp <= Date.now() + 1000, 'timestamp is ms since the epoch')
  t.true(exit.reapedBy === 'owner' || exit.reapedBy === 'subreaper')
  if (exit.rusage === null) {
    // Unknown, never zeros: only an exit its owner reaped before the engine read the zombie.
    t.is(exit.reapedBy, 'owner', 'no usage though the engine reaped it')
  } else {
    for (const key of ['userCPUTime', 'systemCPUTime', 'minorFaults', 'majorFaults'] as const) {
      t.true(Number.isInteger(exit.rusage[key]) && exit.rusage[key] >= 0, key)
    }
    for (const key of ['maxRSS', 'voluntaryContextSwitches', 'involuntaryContextSwitches'] as const) {
      const value = exit.rusage[key]
      // wait4 gives them all; a reading of the zombie has none of them.
      if (exit.reapedBy === 'subreaper') t.true(Number.isInteger(value) && value! >= 0, key)
      else t.true(value === null || (Number.isInteger(value) && value >= 0), key)
    }
  }
  t.is(typeof exit.coreDumped, 'boolean')
}

test.serial('wait(child) and wait(pid), before and after the exit, for codes 0 to 255', async (t) => {
  const codes = [0, 1, 2, 3, 64, 126, 127, 128, 200, 254, 255]
  const startedAt = Date.now()
  const children = codes.map((code) => monitor.start('sh', ['-c', `exit ${code}`]))
  const ids = children.map(idOf)
  const before = children.map((c) => monitor.wait(c))
  const beforeByPid = children.map((c) => monitor.wait(c.pid!))
  await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : undefined)))
  const after = await Promise.all(children.map((c) => monitor.wait(c)))
  const afterByPid = await Promise.all(children.map((c) => monitor.wait(c.pid!)))
  const settledBefore = await Promise.all(before)
  const settledBeforeByPid = await Promise.all(beforeByPid)
  codes.forEach((code, i) => {
    const pid = children[i]!.pid!
    for (const exit of [settledBefore[i]!, settledBeforeByPid[i]!, after[i]!, afterByPid[i]!]) {
      t.like(exit, { pid, status: code, code, signal: null, coreDumped: false, comm: 'sh' })
      checkShape(t, exit, ids[i]!, startedAt)
    }
    t.is(children[i]!.exitCode, code, 'the ChildProcess has the same code')
  })
})

test.serial('wait(pid) of a child_process child before it exits', async (t) => {
  const child = spawn('sh', ['-c', 'sleep 0.2; exit 21'], { stdio: 'ignore' })
  const exit = await monitor.wait(child.pid!)
  t.like(exit, { pid: child.pid, status: 21, code: 21, signal: null })
  if (child.exitCode === null) await once(child, 'exit')
  t.is(child.exitCode, 21)
})

for (const sig of ['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGUSR1'] as const) {
  test.serial(`a child killed by ${sig}: status 128+${constants.signals[sig]}, signal name, code null`, async (t) => {
    const child = monitor.start('sleep', ['30'])
    const pending = monitor.wait(child)
    const pendingByPid = monitor.wait(child.pid!)
    await once(child, 'spawn')
    child.kill(sig)
    const [exit, byPid] = await Promise.all([pending, pendingByPid])
    const expected = { pid: child.pid, status: 128 + constants.signals[sig], code: null, signal: sig, comm: 'sleep' }
    t.like(exit, expected)
    t.like(byPid, expected)
    t.like(await monitor.wait(child), expected)
    if (child.signalCode === null) await once(child, 'exit')
    t.is(child.signalCode, sig)
  })
}

test.serial('AbortSignal: a pending wait rejects with AbortError and the child keeps running', async (t) => {
  const child = monitor.start('sleep', ['30'])
  await once(child, 'spawn')
  const ac = new AbortController()
  const byChild = monitor.wait(child, { signal: ac.signal })
  const ac2 = new AbortController()
  const byPid = monitor.wait(child.pid!, { signal: ac2.signal })
  const reason = new Error('stop waiting')
  ac.abort(reason)
  ac2.abort()
  const e1 = await t.throwsAsync(byChild, { instanceOf: AbortError })
  t.is(e1?.name, 'AbortError')
  t.is((e1 as AbortError).code, 'ABORT_ERR')
  t.is(e1?.cause, reason, 'the abort reason is the cause')
  await t.throwsAsync(byPid, { instanceOf: AbortError })
  t.is(readStat(child.pid!)?.state !== 'Z' && readStat(child.pid!) !== undefined, true, 'the child still runs')
  // An already aborted signal rejects at once, by child and by pid.
  await t.throwsAsync(monitor.wait(child, { signal: AbortSignal.abort() }), { instanceOf: AbortError })
  await t.throwsAsync(monitor.wait(child.pid!, { signal: AbortSignal.abort() }), { instanceOf: AbortError })
  // A later wait still gets the exit.
  const later = monitor.wait(child.pid!)
  child.kill('SIGTERM')
  t.like(await later, { status: 128 + constants.signals.SIGTERM, signal: 'SIGTERM' })
  // Aborting after the exit changes nothing.
  const ac3 = new AbortController()
  const done = await monitor.wait(child, { signal: ac3.signal })
  ac3.abort()
  t.like(done, { signal: 'SIGTERM' })
})

test.serial('timeout: a pending wait rejects with WaitTimeoutError and the child keeps running', async (t) => {
  const child = monitor.start('sleep', ['30'])
  await once(child, 'spawn')
  const pid = child.pid!
  const e1 = await t.throwsAsync(monitor.wait(child, { timeout: 50 }), { instanceOf: WaitTimeoutError })
  t.like(e1, { name: 'WaitTimeoutError', code: 'ERR_SUBREAPER_WAIT_TIMEOUT', pid, timeout: 50 })
  const e2 = await t.throwsAsync(monitor.wait(pid, { timeout: 20 }), { instanceOf: WaitTimeoutError })
  t.like(e2, { pid, timeout: 20 })
  await t.throwsAsync(monitor.wait(pid, { timeout: 0 }), { instanceOf: WaitTimeoutError })
  t.not(readStat(pid), undefined, 'the child still runs')
  t.is(child.exitCode, null)
  // A generous timeout does not get in the way of the exit.
  const later = monitor.wait(pid, { timeout: 60_000 })
  const laterByChild = monitor.wait(child, { timeout: 60_000 })
  child.kill('SIGKILL')
  t.like(await later, { status: 137, signal: 'SIGKILL' })
  t.like(await laterByChild, { status: 137, signal: 'SIGKILL' })
  // Timed-out and aborted waits leave nothing registered in the engine.
  t.true(await until(() => reaperStats().pendingWaits === 0, 10_000))
})

test.serial('NotAChildError: this process, pid 1, the parent, a sibling, an unused pid', async (t) => {
  // A grandchild: a sibling of our children, not our child (no subreaper mode in this file).
  const sh = spawn('sh', ['-c', 'sleep 30 & echo $!; wait $!'], { stdio: ['ignore', 'pipe', 'ignore'] })
  const [line] = (await once(sh.stdout!, 'data')) as [Buffer]
  const grandchild = Number(line.toString().trim())
  t.true(grandchild > 0)
  // The kernel hands out pids below pid_max only: this one is nobody's now and never was. (A
  // pid merely free now may have been a child of this process a moment ago, and wait()
  // rightly answers with that recent exit: seen once, beside a second run of the suite.)
  const unused = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'))
  for (const pid of [process.pid, 1, process.ppid, grandchild, unused]) {
    const err = await t.throwsAsync(monitor.wait(pid), { instanceOf: NotAChildError }, `pid ${pid}`)
    t.like(err, { name: 'NotAChildError', code: 'ERR_SUBREAPER_NOT_A_CHILD', pid })
    t.regex(err!.message, new RegExp(`pid ${pid} is not a child`))
  }
  process.kill(grandchild, 'SIGKILL')
  const exit = await monitor.wait(sh)
  t.like(exit, { status: 137, code: 137, signal: null }, 'sh exits with the status of its killed sleep')
})

/** The events of a ChildProcess whose spawn fails, as a comparable list. */
function failureEvents(child: ChildProcess): Promise<Array<[string, unknown[]]>> {
  const events: Array<[string, unknown[]]> = []
  for (const name of ['spawn', 'error', 'exit', 'close']) {
    child.on(name, (...args: unknown[]) => {
      events.push([
        name,
        args.map((a) => {
          if (!(a instanceof Error)) return a
          const e = a as NodeJS.ErrnoException & { spawnargs?: string[] }
          return {
            name: e.name,
            message: e.message,
            code: e.code,
            errno: e.errno,
            syscall: e.syscall,
            path: e.path,
            spawnargs: e.spawnargs,
          }
        }),
      ])
    })
  }
  return sleep(200).then(() => events)
}

test.serial('start of a missing command: the same ENOENT error event as child_process, and wait rejects with it', async (t) => {
  const cmd = 'subreaper-no-such-command-xyz'
  const plain = spawn(cmd, ['a', 'b'])
  const plainEvents = failureEvents(plain)
  const started = monitor.start(cmd, ['a', 'b'])
  const emitted = once(started, 'error') as Promise<[Error]>
  const startedEvents = failureEvents(started)
  const early = monitor.wait(started)
  t.is(started.pid, undefined)
  const [errorEvent] = await emitted
  const earlyErr = await t.throwsAsync(early)
  t.is(earlyErr, errorEvent, 'a wait made before the error event rejects with that very error')
  const lateErr = await t.throwsAsync(monitor.wait(started))
  t.like(lateErr, {
    code: 'ENOENT',
    errno: constants.errno.ENOENT * -1,
    syscall: `spawn ${cmd}`,
    path: cmd,
    message: `spawn ${cmd} ENOENT`,
  })
  t.deepEqual((lateErr as { spawnargs?: string[] }).spawnargs, ['a', 'b'])
  const [pe, se] = await Promise.all([plainEvents, startedEvents])
  t.deepEqual(se, pe, 'monitor.start emits exactly what child_process.spawn emits')
  t.is(se.filter(([n]) => n === 'error').length, 1)
  t.like((se.find(([n]) => n === 'error')![1] as unknown[])[0], { code: 'ENOENT' })
  // Healthy afterwards.
  const ok = monitor.start('sh', ['-c', 'exit 5'])
  t.like(await monitor.wait(ok), { status: 5 })
})

test.serial('many waits on one child all settle with the same exit', async (t) => {
  const child = monitor.start('sh', ['-c', 'sleep 0.1; exit 33'])
  const id = idOf(child)
  const waits = [...Array.from({ length: 20 }, () => monitor.wait(child)), ...Array.from({ length: 20 }, () => monitor.wait(child.pid!))]
  const exits = await Promise.all(waits)
  t.true(exits.every((e) => isExitOf(e, id) && e.status === 33))
  t.deepEqual(new Set(exits.map((e) => e.timestamp)).size, 1, 'one exit, seen by all')
})
