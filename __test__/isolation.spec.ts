// No one else's process: a process that is not our child — re-parented away from us, a
// grandchild whose parent reaps it, our own parent and siblings — is never waited
// (NotAChildError), never reported to a subscriber, never returned by monitor.reap(), and the
// CLI's leftover killing never signals it. Signals by (pid, start time) go through pidfds: a
// recycled pid — really recycled here, by cycling through the pid space — is never hit.
//
// This file does not use subreaper mode: orphans of our children go to init (or to whichever
// ancestor is a subreaper), not to us.
import test from 'ava'
import { execFile, spawn } from 'node:child_process'
import { constants } from 'node:os'
import { createRequire } from 'node:module'
import { join } from 'node:path'

import { isSubreaper, monitor, NotAChildError, reaperStats, type Exit } from 'subreaper'

import { bindingPath, cliPath, openFds, root, until } from './helpers.ts'
import { delivered, idOf, noLiveChildren, noZombies, Recorder, Since, track } from './procs.ts'
import { buildHelper, type Helper } from './fixtures/reliability-lib.ts'
import { children, readStat } from './proc-stat.mjs'
import { identify, identityOf, isExitOf } from './fixtures/process-identity.mjs'

interface Binding {
  signalProcess(pid: number, startTime: number, signal: number): boolean
  processStartTime(pid: number): number | null
}
// The addon the package loaded (the same file, so the same module instance).
const native = createRequire(join(root, 'package.json'))(bindingPath) as Binding

const rec = new Recorder()
let helper: Helper
let fdsBefore = 0
/** Foreign processes this file made (re-parented away): killed by the test itself at the end. */
const foreign: Array<{ pid: number; startTicks: number }> = []

test.before(() => {
  helper = buildHelper()
  fdsBefore = openFds()
})

test.after.always('no zombie, no stray process, no leaked fd; the foreign processes made here are gone', async (t) => {
  for (const f of foreign) {
    if (readStat(f.pid)?.startTicks === f.startTicks) process.kill(f.pid, 'SIGKILL')
  }
  t.true(await until(() => foreign.every((f) => readStat(f.pid)?.startTicks !== f.startTicks || readStat(f.pid)?.state === 'Z'), 10_000))
  rec.unsubscribe()
  helper?.remove()
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
  t.deepEqual(rec.errors, [])
  t.true(await until(() => reaperStats().pendingWaits === 0, 10_000))
  t.true(await until(() => openFds() <= fdsBefore, 5000), `fds ${fdsBefore} -> ${openFds()}`)
})

/** `sh -c 'CMD & echo $!'`: the background process's pid, once sh has exited. */
async function background(cmd: string): Promise<number> {
  const out = await new Promise<string>((resolve, reject) =>
    execFile('sh', ['-c', `${cmd} >/dev/null 2>&1 & echo $!`], (err, stdout) => (err ? reject(err) : resolve(stdout))),
  )
  return Number(out.trim())
}

test('a process re-parented away from us (double fork, no subreaper mode) is never waited, reaped or reported', async (t) => {
  const seen = new Since(rec)
  t.false(isSubreaper())
  const pid = await background(`${helper.path} sleep 60000`)
  const st = readStat(pid)!
  const id = identityOf(pid, st.startTicks)
  foreign.push({ pid, startTicks: st.startTicks })
  t.not(st.ppid, process.pid, 'not our child')
  for (const options of [undefined, { timeout: 60_000 }, { signal: new AbortController().signal }]) {
    const err = await t.throwsAsync(monitor.wait(pid, options), { instanceOf: NotAChildError })
    t.is((err as NotAChildError).pid, pid)
  }
  t.false(
    (await monitor.reap()).some((e) => isExitOf(e, id)),
    'monitor.reap() does not take it',
  )
  // It ends (killed here, by the test): its exit is its parent's, never ours.
  process.kill(pid, 'SIGKILL')
  t.true(await until(() => readStat(pid)?.startTicks !== st.startTicks, 10_000), 'gone (reaped by its own parent)')
  t.true(await delivered(rec), 'every exit the engine recorded so far has been delivered')
  t.deepEqual(seen.of(id), [], 'no subscriber saw its exit')
  await t.throwsAsync(monitor.wait(pid), { instanceOf: NotAChildError }, 'and no exit of it is known')
})

test('a grandchild whose parent reaps it: not waitable by us, and its exit is its parent’s', async (t) => {
  const seen = new Since(rec)
  const sh = spawn('sh', ['-c', `${helper.path} sleep 60000 & echo $!; wait $!; exit 3`], { stdio: ['ignore', 'pipe', 'ignore'] })
  const ev = track(sh, { raw: true })
  let out = ''
  sh.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  t.true(await until(() => out.includes('\n'), 10_000))
  const grandchild = Number(out.trim())
  t.is(readStat(grandchild)?.ppid, sh.pid)
  const ids = [idOf(sh), identify(grandchild)!] // both alive: pid and start time name them
  await t.throwsAsync(monitor.wait(grandchild), { instanceOf: NotAChildError })
  const shExit = monitor.wait(sh)
  process.kill(grandchild, 'SIGTERM')
  t.like(await shExit, { pid: sh.pid, status: 3 })
  await ev.closed
  await seen.waitFor([ids[0]!])
  t.true(await delivered(rec))
  t.deepEqual(seen.counts(ids), [1, 0], 'our child once; its child never')
})

