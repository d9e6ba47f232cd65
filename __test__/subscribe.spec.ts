// monitor.subscribe: callback and async-iterator forms, order, unsubscribe / return() / using,
// the lagging subscriber (iterator and callback), independent Monitors and close().
import test from 'ava'
import { once } from 'node:events'

import { monitor, Monitor, reaperStats, SubscriptionLaggedError, type Exit, type Subscription } from 'subreaper'

import { until } from './helpers.ts'
import { delivered, idOf, noLiveChildren, noZombies, Recorder } from './procs.ts'
import { isExitOf, type ProcessId } from './fixtures/process-identity.mjs'
import { readStat } from './proc-stat.mjs'

test.after.always('no zombie, no live child, no subscription left', async (t) => {
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
  t.is(monitor.subscriptions, 0)
  t.true(await until(() => reaperStats().subscribers === 0, 10_000), `subscribers: ${reaperStats().subscribers}`)
})

/** Starts `sh -c 'exit <code>'` and resolves with its identity (pid and start time) once the exit is known. */
async function runProcess(code: number): Promise<ProcessId> {
  const child = monitor.start('sh', ['-c', `exit ${code}`])
  const id = idOf(child)
  await monitor.wait(child)
  return id
}

/** Reads the exits of the given processes from an iterator (skipping any other exit), in the order read. */
async function readExitsOf(sub: AsyncIterator<Exit>, ids: readonly ProcessId[]): Promise<Exit[]> {
  const out: Exit[] = []
  while (out.length < ids.length) {
    const r = await sub.next()
    if (r.done) break
    if (ids.some((id) => isExitOf(r.value, id))) out.push(r.value)
  }
  return out
}

/** Which of `ids` each exit is the exit of (-1: none). */
const whichOf = (exits: readonly Exit[], ids: readonly ProcessId[]) => exits.map((e) => ids.findIndex((id) => isExitOf(e, id)))

test.serial('callback form: receives every exit, and nothing after unsubscribe()', async (t) => {
  const got: Exit[] = []
  const sub = monitor.subscribe((e) => got.push(e))
  t.false(sub.closed)
  t.is(monitor.subscriptions, 1)
  const ids = [await runProcess(0), await runProcess(1), await runProcess(255)]
  await until(() => ids.every((id) => got.some((e) => isExitOf(e, id))), 30_000)
  t.deepEqual(
    ids.map((id) => got.filter((e) => isExitOf(e, id)).map((e) => e.status)),
    [[0], [1], [255]],
  )
  sub.unsubscribe()
  sub.unsubscribe() // twice is fine
  t.true(sub.closed)
  t.is(monitor.subscriptions, 0)
  const count = got.length
  const control = new Recorder()
  const after = await runProcess(9)
  // The control subscriber has every exit recorded so far: the closed one was offered them too.
  t.true(await delivered(control))
  control.unsubscribe()
  t.is(got.length, count, 'no exit after unsubscribe')
  t.false(got.some((e) => isExitOf(e, after)))
})

test.serial('async iterator form: for await gets every exit; break ends the subscription', async (t) => {
  const sub = monitor.subscribe()
  const ids: ProcessId[] = []
  const reading = (async () => {
    const seen: Exit[] = []
    for await (const e of sub) {
      seen.push(e)
      if (ids.length === 5 && ids.every((id) => seen.some((s) => isExitOf(s, id)))) break
    }
    return seen
  })()
  for (let i = 0; i < 5; i++) ids.push(await runProcess(10 + i))
  // Exits may have arrived before the last pid was pushed: one more wakes the loop up to check.
  const nudge = monitor.start('true')
  const seen = await reading
  await monitor.wait(nudge)
  t.deepEqual(
    ids.map((id) => seen.find((e) => isExitOf(e, id))?.status),
    [10, 11, 12, 13, 14],
  )
  t.true(sub.closed, 'break called return(), which unsubscribed')
  t.deepEqual(await sub.next(), { done: true, value: undefined })
})

