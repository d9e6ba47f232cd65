// Bad input: each case rejects (or throws) with its typed error and code, nothing crashes, and
// the process is healthy afterwards.
import test from 'ava'
import { ChildProcess } from 'node:child_process'
import { once } from 'node:events'

import { describeChild, monitor, NotAChildError, reaperStats, setSubreaper, type SubscribeOptions } from 'subreaper'

import { until } from './helpers.ts'
import { noLiveChildren, noZombies } from './procs.ts'

type ErrorClass = typeof TypeError | typeof RangeError
const TYPE = { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' }
const RANGE = { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }

test.after.always('healthy afterwards: start + wait works, nothing left behind', async (t) => {
  const child = monitor.start('sh', ['-c', 'exit 42'])
  t.like(await monitor.wait(child), { status: 42 })
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
  t.is(monitor.subscriptions, 0)
  t.true(await until(() => reaperStats().pendingWaits === 0, 10_000))
})

const badPids: Array<[string, unknown, { instanceOf: ErrorClass; code: string }]> = [
  ['wait(-1)', -1, RANGE],
  ['wait(0)', 0, RANGE],
  ['wait(NaN)', NaN, RANGE],
  ["wait('12')", '12', TYPE],
  ['wait(1.5)', 1.5, RANGE],
  ['wait(2 ** 31)', 2 ** 31, RANGE],
  ['wait(Infinity)', Infinity, RANGE],
  ['wait(-0.5)', -0.5, RANGE],
  ['wait(null)', null, TYPE],
  ['wait(undefined)', undefined, TYPE],
  ['wait({ pid: 12 })', { pid: 12 }, TYPE],
  ['wait(12n)', 12n, TYPE],
]

for (const [title, pid, expected] of badPids) {
  test(`${title} rejects with ${expected.instanceOf.name} ${expected.code}`, async (t) => {
    let promise: Promise<unknown> | undefined
    t.notThrows(() => {
      promise = monitor.wait(pid as number)
    }, 'rejects, does not throw synchronously')
    const err = await t.throwsAsync(promise!, expected)
    t.regex(err!.message, /pid must be/)
  })
}

test('wait of a pid that is not our child rejects with NotAChildError', async (t) => {
  for (const pid of [process.pid, 1, process.ppid]) {
    const err = await t.throwsAsync(monitor.wait(pid), { instanceOf: NotAChildError, code: 'ERR_SUBREAPER_NOT_A_CHILD' })
    t.is((err as NotAChildError).pid, pid)
  }
})

const badWaitOptions: Array<[string, unknown, { instanceOf: ErrorClass; code: string }]> = [
  ['timeout -1', { timeout: -1 }, RANGE],
  ['timeout NaN', { timeout: NaN }, RANGE],
  ['timeout 2 ** 31', { timeout: 2 ** 31 }, RANGE],
  ["timeout '10'", { timeout: '10' }, TYPE],
  ['signal that is not an AbortSignal', { signal: { aborted: false } }, TYPE],
  ['options that are not an object', 'fast', TYPE],
  ['options null', null, TYPE],
]

for (const [title, options, expected] of badWaitOptions) {
  test(`wait with ${title} rejects with ${expected.instanceOf.name}`, async (t) => {
    const child = monitor.start('sh', ['-c', 'exit 1'])
    await t.throwsAsync(monitor.wait(child, options as { timeout: number }), expected)
    await t.throwsAsync(monitor.wait(child.pid!, options as { timeout: number }), expected)
    t.like(await monitor.wait(child), { status: 1 }, 'the child is still waitable')
  })
}

test('wait of a ChildProcess that was never spawned rejects with TypeError', async (t) => {
  await t.throwsAsync(monitor.wait(new ChildProcess()), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
})

const badSubscribe: Array<[string, () => unknown, { instanceOf: ErrorClass; code: string }]> = [
  ['bufferSize 0', () => monitor.subscribe({ bufferSize: 0 }), RANGE],
  ['bufferSize 0 (callback form)', () => monitor.subscribe(() => {}, { bufferSize: 0 }), RANGE],
  ['bufferSize -1', () => monitor.subscribe({ bufferSize: -1 }), RANGE],
  ['bufferSize 1.5', () => monitor.subscribe({ bufferSize: 1.5 }), RANGE],
  ['bufferSize 2 ** 20 + 1', () => monitor.subscribe({ bufferSize: 2 ** 20 + 1 }), RANGE],
  ["bufferSize '4'", () => monitor.subscribe({ bufferSize: '4' } as unknown as SubscribeOptions), TYPE],
  ['lagTimeout -1', () => monitor.subscribe({ lagTimeout: -1 }), RANGE],
  ['maxOverflow -1', () => monitor.subscribe({ maxOverflow: -1 }), RANGE],
  ['onError that is not a function', () => monitor.subscribe(() => {}, { onError: 5 } as unknown as SubscribeOptions), TYPE],
  ['options that are not an object', () => monitor.subscribe('all' as unknown as SubscribeOptions), TYPE],
  ['callback form with options 5', () => monitor.subscribe(() => {}, 5 as unknown as SubscribeOptions), TYPE],
]

for (const [title, call, expected] of badSubscribe) {
  test(`subscribe with ${title} throws ${expected.instanceOf.name}`, (t) => {
    const before = monitor.subscriptions
    t.throws(call, expected)
    t.is(monitor.subscriptions, before, 'no subscription was left half-made')
  })
}

test('iterating after unsubscribe() ends at once', async (t) => {
  const sub = monitor.subscribe()
  sub.unsubscribe()
  let n = 0
  for await (const _ of sub) n++
  t.is(n, 0)
  t.deepEqual(await sub.next(), { done: true, value: undefined })
  t.true(sub.closed)
})

test('start of a command that does not exist: ENOENT error event, and wait rejects with it', async (t) => {
  const child = monitor.start('subreaper-no-such-command-xyz')
  const waited = monitor.wait(child)
  const [err] = (await once(child, 'error')) as [NodeJS.ErrnoException]
  t.is(err.code, 'ENOENT')
  t.is(await t.throwsAsync(waited), err)
  t.like(await t.throwsAsync(monitor.wait(child)), { code: 'ENOENT' })
})

const badStart: Array<[string, () => unknown]> = [
  ["start('')", () => monitor.start('')],
  ['start(42)', () => monitor.start(42 as unknown as string)],
  ["start('sh', 'x', {})", () => monitor.start('sh', 'x' as unknown as string[], {})],
  ["start('sh', [], 5)", () => monitor.start('sh', [], 5 as unknown as object)],
]

for (const [title, call] of badStart) {
  test(`${title} throws TypeError`, (t) => {
    t.throws(call, { instanceOf: TypeError })
  })
}

for (const bad of [0, -1, 1.5, 2 ** 31, Number.NaN, '42', null]) {
  test(`describeChild(${typeof bad === 'string' ? `'${bad}'` : String(bad)}) throws TypeError saying what a pid is`, (t) => {
    t.throws(() => describeChild(bad as unknown as number), {
      instanceOf: TypeError,
      code: 'ERR_INVALID_ARG_TYPE',
      message: /describeChild takes a pid \(an integer from 1 to 2147483647\)/,
    })
  })
}

test("setSubreaper('yes') throws TypeError", (t) => {
  t.throws(() => setSubreaper('yes' as unknown as boolean), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
})
