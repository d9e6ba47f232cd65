// Node keeps working: with the reaper loaded and a subscriber active, every child_process API
// gets each exit and close event exactly once, with the right code, signal and complete output,
// and the subscriber sees the same exits, once each.
import test from 'ava'
import { exec, execFile, execFileSync, execSync, fork, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { constants } from 'node:os'
import { promisify } from 'node:util'

import { describeChild, monitor } from 'subreaper'

import { fixture, until } from './helpers.ts'
import { delivered, idOf, noLiveChildren, noZombies, Recorder, Since, track } from './procs.ts'
import { orUnknown } from './kernel.mjs'
import { readStat } from './proc-stat.mjs'
import { unstartedIdentity } from './fixtures/process-identity.mjs'

const MiB = 1024 * 1024
const rec = new Recorder()

test.after.always('no zombie, no live child, subscriber closed', async (t) => {
  rec.unsubscribe()
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
  t.deepEqual(rec.errors, [])
})

/** Wraps a callback to count its calls. */
function counted<A extends unknown[]>(fn: (...args: A) => void): ((...args: A) => void) & { calls: number } {
  const wrapped = Object.assign(
    (...args: A) => {
      wrapped.calls++
      fn(...args)
    },
    { calls: 0 },
  )
  return wrapped
}

test.serial('spawn: every exit code gives exit and close once, full output, one broadcast', async (t) => {
  const codes = [0, 1, 2, 42, 126, 255]
  const children = codes.map((code) => spawn('sh', ['-c', `echo out-${code}; echo err-${code} >&2; exit ${code}`]))
  const events = children.map((c) => track(c))
  await Promise.all(events.map((e) => e.closed))
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  const pids = children.map((c) => c.pid)
  const exits = await rec.waitFor(children)
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  codes.forEach((code, i) => {
    const ev = events[i]!
    t.deepEqual(ev.exits, [[code, null]], `exit events of code ${code}`)
    t.deepEqual(ev.closes, [[code, null]], `close events of code ${code}`)
    t.is(ev.stdout, `out-${code}\n`)
    t.is(ev.stderr, `err-${code}\n`)
    t.like(exits[i], { pid: pids[i], status: code, code, signal: null, coreDumped: false })
  })
  t.deepEqual(
    rec.counts(children),
    codes.map(() => 1),
    'each exit broadcast exactly once',
  )
})

test.serial('spawn killed by signals: signal name in exit/close, status 128+n for subscribers', async (t) => {
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGALRM']
  const children = signals.map(() => spawn('sleep', ['30']))
  const events = children.map((c) => track(c))
  await Promise.all(children.map((c) => once(c, 'spawn')))
  children.forEach((c, i) => t.true(c.kill(signals[i])))
  await Promise.all(events.map((e) => e.closed))
  const pids = children.map((c) => c.pid)
  const exits = await rec.waitFor(children)
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  signals.forEach((sig, i) => {
    t.deepEqual(events[i]!.exits, [[null, sig]], `exit events of ${sig}`)
    t.deepEqual(events[i]!.closes, [[null, sig]], `close events of ${sig}`)
    t.is(children[i]!.signalCode, sig)
    t.like(exits[i], { pid: pids[i], status: 128 + constants.signals[sig], code: null, signal: sig })
  })
  t.deepEqual(
    rec.counts(children),
    signals.map(() => 1),
  )
})

test.serial('a child that kills itself reports the signal', async (t) => {
  const child = spawn('sh', ['-c', 'kill -USR2 $$; sleep 5'])
  const ev = track(child)
  await ev.closed
  const [exit] = await rec.waitFor([child])
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  t.deepEqual(ev.exits, [[null, 'SIGUSR2']])
  t.deepEqual(ev.closes, [[null, 'SIGUSR2']])
  t.like(exit, { status: 128 + constants.signals.SIGUSR2, signal: 'SIGUSR2', code: null })
  t.is(rec.of(child).length, 1)
})

test.serial('exec: callback once, with stdout, stderr and the exit code', async (t) => {
  let child!: ChildProcess
  const result = await new Promise<{ err: (Error & { code?: unknown }) | null; stdout: string; stderr: string; calls: () => number }>(
    (resolve) => {
      const cb = counted((err: Error | null, stdout: string, stderr: string) => resolve({ err, stdout, stderr, calls: () => cb.calls }))
      child = exec('echo to-out; echo to-err >&2; exit 4', cb)
      idOf(child)
    },
  )
  const ok = await promisify(exec)('printf "%s" "$((6 * 7))"')
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  t.is(result.calls(), 1)
  t.is(result.err?.code, 4)
  t.is(result.stdout, 'to-out\n')
  t.is(result.stderr, 'to-err\n')
  t.is(ok.stdout, '42')
  const [exit] = await rec.waitFor([child])
  t.like(exit, { status: 4, code: 4, signal: null })
})

test.serial('execFile: 1 MiB of stdout and 1 MiB of stderr arrive complete', async (t) => {
  const script = `head -c ${MiB} /dev/zero | tr '\\0' x; head -c ${MiB} /dev/zero | tr '\\0' y >&2; exit 7`
  let child!: ChildProcess
  const got = await new Promise<{ err: (Error & { code?: unknown }) | null; stdout: string; stderr: string; calls: () => number }>(
    (resolve) => {
      const cb = counted((err: Error | null, stdout: string, stderr: string) => resolve({ err, stdout, stderr, calls: () => cb.calls }))
      child = execFile('sh', ['-c', script], { maxBuffer: 8 * MiB }, cb)
      idOf(child)
    },
  )
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  t.is(got.calls(), 1)
  t.is(got.err?.code, 7)
  t.is(got.stdout.length, MiB)
  t.is(got.stderr.length, MiB)
  t.true(got.stdout === 'x'.repeat(MiB), 'stdout is all x')
  t.true(got.stderr === 'y'.repeat(MiB), 'stderr is all y')
  const [exit] = await rec.waitFor([child])
  t.like(exit, { status: 7 })
})

test.serial('spawn: 4 MiB through cat and 200,000 lines from seq arrive byte for byte', async (t) => {
  const input = Buffer.alloc(4 * MiB)
  for (let i = 0; i < input.length; i++) input[i] = (i * 31 + (i >> 11)) & 0xff
  const cat = spawn('cat')
  const chunks: Buffer[] = []
  cat.stdout.on('data', (c: Buffer) => chunks.push(c))
  const catEv = track(cat, { raw: true })
  cat.stdin.end(input)
  const seq = spawn('seq', ['1', '200000'])
  const seqEv = track(seq)
  await Promise.all([catEv.closed, seqEv.closed])
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  t.true(Buffer.concat(chunks).equals(input), 'cat echoed every byte')
  let expected = ''
  for (let i = 1; i <= 200000; i++) expected += `${i}\n`
  t.true(seqEv.stdout === expected, 'seq output complete')
  t.deepEqual(catEv.exits, [[0, null]])
  t.deepEqual(catEv.closes, [[0, null]])
  t.deepEqual(seqEv.exits, [[0, null]])
  t.deepEqual(seqEv.closes, [[0, null]])
  const exits = await rec.waitFor([cat, seq])
  t.like(exits[0], { status: 0, comm: 'cat' })
  t.like(exits[1], { status: 0, comm: 'seq' })
})

test.serial('fork: IPC message, output and exit once, with codes and a signal', async (t) => {
  const cases: Array<[number, NodeJS.Signals | undefined]> = [
    [0, undefined],
    [3, undefined],
    [255, undefined],
    [0, 'SIGTERM'],
  ]
  const children = cases.map(([code, sig]) =>
    fork(fixture('fork-child.cjs'), sig ? [String(code), sig] : [String(code)], { silent: true, execArgv: [] }),
  )
  const messages = children.map((c) => {
    const got: unknown[] = []
    c.on('message', (m) => got.push(m))
    return got
  })
  const events = children.map((c) => track(c))
  await Promise.all(events.map((e) => e.closed))
  const pids = children.map((c) => c.pid)
  const exits = await rec.waitFor(children)
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  cases.forEach(([code, sig], i) => {
    const pid = pids[i]!
    const expected: [number | null, NodeJS.Signals | null] = sig ? [null, sig] : [code, null]
    t.deepEqual(events[i]!.exits, [expected])
    t.deepEqual(events[i]!.closes, [expected])
    t.deepEqual(messages[i], [{ pid, argv: sig ? [String(code), sig] : [String(code)] }])
    t.is(events[i]!.stdout, `out ${pid}\n`)
    t.is(events[i]!.stderr, `err ${pid}\n`)
    t.like(exits[i], sig ? { status: 128 + constants.signals[sig], signal: sig } : { status: code, code })
  })
  t.deepEqual(
    rec.counts(children),
    cases.map(() => 1),
  )
})

test.serial('spawnSync: status, signal and 1 MiB of output; the subscriber sees the exit', async (t) => {
  // A synchronous spawn's pid is known once it was reaped: its exit has no start time, so it is
  // named by its pid among the exits without one recorded since this test began.
  const seen = new Since(rec)
  const startedAfter = Date.now()
  const big = spawnSync('sh', ['-c', `head -c ${MiB} /dev/zero | tr '\\0' z; exit 9`], { encoding: 'utf8', maxBuffer: 8 * MiB })
  t.is(big.status, 9)
  t.is(big.signal, null)
  t.is(big.error, undefined)
  t.true(big.stdout === 'z'.repeat(MiB))
  const killed = spawnSync('sh', ['-c', 'kill -KILL $$'])
  t.is(killed.status, null)
  t.is(killed.signal, 'SIGKILL')
  const ok = spawnSync('echo', ['sync'], { encoding: 'utf8' })
  t.is(ok.status, 0)
  t.is(ok.stdout, 'sync\n')
  const missing = spawnSync('subreaper-no-such-command-xyz')
  t.is((missing.error as NodeJS.ErrnoException | undefined)?.code, 'ENOENT')
  const ids = [big.pid, killed.pid, ok.pid].map((pid) => unstartedIdentity(pid, startedAfter, Date.now()))
  t.true(await seen.waitFor(ids))
  const exits = ids.map((id) => seen.of(id)[0])
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  // libuv's private loop reaps a synchronous child: where the kernel keeps no status for it
  // (before 6.15, no pidfds) and the engine looked too late, its status is lost (-1).
  t.like(exits[0], orUnknown(exits[0], { pid: big.pid, status: 9, code: 9 }))
  t.like(exits[1], orUnknown(exits[1], { pid: killed.pid, status: 128 + constants.signals.SIGKILL, signal: 'SIGKILL', code: null }))
  t.like(exits[2], orUnknown(exits[2], { pid: ok.pid, status: 0 }))
  t.deepEqual(seen.counts(ids), [1, 1, 1])
})

test.serial('execSync and execFileSync: output, and the thrown error of a failing command', async (t) => {
  const seen = new Since(rec) // synchronous spawns: see the spawnSync test
  const startedAfter = Date.now()
  t.is(execSync('echo one; echo two', { encoding: 'utf8' }), 'one\ntwo\n')
  t.is(execFileSync('printf', ['%s-%s', 'a', 'b'], { encoding: 'utf8' }), 'a-b')
  const big = execFileSync('sh', ['-c', `head -c ${MiB} /dev/zero`], { maxBuffer: 8 * MiB })
  t.is(big.length, MiB)
  const err1 = t.throws(() => execFileSync('sh', ['-c', 'echo partial; exit 5'], { encoding: 'utf8', stdio: 'pipe' })) as Error & {
    status: number
    pid: number
    stdout: string
  }
  t.is(err1.status, 5)
  t.is(err1.stdout, 'partial\n')
  const err2 = t.throws(() => execSync('kill -TERM $$', { stdio: 'pipe' })) as Error & { signal: string; pid: number }
  t.is(err2.signal, 'SIGTERM')
  const ids = [err1.pid, err2.pid].map((pid) => unstartedIdentity(pid, startedAfter, Date.now()))
  t.true(await seen.waitFor(ids))
  const exits = ids.map((id) => seen.of(id)[0])
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  t.like(exits[0], orUnknown(exits[0], { pid: err1.pid, status: 5, code: 5 }))
  t.like(exits[1], orUnknown(exits[1], { pid: err2.pid, status: 128 + constants.signals.SIGTERM, signal: 'SIGTERM' }))
  t.deepEqual(seen.counts(ids), [1, 1])
})

test.serial('100 execFile calls at once: each callback once, with its own output and code', async (t) => {
  const n = 100
  const calls = new Array<number>(n).fill(0)
  const children: ChildProcess[] = []
  const results = await Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<{ code: unknown; stdout: string }>((resolve) => {
          const child = execFile('sh', ['-c', `echo job-${i}; exit ${i % 4}`], (err, stdout) => {
            calls[i]!++
            resolve({ code: err ? (err as { code?: unknown }).code : 0, stdout })
          })
          idOf(child)
          children.push(child)
        }),
    ),
  )
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  t.deepEqual(calls, new Array<number>(n).fill(1))
  results.forEach((r, i) => {
    t.is(r.code, i % 4)
    t.is(r.stdout, `job-${i}\n`)
  })
  const exits = await rec.waitFor(children)
  t.deepEqual(
    exits.map((e) => e.status),
    Array.from({ length: n }, (_, i) => i % 4),
  )
  t.deepEqual(rec.counts(children), new Array<number>(n).fill(1))
})

