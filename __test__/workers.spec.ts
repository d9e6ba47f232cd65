// worker_threads: the module loads in the main thread and in workers at once, each
// environment's subscribers receive exits, child_process works inside workers, and a worker
// terminated while exits are flowing leaves no crash, leak or stuck delivery.
import test from 'ava'
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'

import { execFileSync } from 'node:child_process'

import { monitor, reaperStats, setSubreaper } from 'subreaper'

import { fixture, fixtures, sleep, until } from './helpers.ts'
import { orUnknown } from './kernel.mjs'
import { assertNoZombies, idOf, noLiveChildren, noZombies, Recorder } from './procs.ts'
import type { ProcessId } from './fixtures/process-identity.mjs'

const rec = new Recorder()

test.after.always('no zombie, no live child, no subscriber left', async (t) => {
  rec.unsubscribe()
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
  t.deepEqual(rec.errors, [])
  t.true(await until(() => reaperStats().subscribers === 0, 10_000), `subscribers: ${reaperStats().subscribers}`)
  // Every entry goes once its child is gone, the children of terminated workers too (some were
  // reaped by the dying worker's own libuv, with nobody left to report them).
  const cleared = () => reaperStats().owned === 0 && reaperStats().pendingWaits === 0
  t.true(await until(cleared, 10_000), `engine stats at the end: ${JSON.stringify(reaperStats())}`)
})

interface WorkResult {
  threadId: number
  pids: number[]
  expected: Array<[ProcessId, number]>
  problems: string[]
  seenPids: number[]
}

function startWorker(mode: 'work' | 'stream'): Worker {
  return new Worker(fixture('worker.mjs'), { workerData: { mode, fixtures }, execArgv: [] })
}

async function resultOf(worker: Worker): Promise<WorkResult> {
  const errors: Error[] = []
  worker.on('error', (e) => errors.push(e))
  const result = new Promise<WorkResult>((resolve, reject) => {
    worker.on('message', (m: { done?: WorkResult }) => m.done && resolve(m.done))
    worker.on('exit', (code) => reject(new Error(`worker exited (${code}) without a result: ${errors.join('; ')}`)))
  })
  return result
}

test.serial('loads in the main thread and in 2 workers at once; child_process and subscribers work in each', async (t) => {
  const workers = [startWorker('work'), startWorker('work')]
  const exited = workers.map((w) => once(w, 'exit').then(([c]) => c as number))
  const results = await Promise.all(workers.map(resultOf))
  const exitCodes = await Promise.all(exited)
  t.deepEqual(exitCodes, [0, 0], 'each worker ended normally once its work was done')
  for (const r of results) {
    t.deepEqual(r.problems, [], `worker ${r.threadId}`)
    t.is(r.pids.length, 20 + 3 + 1 + 5 + 1)
  }
  t.notDeepEqual(results[0]!.pids, results[1]!.pids)
  // The main thread's subscriber saw every exit of both workers' children, with the same status.
  const all = results.flatMap((r) => r.expected)
  const exits = await rec.waitFor(all.map(([id]) => id))
  t.deepEqual(
    exits.map((e) => e?.status),
    all.map(([id, status], i) => orUnknown(exits[i], { pid: id.pid, status }).status),
  )
  t.deepEqual(
    rec.counts(all.map(([id]) => id)),
    all.map(() => 1),
    'each broadcast once',
  )
  // The main thread still works.
  const child = monitor.start('sh', ['-c', 'exit 8'])
  t.like(await monitor.wait(child), { status: 8 })
})