test.serial('order: exits of children started in sequence arrive in that order, in both forms', async (t) => {
  const cbSeen: Exit[] = []
  const cb = monitor.subscribe((e) => cbSeen.push(e))
  const it = monitor.subscribe({ bufferSize: 256 })
  const ids: ProcessId[] = []
  for (let i = 0; i < 25; i++) {
    const child = monitor.start('sh', ['-c', `exit ${i}`])
    ids.push(idOf(child))
    if (i % 2 === 0) await monitor.wait(child)
    else await once(child, 'exit')
  }
  const inOrder = ids.map((_, i) => i)
  const itSeen = await readExitsOf(it, ids)
  await until(() => ids.every((id) => cbSeen.some((e) => isExitOf(e, id))), 30_000)
  t.deepEqual(whichOf(itSeen, ids), inOrder, 'iterator order')
  t.deepEqual(
    whichOf(cbSeen, ids).filter((i) => i >= 0),
    inOrder,
    'callback order',
  )
  cb.unsubscribe()
  it.unsubscribe()
})

test.serial('several reads pending at once resolve with successive exits', async (t) => {
  const sub = monitor.subscribe()
  const reads = [sub.next(), sub.next(), sub.next()]
  const ids = [await runProcess(1), await runProcess(2), await runProcess(3)]
  const got = await Promise.all(reads)
  t.deepEqual(
    whichOf(
      got.map((r) => (r.done ? ({ pid: 0 } as Exit) : r.value)),
      ids,
    ),
    [0, 1, 2],
  )
  sub.unsubscribe()
})

test.serial('unsubscribe() ends a pending read with done, and iterating afterwards ends at once', async (t) => {
  const sub = monitor.subscribe()
  const pending = sub.next()
  sub.unsubscribe()
  t.deepEqual(await pending, { done: true, value: undefined })
  let bodies = 0
  for await (const _ of sub) bodies++
  t.is(bodies, 0)
  t.deepEqual(await sub.next(), { done: true, value: undefined })
  // Even with exits happening, a closed subscription yields nothing.
  await runProcess(4)
  t.deepEqual(await sub.next(), { done: true, value: undefined })
  t.is(sub.pending, 0)
})

test.serial('return() and using unsubscribe', async (t) => {
  const sub = monitor.subscribe()
  const pending = sub.next()
  t.deepEqual(await sub.return(), { done: true, value: undefined })
  t.deepEqual(await pending, { done: true, value: undefined })
  t.true(sub.closed)

  let inner: Subscription | undefined
  {
    using s = monitor.subscribe()
    inner = s
    t.false(s.closed)
    t.is(monitor.subscriptions, 1)
  }
  t.true(inner.closed, 'leaving the block disposed it')
  t.is(monitor.subscriptions, 0)
  let seen = 0
  {
    using cb = monitor.subscribe(() => seen++)
    await runProcess(0)
    await until(() => seen > 0, 30_000)
    t.false(cb.closed)
  }
  const before = seen
  const control = new Recorder()
  await runProcess(0)
  t.true(await delivered(control), 'a control subscriber has every exit so far')
  control.unsubscribe()
  t.is(seen, before, 'nothing after the block')
})

test.serial('a lagging iterator gets SubscriptionLaggedError with the missed count; another subscriber gets everything', async (t) => {
  const N = 16
  const lagging = monitor.subscribe({ bufferSize: 4, lagTimeout: 50 })
  const full = new Recorder()
  const children = Array.from({ length: N }, (_, i) => monitor.start('sh', ['-c', `exit ${i}`]))
  const ids = children.map(idOf)
  const exits = await full.waitFor(ids)
  t.deepEqual(
    exits.map((e) => e.status),
    ids.map((_, i) => i),
    'the other subscriber got every exit',
  )
  // The full subscriber was offered every exit after the lagging one was: once the lagging
  // one holds only its buffer, its overflow has been dropped and it is closed.
  t.true(await until(() => lagging.pending === 4, 30_000), `pending ${lagging.pending}`)
  const firstFour: Exit[] = []
  for (let i = 0; i < 4; i++) {
    const r = await lagging.next()
    t.false(r.done)
    if (!r.done) firstFour.push(r.value)
  }
  t.deepEqual(
    firstFour.map((e) => e.pid),
    full.exits.slice(0, 4).map((e) => e.pid),
    'the buffered exits come first, in order',
  )
  const err = await t.throwsAsync(lagging.next(), { instanceOf: SubscriptionLaggedError })
  t.is(err?.name, 'SubscriptionLaggedError')
  t.is((err as SubscriptionLaggedError).code, 'ERR_SUBREAPER_LAGGED')
  const missed = (err as SubscriptionLaggedError).missed
  t.true(Number.isInteger(missed) && missed >= 1 && missed <= full.exits.length - 4, `missed ${missed}`)
  t.true(lagging.closed)
  t.deepEqual(await lagging.next(), { done: true, value: undefined }, 'then the stream ends')
  // The other subscriber is not affected and keeps receiving.
  const later = await runProcess(77)
  await full.waitFor([later])
  t.deepEqual(full.errors, [])
  t.deepEqual(
    full.counts([...ids, later]),
    [...ids, later].map(() => 1),
  )
  full.unsubscribe()
  lagging.unsubscribe()
})