test.serial('synchronous spawns in the middle of exiting async children lose nothing', async (t) => {
  const seen = new Since(rec) // synchronous spawns: see the spawnSync test
  const startedAfter = Date.now()
  const asyncChildren = Array.from({ length: 20 }, (_, i) => spawn('sh', ['-c', `sleep 0.0${i % 10}; exit ${i}`]))
  const events = asyncChildren.map((c) => track(c))
  const syncPids: number[] = []
  for (let i = 0; i < 10; i++) {
    const r = spawnSync('sh', ['-c', `exit ${100 + i}`])
    t.is(r.status, 100 + i)
    syncPids.push(r.pid)
  }
  await Promise.all(events.map((e) => e.closed))
  t.true(await delivered(rec), 'every exit recorded so far was delivered')
  events.forEach((ev, i) => {
    t.deepEqual(ev.exits, [[i, null]])
    t.deepEqual(ev.closes, [[i, null]])
  })
  const ids = [...asyncChildren.map(idOf), ...syncPids.map((pid) => unstartedIdentity(pid, startedAfter, Date.now()))]
  t.true(await seen.waitFor(ids))
  const exits = ids.map((id) => seen.of(id)[0]!)
  t.deepEqual(
    exits.map((e) => e.status),
    [...asyncChildren.map((_, i) => i), ...syncPids.map((_, i) => orUnknown(exits[20 + i], { pid: 0, status: 100 + i }).status)],
  )
  t.deepEqual(
    seen.counts(ids),
    ids.map(() => 1),
  )
})