test.serial('a worker terminated while exits are flowing: no crash, and the main thread keeps receiving', async (t) => {
  for (let round = 0; round < 3; round++) {
    const worker = startWorker('stream')
    const started: Array<[ProcessId, number]> = []
    let workerSeen = 0
    worker.on('message', (m: { started?: ProcessId; status?: number; seen?: number }) => {
      if (m.started !== undefined) started.push([m.started, m.status!])
      if (m.seen !== undefined) workerSeen = m.seen
    })
    const errors: Error[] = []
    worker.on('error', (e) => errors.push(e))
    // Let exits flow into the worker's subscribers for a while (more each round).
    t.true(await until(() => workerSeen >= 20 + 20 * round, 60_000), `round ${round}: the worker saw ${workerSeen} exits`)
    const code = await worker.terminate()
    t.is(code, 1, 'terminated')
    t.deepEqual(errors, [])
    // The children that worker started (some still running when it went) are all reaped, and
    // each exit reaches the main thread's subscriber once, the worker's libuv's children too:
    // the engine watches every child through a pidfd, so it sees an exit even once someone
    // else has reaped it.
    const ids = started.map(([id]) => id)
    await rec.waitFor(ids)
    t.deepEqual(
      rec.counts(ids),
      ids.map(() => 1),
      `round ${round}: each exit broadcast once`,
    )
    // A child whose exit the dying worker's libuv took during its teardown (no JavaScript left
    // to report it) is announced with an unknown status, -1 (as faults.spec.ts shows): counted.
    const statusOf = (id: ProcessId) => rec.of(id)[0]?.status
    const wrong = started
      .filter(([id, status]) => statusOf(id) !== status && statusOf(id) !== -1)
      .map(([id, status]) => `${id.pid}: status ${statusOf(id)}, expected ${status}`)
    t.deepEqual(wrong, [], `round ${round}: wrong statuses`)
    const unknown = ids.filter((id) => statusOf(id) === -1).length
    if (unknown > 0) t.log(`round ${round}: ${unknown} of ${ids.length} exits announced with an unknown status (-1)`)
    await assertNoZombies(t, undefined, `round ${round}: no zombie`)
    // The main thread keeps receiving exits afterwards.
    const after = Array.from({ length: 10 }, (_, i) => monitor.start('sh', ['-c', `exit ${i}`]))
    after.forEach(idOf)
    const afterExits = await Promise.all(after.map((c) => monitor.wait(c)))
    t.deepEqual(
      afterExits.map((e) => e.status),
      after.map((_, i) => i),
    )
    const seenAfter = await rec.waitFor(after)
    t.true(seenAfter.every((e, i) => e?.status === i))
    // The worker's subscriptions were closed with its environment.
    t.true(await until(() => reaperStats().subscribers === 1, 10_000), `subscribers: ${reaperStats().subscribers}`)
  }
})

test.serial('two streaming workers terminated at once while the main thread starts children', async (t) => {
  const workers = [startWorker('stream'), startWorker('stream')]
  const seen = [0, 0]
  workers.forEach((w, i) => w.on('message', (m: { seen?: number }) => m.seen !== undefined && (seen[i] = m.seen)))
  const main = Array.from({ length: 20 }, (_, i) => monitor.start('sh', ['-c', `sleep 0.0${i % 10}; exit ${i}`]))
  main.forEach(idOf)
  await until(() => seen[0]! >= 10 && seen[1]! >= 10, 60_000)
  const codes = await Promise.all(workers.map((w) => w.terminate()))
  t.deepEqual(codes, [1, 1])
  const exits = await Promise.all(main.map((c) => monitor.wait(c)))
  t.deepEqual(
    exits.map((e) => e.status),
    main.map((_, i) => i),
  )
  await rec.waitFor(main)
  // A `sh` a worker forked as it was terminated may exit just now: the engine holds it for the
  // leftover grace (its forking thread has gone), then reaps it.
  await assertNoZombies(t)
  t.true(await until(() => reaperStats().subscribers === 1, 10_000))
})

test.serial('workers terminated in the middle of their spawns never leave the engine paused', async (t) => {
  // A worker's termination skips `finally` blocks; a spawn hook that paused the engine around
  // JavaScript could leave it paused for good, and then nothing unowned would ever be reaped.
  setSubreaper(true)
  try {
    for (let round = 0; round < 10; round++) {
      const worker = startWorker('stream')
      let seen = 0
      worker.on('message', (m: { seen?: number }) => m.seen !== undefined && (seen = m.seen))
      t.true(await until(() => seen >= 8, 60_000))
      await sleep(Math.random() * 30)
      await worker.terminate()
      // An adopted orphan is reaped only by the engine itself. (It must outlive sh: a shell may
      // reap a background job that is already done when it exits.)
      const orphan = Number(execFileSync('sh', ['-c', 'sleep 0.3 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).trim())
      const exit = await monitor.wait(orphan, { timeout: 60_000 })
      t.like(exit, { pid: orphan, status: 0, reapedBy: 'subreaper' }, `round ${round}`)
    }
  } finally {
    setSubreaper(false)
  }
  t.deepEqual(await noZombies(), [])
})