test.serial('a lagging callback subscriber gets the SubscriptionLaggedError through onError', async (t) => {
  const N = 12
  const errors: SubscriptionLaggedError[] = []
  const got: Exit[] = []
  // Its lag deadline does not run while its thread is blocked (each subscriber is judged by its
  // own reading), so it is its overflow cap that closes it here.
  const lagging = monitor.subscribe((e) => got.push(e), { bufferSize: 4, lagTimeout: 50, maxOverflow: 2, onError: (e) => errors.push(e) })
  const full = new Recorder()
  const children = Array.from({ length: N }, () => monitor.start('sleep', ['0.2']))
  children.forEach(idOf)
  const pids = children.map((c) => c.pid!)
  // Block the event loop (so the callback cannot drain) until every exit was offered and the
  // lagging subscriber was closed. Everything polled here is synchronous.
  const blocker = new Int32Array(new SharedArrayBuffer(4))
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const allExited = pids.every((p) => readStat(p)?.state === 'Z' || readStat(p) === undefined)
    if (allExited && full.sub.pending >= N && lagging.pending === 4) break
    Atomics.wait(blocker, 0, 0, 20)
  }
  t.is(lagging.pending, 4, 'closed at its cap while the loop was blocked')
  await until(() => errors.length > 0, 30_000)
  t.is(errors.length, 1)
  t.true(errors[0] instanceof SubscriptionLaggedError)
  t.true(errors[0]!.missed >= 1 && errors[0]!.missed <= N - 4, `missed ${errors[0]!.missed}`)
  t.is(got.length, 4, 'the buffered exits were delivered before the error')
  t.true(lagging.closed)
  const exits = await full.waitFor(children)
  t.true(exits.every((e) => e.status === 0 && e.comm === 'sleep'))
  t.deepEqual(full.errors, [])
  await Promise.all(children.map((c) => monitor.wait(c)))
  full.unsubscribe()
})

test.serial('new Monitor(): independent sets of subscribers; close() ends only its own', async (t) => {
  const m1 = new Monitor()
  const m2 = new Monitor()
  const r1 = new Recorder(m1)
  const it1 = m1.subscribe()
  const pendingRead = it1.next()
  const r2 = new Recorder(m2)
  const r0 = new Recorder()
  t.is(m1.subscriptions, 2)
  t.is(m2.subscriptions, 1)
  t.is(monitor.subscriptions, 1)
  const first = await runProcess(1)
  await Promise.all([r1.waitFor([first]), r2.waitFor([first]), r0.waitFor([first])])
  t.like(await pendingRead, { done: false, value: { pid: first.pid, status: 1 } })
  m1.close()
  t.is(m1.subscriptions, 0)
  t.true(r1.sub.closed)
  t.true(it1.closed)
  t.deepEqual(await it1.next(), { done: true, value: undefined })
  t.is(m2.subscriptions, 1)
  const second = await runProcess(2)
  await Promise.all([r2.waitFor([second]), r0.waitFor([second])])
  t.true(await delivered(r0), 'every exit so far delivered')
  t.is(r1.of(second).length, 0, 'the closed monitor got nothing')
  t.like(r2.of(second)[0], { status: 2 })
  t.like(r0.of(second)[0], { status: 2 })
  // A closed Monitor takes no new subscription (api-messages.spec.ts checks the error).
  t.throws(() => new Recorder(m1), { code: 'ERR_SUBREAPER_MONITOR_CLOSED' })
  t.is(m1.subscriptions, 0)
  m1.close()
  m2.close()
  r0.unsubscribe()
  t.is(monitor.subscriptions, 0)
})

test.serial('monitor.reap() resolves with an array and does not disturb child_process', async (t) => {
  const child = monitor.start('sh', ['-c', 'exit 6'])
  await once(child, 'exit')
  const swept = await monitor.reap()
  t.true(Array.isArray(swept))
  t.like(await monitor.wait(child), { status: 6 })
  t.is(child.exitCode, 6)
})
