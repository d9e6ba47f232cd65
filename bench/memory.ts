// 5. Memory: RSS before and after TOTAL exits (orphans, made in batches as in the drain) were
// delivered through 8 callback subscribers and consumed. Run with --expose-gc; RSS is read
// after a full GC. One mode per process:
//
//   node --expose-gc memory.ts subreaper   subreaper loaded, 8 subscribers, this process reaps
//   node --expose-gc memory.ts bare        subreaper not loaded: the same spawnSync batches, the
//                                          helper reaping its own children (Node's own growth)
import { spawnSync } from 'node:child_process'
import { getHeapSpaceStatistics } from 'node:v8'

import { helperPath, intEnv, keepAlive, progress, report, rssBytes, sleep, until } from './lib.ts'

const mode = process.argv[2]
if (mode !== 'subreaper' && mode !== 'bare') throw new Error('usage: memory.ts subreaper|bare')
const TOTAL = intEnv('SUBREAPER_BENCH_MEMORY_N', 100_000)
const BATCH = Math.min(intEnv('SUBREAPER_BENCH_MEMORY_BATCH', 10_000), TOTAL)
const SUBSCRIBERS = 8
const helper = helperPath()
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with --expose-gc')

async function settledRss(): Promise<number> {
  // Two GCs with a loop turn between them, so weak callbacks and finalizers have run.
  gc!()
  await sleep(50)
  gc!()
  return rssBytes()
}

const release = keepAlive()
let received = 0
let lagged = 0
let stats: (() => { recent: number; exitsRecorded: number }) | undefined
if (mode === 'subreaper') {
  const sr = await import('./sr.ts')
  sr.setSubreaper(true)
  stats = sr.reaperStats
  for (let i = 0; i < SUBSCRIBERS; i++) {
    sr.monitor.subscribe(
      (exit) => {
        // Consume it: read a field or two, keep nothing.
        if (exit.reapedBy === 'subreaper' && exit.pid > 0) received++
      },
      // The default lag deadline (1 s) can close a subscriber while a busy machine stalls the
      // event loop; this section measures memory, so it allows 10 s, as the drain does.
      { lagTimeout: 10_000, onError: () => lagged++ },
    )
  }
}

async function batch(done: number): Promise<void> {
  const args = mode === 'subreaper' ? ['zombies', String(BATCH)] : ['zombies', String(BATCH), 'reap']
  const r = spawnSync(helper, args, { stdio: 'ignore' })
  if (r.status !== 0) throw new Error(`helper failed: ${r.status}`)
  if (mode === 'subreaper') {
    const want = (done + BATCH) * SUBSCRIBERS
    await until(() => received >= want || lagged > 0, 120_000, 'the batch to be delivered')
    if (lagged > 0) throw new Error(`${lagged} subscriber(s) lagged`)
  }
}

const usage = () => {
  const { rss, heapTotal, heapUsed, external } = process.memoryUsage()
  // V8's young generation ("new_space") grows with the allocation rate and is what heapTotal
  // mostly varies by; the old space holds what survives.
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map((sp) => [sp.space_name, sp.space_size]))
  return { rss, heapTotal, heapUsed, external, newSpace: spaces.new_space ?? 0, oldSpace: spaces.old_space ?? 0 }
}

// Cold: before any exit. Warm: after one batch of BATCH exits (V8's young generation and the
// allocator's arenas have grown to their working size, the recent-exit table is full).
const cold = await settledRss()
const coldUsage = usage()
progress(`memory (${mode}): warm-up, ${BATCH} exits`)
await batch(0)
const before = await settledRss()
const beforeUsage = usage()
const afterBatch: number[] = []
for (let done = BATCH; done < BATCH + TOTAL; done += BATCH) {
  progress(`memory (${mode}): ${done}/${TOTAL} exits after the warm-up`)
  await batch(done)
  afterBatch.push(await settledRss())
}
const after = afterBatch[afterBatch.length - 1]!
const afterUsage = usage()
release()
report({
  mode,
  exits: TOTAL,
  warmupExits: BATCH,
  batch: BATCH,
  subscribers: mode === 'subreaper' ? SUBSCRIBERS : 0,
  deliveries: received,
  rssCold: cold,
  rssBefore: before,
  rssAfter: after,
  rssAfterBatch: afterBatch,
  /** Over the TOTAL exits after the warm-up. */
  growth: after - before,
  /** From before the first exit (includes the warm-up batch). */
  growthFromCold: after - cold,
  usage: { cold: coldUsage, before: beforeUsage, after: afterUsage },
  reaper: stats ? stats() : null,
})
