// Subreaper mode: orphaned grandchildren are re-parented to this process, reaped by the engine,
// broadcast (with their command name) and waitable; no zombie is left.
import test from 'ava'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { constants, tmpdir } from 'node:os'
import { join } from 'node:path'

import { isSubreaper, monitor, reaperStats, setSubreaper, type Exit, type Subscription } from 'subreaper'

import { identify, identityOf, START_TIME_SLACK_MS, ticksToEpochMs, type ProcessId } from './fixtures/process-identity.mjs'
import { fixture, until } from './helpers.ts'
import { delivered, idOf, noLiveChildren, noZombies, Recorder, track } from './procs.ts'
import { runNode } from './fixtures/reliability-lib.ts'
import { readStat } from './proc-stat.mjs'

const rec = new Recorder()

test.before(() => {
  setSubreaper(true)
})

test.after.always('no zombie, no live child; subreaper mode off again', async (t) => {
  rec.unsubscribe()
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
  t.deepEqual(rec.errors, [])
  setSubreaper(false)
  t.false(isSubreaper())
})

// Prints the last background job's pid and start time (field 22 of its /proc stat) with
// builtins only: dash reaps in `wait` and while it waits for a foreground command, `$(...)`
// included (wait4(-1) takes any child), so a job stays unreaped, and the two name it, as long
// as its shell has run no foreground command since it started it.
const ECHO_JOB = 'read -r s </proc/$!/stat; set -- $s; echo $! ${22}'
const echoed = (out: string): ProcessId[] =>
  out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').map(Number) as [number, number])
    .map(([pid, ticks]) => identityOf(pid, ticks))

