// monitor.subscribe: callback and async-iterator forms, order, unsubscribe / return() / using,
// the lagging subscriber (iterator and callback), independent Monitors and close().
import test from 'ava'
import { once } from 'node:events'

import { monitor, Monitor, reaperStats, SubscriptionLaggedError, type Exit, type Subscription } from 'subreaper'

import { until } from './helpers.ts'
import { noLiveChildren, noZombies, procState, Recorder, settle } from './procs.ts'

test.after.always('no zombie, no live child, no subscription left', async (t) => {
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
  t.is(monitor.subscriptions, 0)
  t.true(await until(() => reaperStats().subscribers === 0, 10_000), `subscribers: ${reaperStats().subscribers}`)
})

/** Starts `sh -c 'exit <code>'` and resolves with its pid once the exit is known. */
async function run(code: number): Promise<number> {
  const child = monitor.start('sh', ['-c', `exit ${code}`])
  await monitor.wait(child)
  return child.pid!
}

/** Reads `n` exits of the given pids from an iterator (skipping any other exit). */
async function readPids(sub: AsyncIterator<Exit>, pids: Set<number>): Promise<Exit[]> {
  const out: Exit[] = []
  while (out.length < pids.size) {
    const r = await sub.next()
    if (r.done) break
    if (pids.has(r.value.pid)) out.push(r.value)
  }
  return out
}

test.serial('callback form: receives every exit, and nothing after unsubscribe()', async (t) => {
  const got: Exit[] = []
  const sub = monitor.subscribe((e) => got.push(e))
  t.false(sub.closed)
  t.is(monitor.subscriptions, 1)
  const pids = [await run(0), await run(1), await run(255)]
  await until(() => pids.every((p) => got.some((e) => e.pid === p)), 30_000)
  t.deepEqual(
    pids.map((p) => got.filter((e) => e.pid === p).map((e) => e.status)),
    [[0], [1], [255]],
  )
  sub.unsubscribe()
  sub.unsubscribe() // twice is fine
  t.true(sub.closed)
  t.is(monitor.subscriptions, 0)
  const count = got.length
  const after = await run(9)
  await settle()
  t.is(got.length, count, 'no exit after unsubscribe')
  t.false(got.some((e) => e.pid === after))
})

test.serial('async iterator form: for await gets every exit; break ends the subscription', async (t) => {
  const sub = monitor.subscribe()
  const pids: number[] = []
  const reading = (async () => {
    const seen: Exit[] = []
    for await (const e of sub) {
      seen.push(e)
      if (pids.length === 5 && pids.every((p) => seen.some((s) => s.pid === p))) break
    }
    return seen
  })()
  for (let i = 0; i < 5; i++) pids.push(await run(10 + i))
  // Exits may have arrived before the last pid was pushed: one more wakes the loop up to check.
  const nudge = monitor.start('true')
  const seen = await reading
  await monitor.wait(nudge)
  t.deepEqual(
    pids.map((p) => seen.find((e) => e.pid === p)?.status),
    [10, 11, 12, 13, 14],
  )
  t.true(sub.closed, 'break called return(), which unsubscribed')
  t.deepEqual(await sub.next(), { done: true, value: undefined })
})

test.serial('order: exits of children started in sequence arrive in that order, in both forms', async (t) => {
  const cbSeen: number[] = []
  const cb = monitor.subscribe((e) => cbSeen.push(e.pid))
  const it = monitor.subscribe({ bufferSize: 256 })
  const pids: number[] = []
  for (let i = 0; i < 25; i++) {
    const child = monitor.start('sh', ['-c', `exit ${i}`])
    if (i % 2 === 0) await monitor.wait(child)
    else await once(child, 'exit')
    pids.push(child.pid!)
  }
  const want = new Set(pids)
  const itSeen = (await readPids(it, want)).map((e) => e.pid)
  await until(() => pids.every((p) => cbSeen.includes(p)), 30_000)
  t.deepEqual(itSeen, pids, 'iterator order')
  t.deepEqual(
    cbSeen.filter((p) => want.has(p)),
    pids,
    'callback order',
  )
  cb.unsubscribe()
  it.unsubscribe()
})

test.serial('several reads pending at once resolve with successive exits', async (t) => {
  const sub = monitor.subscribe()
  const reads = [sub.next(), sub.next(), sub.next()]
  const pids = [await run(1), await run(2), await run(3)]
  const got = await Promise.all(reads)
  t.deepEqual(
    got.map((r) => (r.done ? null : r.value.pid)),
    pids,
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
  await run(4)
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
    await run(0)
    await until(() => seen > 0, 30_000)
    t.false(cb.closed)
  }
  const before = seen
  await run(0)
  await settle()
  t.is(seen, before, 'nothing after the block')
})

test.serial('a lagging iterator gets SubscriptionLaggedError with the missed count; another subscriber gets everything', async (t) => {
  const N = 16
  const lagging = monitor.subscribe({ bufferSize: 4, lagTimeout: 50 })
  const full = new Recorder()
  const children = Array.from({ length: N }, (_, i) => monitor.start('sh', ['-c', `exit ${i}`]))
  const pids = children.map((c) => c.pid!)
  const exits = await full.waitFor(pids)
  t.deepEqual(
    exits.map((e) => e.status),
    pids.map((_, i) => i),
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
  const later = await run(77)
  await full.waitFor([later])
  t.deepEqual(full.errors, [])
  t.deepEqual(full.counts([...pids, later]), [...pids, later].map(() => 1))
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
  const pids = children.map((c) => c.pid!)
  // Block the event loop (so the callback cannot drain) until every exit was offered and the
  // lagging subscriber was closed. Everything polled here is synchronous.
  const blocker = new Int32Array(new SharedArrayBuffer(4))
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const allExited = pids.every((p) => procState(p)?.state === 'Z' || procState(p) === undefined)
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
  const exits = await full.waitFor(pids)
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
  const first = await run(1)
  await Promise.all([r1.waitFor([first]), r2.waitFor([first]), r0.waitFor([first])])
  t.like(await pendingRead, { done: false, value: { pid: first, status: 1 } })
  m1.close()
  t.is(m1.subscriptions, 0)
  t.true(r1.sub.closed)
  t.true(it1.closed)
  t.deepEqual(await it1.next(), { done: true, value: undefined })
  t.is(m2.subscriptions, 1)
  const second = await run(2)
  await Promise.all([r2.waitFor([second]), r0.waitFor([second])])
  await settle()
  t.is(r1.of(second).length, 0, 'the closed monitor got nothing')
  t.like(r2.of(second)[0], { status: 2 })
  t.like(r0.of(second)[0], { status: 2 })
  // A closed Monitor can subscribe again.
  const again = new Recorder(m1)
  const third = await run(3)
  await again.waitFor([third])
  t.like(again.of(third)[0], { status: 3 })
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
