// The messages a user reads, word for word, and the checks behind them: calls without their
// argument, kill's own wording, signals echoed back, start() taking what spawn takes,
// setSubreaper() refusing to guess, a closed Monitor refusing to subscribe, and the addon's
// errors arriving with their code (no message parsing on the way; their classes: errors.spec.ts).
import test from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'

import { isSubreaper, monitor, Monitor, MonitorClosedError, NotAChildError, setSubreaper, type Exit } from 'subreaper'

import { binding, until } from './helpers.ts'
import { delivered, noLiveChildren, noZombies, Recorder } from './procs.ts'

const PID_MESSAGE = 'pid must be a number (an integer from 1 to 2147483647) or a ChildProcess; got undefined'

test.after.always('nothing left behind', async (t) => {
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
  t.is(monitor.subscriptions, 0)
})

test('wait() with no argument names what it got and what it takes', async (t) => {
  const wait = monitor.wait as (...a: unknown[]) => Promise<Exit>
  await t.throwsAsync(wait(), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE', message: PID_MESSAGE })
})

test('kill() with no argument: the same words', (t) => {
  const kill = monitor.kill as (...a: unknown[]) => boolean
  t.throws(() => kill(), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE', message: PID_MESSAGE })
})

test('kill(1) says it cannot signal a pid that is not a descendant (not wait wording)', (t) => {
  const err = t.throws(() => monitor.kill(1), {
    instanceOf: NotAChildError,
    code: 'ERR_SUBREAPER_NOT_A_CHILD',
    message:
      'pid 1 is not a descendant of this process: only its children and their descendants ' +
      '(and, in subreaper or PID 1 mode, adopted orphans) can be signalled',
  })
  t.is((err as NotAChildError).pid, 1)
})

test('wait(1) keeps the wait wording', async (t) => {
  await t.throwsAsync(monitor.wait(1), {
    instanceOf: NotAChildError,
    code: 'ERR_SUBREAPER_NOT_A_CHILD',
    message:
      'pid 1 is not a child of this process, and no recent exit of it is known: ' +
      'only children (and, in subreaper or PID 1 mode, adopted orphans) can be waited for',
  })
})

test('kill(child, 999) and kill(child, "SIGNOPE") echo the signal they were given', async (t) => {
  const child = monitor.start('sleep', ['30'])
  try {
    t.throws(() => monitor.kill(child, 999), {
      instanceOf: TypeError,
      code: 'ERR_UNKNOWN_SIGNAL',
      message: "unknown signal 999: use a name such as 'SIGTERM' or a number from 0 to 64",
    })
    t.throws(() => monitor.kill(child, 'SIGNOPE' as NodeJS.Signals), {
      instanceOf: TypeError,
      code: 'ERR_UNKNOWN_SIGNAL',
      message: 'unknown signal "SIGNOPE": use a name such as \'SIGTERM\' or a number from 0 to 64',
    })
    t.true(monitor.kill(child, 'SIGKILL'), 'the child was left alive by the refused calls')
  } finally {
    t.like(await monitor.wait(child), { signal: 'SIGKILL' })
  }
})

/** What `fn` did with these arguments: the exit code of the child it started, or the error it threw. */
async function outcome(fn: (...a: unknown[]) => ChildProcess, args: unknown[]): Promise<unknown> {
  let child: ChildProcess
  try {
    child = fn(...args)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    return { threw: e.constructor.name, code: e.code, message: e.message }
  }
  const [code, signal] = await once(child, 'exit')
  return { code, signal }
}

const spawnShapes: unknown[][] = [
  ['true', null],
  ['true', null, {}],
  ['true', {}],
  ['true', undefined, { stdio: 'ignore' }],
  ['sh', ['-c', 'exit 3'], { stdio: 'ignore' }],
  ['true', [], null],
  ['true', 'x'],
  ['true', [], 5],
  ['', []],
  [42],
]

for (const args of spawnShapes) {
  test(`start(${args.map((a) => JSON.stringify(a) ?? 'undefined').join(', ')}) does what child_process.spawn does`, async (t) => {
    const start = monitor.start.bind(monitor) as (...a: unknown[]) => ChildProcess
    t.deepEqual(await outcome(start, args), await outcome(spawn as (...a: unknown[]) => ChildProcess, args))
  })
}

test('start("true", null) runs, and its exit is captured for wait', async (t) => {
  const child = monitor.start('true', null)
  t.like(await monitor.wait(child), { status: 0, code: 0 })
})

test.serial('setSubreaper() with no argument throws and leaves the mode as it was', (t) => {
  const before = isSubreaper()
  const set = setSubreaper as (...a: unknown[]) => void
  t.throws(() => set(), {
    instanceOf: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: 'setSubreaper takes a boolean (true to become a subreaper, false to stop being one); got undefined',
  })
  t.throws(() => set(1), { message: /got the number 1$/ })
  t.is(isSubreaper(), before)
})

test.serial('a closed Monitor refuses subscribe() with a typed error and delivers nothing more', async (t) => {
  const m = new Monitor()
  const seen: number[] = []
  const sub = m.subscribe((e) => seen.push(e.pid))
  const first = monitor.start('sh', ['-c', 'exit 1'])
  await monitor.wait(first)
  t.true(await until(() => seen.includes(first.pid!)), 'delivered before close()')
  m.close()
  t.true(m.closed)
  t.true(sub.closed)
  for (const call of [() => m.subscribe(), () => m.subscribe(() => {})]) {
    t.throws(call, {
      instanceOf: MonitorClosedError,
      code: 'ERR_SUBREAPER_MONITOR_CLOSED',
      message: 'this Monitor was closed, and a closed Monitor takes no new subscriptions: subscribe on a new Monitor()',
    })
  }
  t.is(m.subscriptions, 0)
  const control = new Recorder()
  const second = monitor.start('sh', ['-c', 'exit 2'])
  await monitor.wait(second)
  // Exits reach every subscriber in order: once a later sentinel reached the control, the
  // closed Monitor's subscription would have had the second exit too.
  t.true(await delivered(control))
  control.unsubscribe()
  t.false(seen.includes(second.pid!), 'nothing delivered after close()')
})

test('subscribe(123) says the first argument may be a callback or options; a bad second argument is named as options', (t) => {
  const subscribe = monitor.subscribe.bind(monitor) as (...a: unknown[]) => unknown
  const before = monitor.subscriptions
  for (const [arg, got] of [
    [123, 'the number 123'],
    ['all', 'the string "all"'],
    [null, 'null'],
  ] as const) {
    t.throws(() => subscribe(arg), {
      instanceOf: TypeError,
      code: 'ERR_INVALID_ARG_TYPE',
      message: `subscribe() takes a callback (a function, then optional options), an options object, or nothing; got ${got}`,
    })
  }
  t.throws(() => subscribe(() => {}, 123), {
    instanceOf: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: 'options must be an object or undefined; got the number 123',
  })
  t.is(monitor.subscriptions, before, 'no subscription was left open by the refused calls')
})

test("the addon's errors carry their code: no message is parsed to find it", (t) => {
  const native = binding<{ wait(pid: number, onExit: () => void): unknown }>()
  t.throws(() => native.wait(1, () => {}), {
    code: 'ERR_SUBREAPER_NOT_A_CHILD',
    message: 'pid 1 is not a child of this process and no recent exit of it is known',
  })
})

test('iterating a callback subscription from JavaScript says what to do instead', async (t) => {
  const sub = monitor.subscribe(() => {})
  try {
    const iterate = async () => {
      for await (const _ of sub as unknown as AsyncIterable<Exit>) break
    }
    await t.throwsAsync(iterate(), {
      instanceOf: TypeError,
      code: 'ERR_INVALID_STATE',
      message:
        'this subscription delivers its exits to its callback and cannot be iterated: ' +
        'iterate a subscription made without a callback, `for await (const exit of monitor.subscribe())`',
    })
  } finally {
    sub.unsubscribe()
  }
})