/** Runs `sh -c script` with monitor.start and returns the processes it printed (ECHO_JOB) and its own exit. */
async function orphansOf(script: string) {
  const sh = monitor.start('sh', ['-c', script.replaceAll('echo $!', ECHO_JOB)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const ev = track(sh)
  const exit = await monitor.wait(sh)
  await ev.closed
  const ids = echoed(ev.stdout)
  return { sh, exit, ids, pids: ids.map((id) => id.pid) }
}

test.serial('isSubreaper() is true after setSubreaper(true)', (t) => {
  t.true(isSubreaper())
})

test.serial("sh -c 'sleep 0.3 & exit 0': the orphan's exit is broadcast with comm sleep, and no zombie remains", async (t) => {
  const { sh, exit, ids, pids } = await orphansOf('sleep 0.3 >/dev/null 2>&1 & echo $!; exit 0')
  t.like(exit, { status: 0, comm: 'sh' })
  t.is(pids.length, 1)
  const orphan = pids[0]!
  t.not(orphan, sh.pid)
  const byWait = await monitor.wait(orphan)
  t.like(byWait, { pid: orphan, status: 0, code: 0, signal: null, comm: 'sleep', reapedBy: 'subreaper' })
  const [seen] = await rec.waitFor(ids)
  t.like(seen, { pid: orphan, status: 0, comm: 'sleep', reapedBy: 'subreaper' })
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  t.is(rec.of(ids[0]!).length, 1, 'broadcast once')
  t.is(readStat(orphan), undefined, 'reaped: gone from the process table')
  t.deepEqual(await noZombies(), [])
})

// About 0.3 s of CPU in dash, from builtins only (no child of its own to account for).
const BURN = 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'

test.serial(
  "usage per exit: a CPU-bound orphan the engine reaps carries wait4's figures; a CPU-bound child_process child, reaped by libuv, carries none (null, not zeros)",
  async (t) => {
    const { ids } = await orphansOf(`sh -c '${BURN}' >/dev/null 2>&1 & echo $!; exit 0`)
    const [orphan] = await rec.waitFor(ids)
    t.is(orphan?.reapedBy, 'subreaper')
    const ru = orphan?.rusage
    if (!ru) return t.fail(`the engine reaped it, and it has no usage: ${JSON.stringify(orphan)}`)
    t.true(ru.userCPUTime + ru.systemCPUTime >= 20_000, `a CPU-bound orphan used under 20 ms of CPU? ${JSON.stringify(ru)}`)
    t.true(ru.maxRSS !== null && ru.maxRSS > 0, 'maxRSS from wait4')
    t.true(ru.minorFaults > 0, 'minor faults from wait4')
    t.true(Number.isInteger(ru.voluntaryContextSwitches) && Number.isInteger(ru.involuntaryContextSwitches), 'context switches from wait4')

    const child = execFile('sh', ['-c', BURN])
    const id = idOf(child)
    await once(child, 'exit')
    const [exit] = await rec.waitFor([id])
    t.is(exit?.reapedBy, 'owner')
    // libuv's waitpid takes the usage with the zombie; only where libuv was late (the engine
    // then announces the exit from the zombie) does it carry the zombie's figures.
    const late = exit?.rusage
    if (late) {
      t.true(late.userCPUTime + late.systemCPUTime >= 20_000, `the zombie's reading shows under 20 ms of CPU: ${JSON.stringify(late)}`)
      t.is(late.maxRSS, null, 'a zombie has no maximum RSS to read')
    } else {
      t.is(late, null)
    }
  },
)

test.serial('20 orphans at once are all reaped and broadcast', async (t) => {
  const { ids } = await orphansOf('for i in $(seq 20); do sleep 1 >/dev/null 2>&1 & echo $!; done; exit 0')
  t.is(ids.length, 20)
  const exits = await rec.waitFor(ids)
  t.true(exits.every((e) => e !== undefined && e.status === 0 && e.comm === 'sleep' && e.reapedBy === 'subreaper'))
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  t.deepEqual(
    rec.counts(ids),
    ids.map(() => 1),
  )
  t.deepEqual(await noZombies(), [])
})

test.serial('an orphan killed by a signal, and one exiting with a code', async (t) => {
  const { ids, pids } = await orphansOf('sleep 30 >/dev/null 2>&1 & echo $!; (sleep 0.3; exit 7) >/dev/null 2>&1 & echo $!; exit 3')
  t.is(pids.length, 2)
  const [sleeper, subshell] = pids as [number, number]
  t.is(readStat(sleeper)?.ppid, process.pid, 're-parented to us')
  const pending = monitor.wait(sleeper)
  process.kill(sleeper, 'SIGTERM')
  t.like(await pending, { pid: sleeper, status: 128 + constants.signals.SIGTERM, signal: 'SIGTERM', code: null, comm: 'sleep' })
  t.like(await monitor.wait(subshell), { pid: subshell, status: 7, code: 7 })
  const seen = await rec.waitFor(ids)
  t.like(seen[0], { signal: 'SIGTERM' })
  t.like(seen[1], { status: 7 })
})

test.serial('orphans two levels down, and orphans of an execFile child whose callback still fires once', async (t) => {
  let calls = 0
  const out = await new Promise<string>((resolve, reject) => {
    const inner = ECHO_JOB.replaceAll('$', '\\$').replaceAll('"', '\\"')
    execFile(
      'sh',
      ['-c', `sh -c "sleep 0.3 >/dev/null 2>&1 & ${inner}"; sleep 0.3 >/dev/null 2>&1 & ${ECHO_JOB}; exit 0`],
      (err, stdout) => {
        calls++
        if (err) reject(err)
        else resolve(stdout)
      },
    )
  })
  const ids = echoed(out)
  t.is(ids.length, 2)
  const exits = await rec.waitFor(ids)
  t.true(exits.every((e) => e?.status === 0 && e.comm === 'sleep'))
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  t.is(calls, 1)
  t.deepEqual(await noZombies(), [])
})

test.serial('setSubreaper(false) then true again', (t) => {
  setSubreaper(false)
  t.false(isSubreaper())
  setSubreaper(true)
  t.true(isSubreaper())
})

test.serial(
  'a process that is not a subreaper does not adopt (NotAChildError); its orphan goes up to us, the nearest subreaper',
  async (t) => {
    const script = `
    import { execFileSync } from 'node:child_process'
    import { isSubreaper, monitor } from 'subreaper'
    import { readStat } from './__test__/proc-stat.mjs'
    const pid = Number(execFileSync('sh', ['-c', 'sleep 60 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).trim())
    const ppid = readStat(pid).ppid
    let error
    try { await monitor.wait(pid) } catch (err) { error = { name: err.name, code: err.code } }
    console.log(JSON.stringify({ pid, ppid, subreaper: isSubreaper(), error }))
  `
    const run = await runNode(['--input-type=module', '-e', script])
    t.false(run.timedOut)
    t.is(run.code, 0, run.stderr)
    const out = JSON.parse(run.stdout) as { pid: number; ppid: number; subreaper: boolean; error?: { name: string; code: string } }
    t.false(out.subreaper)
    t.deepEqual(out.error, { name: 'NotAChildError', code: 'ERR_SUBREAPER_NOT_A_CHILD' })
    t.is(out.ppid, process.pid, 'the orphan was re-parented to this process, not to init')
    t.is(readStat(out.pid)?.ppid, process.pid)
    const id = identify(out.pid)! // ours, alive: its pid and start time name it
    const waited = monitor.wait(out.pid)
    process.kill(out.pid, 'SIGTERM')
    t.like(await waited, { pid: out.pid, signal: 'SIGTERM', comm: 'sleep', reapedBy: 'subreaper' })
    const [exit] = await rec.waitFor([id])
    t.like(exit, { pid: out.pid, signal: 'SIGTERM', comm: 'sleep', reapedBy: 'subreaper' })
    t.deepEqual(await noZombies(), [])
  },
)

test.serial(
  '600 orphans queued while the loop is blocked reach every callback subscriber in turns: each exit once, in one order, as one frozen object; one that unsubscribes in its callback gets nothing after',
  async (t) => {
    const N = 600
    const STOP_AT = 150
    const a: Exit[] = []
    const b: Exit[] = []
    const c: Exit[] = []
    const options = { bufferSize: 1024, lagTimeout: 60_000 }
    const subA = monitor.subscribe((e) => a.push(e), options)
    const subB: Subscription = monitor.subscribe((e) => {
      b.push(e)
      if (b.length === STOP_AT) subB.unsubscribe()
    }, options)
    const subC = monitor.subscribe((e) => c.push(e), options)
    const recorded = reaperStats().exitsRecorded
    // sh reaps background jobs only in `wait` or after a foreground job: its N subshells stay
    // zombies until it exits, and are then re-parented here all at once.
    const sh = monitor.start('sh', ['-c', `for i in $(seq ${N}); do (exit $((i % 200))) & done; exit 0`])
    // The loop stays blocked until the engine has recorded every exit: they wait in the
    // queues, several delivery turns' worth, for the loop to come back.
    const nap = new Int32Array(new SharedArrayBuffer(4))
    const deadline = Date.now() + 30_000
    // An exit is counted as recorded a moment before the engine hands its batch to the queues:
    // wait for both.
    const queued = () => reaperStats().exitsRecorded >= recorded + N + 1 && subA.pending >= N + 1
    while (!queued() && Date.now() < deadline) Atomics.wait(nap, 0, 0, 1)
    t.is(reaperStats().exitsRecorded, recorded + N + 1, 'the orphans and sh recorded while the loop was blocked')
    t.is(subA.pending, N + 1, 'all queued for A')
    await until(() => a.length >= N + 1 && c.length >= N + 1, 30_000)
    t.is(a.length, N + 1)
    t.true(
      a.every((e, i) => e === c[i]),
      'A and C got the same objects in the same order',
    )
    t.true(Object.isFrozen(a[0]) && Object.isFrozen(a[0]!.rusage))
    t.is(new Set(a.map((e) => e.pid)).size, N + 1, 'each exit once')
    const orphans = a.filter((e) => e.pid !== sh.pid)
    t.true(orphans.every((e) => e.reapedBy === 'subreaper' && e.comm === 'sh'))
    t.deepEqual(
      orphans.map((e) => e.status).sort((x, y) => x - y),
      Array.from({ length: N }, (_, i) => i + 1)
        .map((i) => i % 200)
        .sort((x, y) => x - y),
      'every status once per subshell',
    )
    t.is(b.length, STOP_AT, 'nothing after unsubscribe, though more of the turn was queued for it')
    t.true(
      b.every((e, i) => e === a[i]),
      'B got the first of the same exits',
    )
    t.true(subB.closed)
    subA.unsubscribe()
    subC.unsubscribe()
    t.deepEqual(await noZombies(), [])
  },
)

/** Whether the kernel serves taskstats to a process like this one: CAP_NET_ADMIN in the initial user namespace. */
function mayAskTaskstats(): boolean {
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'
  const initialUserns = readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/).join(' ') === '0 0 4294967295'
  return (BigInt(`0x${capEff}`) & (1n << 12n)) !== 0n && initialUserns
}

interface NamedOrphan {
  pid: number
  ticks: number
  procComm: string
  exit?: { comm: string | null; startTime: number | null; status: number; reapedBy: string }
}

for (const [label, env, expected] of [
  ['by default', {}, mayAskTaskstats() ? 'taskstats' : 'proc'],
  ['with SUBREAPER_NO_TASKSTATS=1', { SUBREAPER_NO_TASKSTATS: '1' }, 'proc'],
] as const) {
  test(`${label}: 30 orphans (a third named 'odd (name) x') carry the name and start time /proc gave them; names from ${expected}`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'subreaper-names-'))
    try {
      const run = await runNode([fixture('orphan-names.mjs'), dir], { env: { ...process.env, ...env } })
      t.is(run.code, 0, run.stderr)
      const out = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as { namesFrom: string; orphans: NamedOrphan[] }
      t.is(out.namesFrom, expected)
      t.is(out.orphans.length, 30)
      t.is(out.orphans.filter((o) => o.procComm === 'odd (name) x').length, 10)
      for (const o of out.orphans) {
        t.truthy(o.exit, `pid ${o.pid}: no exit`)
        t.like(o.exit, { comm: o.procComm, status: 0, reapedBy: 'subreaper' }, `pid ${o.pid}`)
        const off = Math.abs((o.exit?.startTime ?? Number.NaN) - ticksToEpochMs(o.ticks))
        t.true(off <= START_TIME_SLACK_MS, `pid ${o.pid}: start time off by ${off} ms`)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
}