test('our parent, our siblings and init are not ours to wait for', async (t) => {
  const siblings: number[] = []
  for (const pid of [1, process.ppid, process.pid]) {
    await t.throwsAsync(monitor.wait(pid), { instanceOf: NotAChildError })
  }
  // The test runner's other workers (our parent's other children), if any run now.
  const { live, zombies } = children(process.ppid)
  siblings.push(...[...live, ...zombies].filter((pid) => pid !== process.pid))
  for (const pid of siblings) {
    await t.throwsAsync(monitor.wait(pid, { timeout: 60_000 }), { instanceOf: NotAChildError })
  }
  const reaped = await monitor.reap()
  t.false(reaped.some((e) => siblings.includes(e.pid) || e.pid === process.ppid || e.pid === 1))
  t.log(`${siblings.length} sibling process(es) checked`)
})

test('the CLI terminates the leftovers of its command, never a process outside its tree', async (t) => {
  // Our own child, alive while the CLI runs: the CLI's sibling, not its descendant.
  const sibling = spawn(helper.path, ['sleep', '60000'], { stdio: 'ignore' })
  const siblingStart = readStat(sibling.pid!)!.startTicks
  const siblingExit = monitor.wait(sibling)
  const cli = spawn(
    cliPath,
    ['--grace', '300ms', '--report=json', '--', 'sh', '-c', `${helper.path} sleep 60000 >/dev/null & echo $!; exit 0`],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const ev = track(cli)
  const exit = await monitor.wait(cli)
  await ev.closed
  t.is(exit.status, 0, ev.stderr)
  const leftover = Number(ev.stdout.trim())
  const report = JSON.parse(ev.stderr.slice(ev.stderr.indexOf('{'))) as {
    processes: Array<{ pid: number; leftover: boolean; action: string | null }>
  }
  t.like(
    report.processes.find((p) => p.pid === leftover),
    { leftover: true, action: 'terminated' },
    'its own leftover was terminated',
  )
  t.false(
    report.processes.some((p) => p.pid === sibling.pid),
    'the sibling is not in its report',
  )
  const st = readStat(sibling.pid!)
  t.is(st?.startTicks, siblingStart, 'the sibling still exists')
  t.not(st?.state, 'Z', 'and runs')
  sibling.kill('SIGTERM')
  t.like(await siblingExit, { signal: 'SIGTERM' })
})

test('signalProcess(pid, start time) refuses a wrong start time and a reaped child; it signals only the very process', async (t) => {
  const child = monitor.start(helper.path, ['sleep', '60000'], { stdio: 'ignore' })
  const pid = child.pid!
  const start = native.processStartTime(pid)!
  t.is(start, readStat(pid)!.startTicks)
  for (const wrong of [start + 1, start - 1, 0]) {
    t.false(native.signalProcess(pid, wrong, constants.signals.SIGKILL), `start time ${wrong} refused`)
  }
  // (That no SIGKILL landed shows below: the process dies of the SIGTERM sent next.)
  t.is(readStat(pid)?.startTicks, start, 'the process lives')
  t.not(readStat(pid)?.state, 'Z')
  t.true(native.signalProcess(pid, start, constants.signals.SIGTERM), 'the right identity is signalled')
  t.like(await monitor.wait(child), { pid, signal: 'SIGTERM' })
  await until(() => readStat(pid)?.startTicks !== start, 10_000)
  t.false(native.signalProcess(pid, start, constants.signals.SIGKILL), 'once reaped: refused')
})

test('a really recycled pid: the process now holding it is not signalled with the old identity', async (t) => {
  t.timeout(120_000)
  // A child of ours: its pid and start time, then its exit.
  const old = monitor.start(helper.path, ['exit', '0'], { stdio: 'ignore' })
  const pid = old.pid!
  const oldStart = native.processStartTime(pid) ?? readStat(pid)?.startTicks
  const oldExit = await monitor.wait(old)
  t.true(await until(() => readStat(pid)?.startTicks !== oldStart, 10_000), 'reaped')
  if (oldStart == null) {
    t.log('the child exited before its start time could be read; nothing to recycle')
    t.pass()
    return
  }
  // Cycle through the pid space until the pid comes round again, and keep that process.
  const recycler = spawn(helper.path, ['recycle', String(pid), String(4 * 32768)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const recyclerExit = monitor.wait(recycler)
  let out = ''
  recycler.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  t.true(await until(() => out.includes('\n'), 110_000, 20), 'the recycler answered')
  if (out.trim() === 'none') {
    t.log(`pid ${pid} was not handed out again within ${4 * 32768} tries (another process took it first): nothing to check`)
    t.like(await recyclerExit, { status: 0 })
    return
  }
  t.is(Number(out.split('\n')[0]), pid)
  const now = readStat(pid)!
  t.not(now.startTicks, oldStart, 'a different process holds the pid')
  t.is(now.ppid, recycler.pid!, 'the recycler’s child (not ours)')
  t.false(native.signalProcess(pid, oldStart, constants.signals.SIGKILL), 'the old identity is refused')
  // (That no SIGKILL landed shows at the end: the process dies of the SIGTERM sent then.)
  t.is(readStat(pid)?.startTicks, now.startTicks, 'the new process lives')
  t.not(readStat(pid)?.state, 'Z')
  // wait(pid) does not wait for the new process: it is not our child. (The old child's exit
  // may still be in the recent-exit table: then that is the answer, at once.)
  const answer = await monitor.wait(pid, { timeout: 60_000 }).catch((err: unknown) => err)
  t.true(answer instanceof NotAChildError || (answer as Exit).startTime === oldExit.startTime, String(answer))
  // Clean up through the right identity: the recycler reaps it, says how it ended, and exits.
  t.true(native.signalProcess(pid, now.startTicks, constants.signals.SIGTERM))
  t.like(await recyclerExit, { status: 0 })
  await until(() => /^reaped /m.test(out), 10_000)
  t.regex(out, /^reaped 143$/m, 'it died of the SIGTERM: the refused SIGKILL never reached it')
  t.log(`pid ${pid} recycled: start time ${oldStart} -> ${now.startTicks}`)
})