test.serial('wait() works on children that child_process spawned, before and after they exit', async (t) => {
  const early = spawn('sh', ['-c', 'sleep 0.2; exit 12'])
  const late = spawn('sh', ['-c', 'exit 13'])
  const lateEv = track(late)
  const earlyExit = monitor.wait(early)
  await lateEv.closed
  t.like(await earlyExit, { pid: early.pid, status: 12 })
  t.like(await monitor.wait(late), { pid: late.pid, status: 13 })
  t.like(await monitor.wait(late.pid!), { pid: late.pid, status: 13 })
})

test('describeChild says what the engine holds for a child: declared by this environment while it runs, nothing once libuv has reaped and reported it', async (t) => {
  const child = spawn('sh', ['-c', 'read x; exit 3'], { stdio: ['pipe', 'ignore', 'ignore'] })
  const exited = once(child, 'exit')
  try {
    const tid = readStat('thread-self')!.pid
    t.regex(
      describeChild(child.pid!) ?? 'no entry',
      new RegExp(`^Declared \\{ owner: \\d+, tid: Some\\(${tid}\\), reports: true \\}, thread ${tid} alive; .*not seen as a zombie`),
    )
  } finally {
    child.stdin!.end()
  }
  t.deepEqual(await exited, [3, null])
  t.true(await until(() => describeChild(child.pid!) === null, 10_000), describeChild(child.pid!) ?? '')
  // pid_max is at most 2^22 on Linux: no process has this pid.
  t.is(describeChild(2 ** 31 - 1), null)
})
