// 9. What loading subreaper costs child_process, measured as users spawn (issue 34). One round in
// one fresh process, in one of three modes (the runner alternates them, round by round, and pairs
// each with plain Node of the same round):
//
//   node usage.ts plain       subreaper NOT loaded
//   node usage.ts default     the package loaded and one callback subscriber (default mode)
//   node usage.ts subreaper   the same, and setSubreaper(true) (subreaper mode)
//
// Rows (COUNT children each, 300 by default):
//   spawn     spawn(helper, ['stamp', '/dev/null'], { stdio: 'ignore' }) back to back, the next
//             spawned at 'exit': the spawn() call time, and spawn() to 'exit'
//   execFile  COUNT execFile('sh', ['-c', 'echo x']) 16 at a time: the whole batch, ms
//   piped     children that print their CLOCK_MONOTONIC exit stamp on a piped stdout
//             (`helper print-stamp`), back to back, the next spawned at 'close': Node's own
//             'exit' after the stamp, and (with the module) the subscriber's callback after it
import { execFile, spawn } from 'node:child_process'

import { helperPath, intEnv, keepAlive, nowUs, quantile, report, until } from './lib.ts'

const mode = process.argv[2]
if (mode !== 'plain' && mode !== 'default' && mode !== 'subreaper') throw new Error('usage: usage.ts plain|default|subreaper')
const COUNT = intEnv('SUBREAPER_BENCH_USAGE_N', 300)
const WIDTH = 16
const helper = helperPath()

const release = keepAlive()
const callbacks = new Map<number, number>()
if (mode !== 'plain') {
  const { monitor, setSubreaper } = await import('./sr.ts')
  if (mode === 'subreaper') setSubreaper(true)
  monitor.subscribe((exit) => {
    callbacks.set(exit.pid, nowUs())
  })
}

function spawnOne(): Promise<{ callUs: number; exitUs: number }> {
  const before = nowUs()
  const child = spawn(helper, ['stamp', '/dev/null'], { stdio: 'ignore' })
  const callUs = nowUs() - before
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', () => resolve({ callUs, exitUs: nowUs() - before }))
  })
}

function execFileOne(): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('sh', ['-c', 'echo x'], (err, stdout) => (err ? reject(err) : stdout === 'x\n' ? resolve() : reject(new Error(stdout))))
  })
}

async function execFileBatch(): Promise<number> {
  const start = nowUs()
  let next = 0
  const lane = async () => {
    while (next < COUNT) {
      next++
      await execFileOne()
    }
  }
  await Promise.all(Array.from({ length: WIDTH }, lane))
  return (nowUs() - start) / 1000
}

function pipedOne(): Promise<{ pid: number; stampUs: number; exitAt: number }> {
  const child = spawn(helper, ['print-stamp'], { stdio: ['ignore', 'pipe', 'ignore'] })
  let out = ''
  let exitAt = 0
  child.stdout!.setEncoding('utf8')
  child.stdout!.on('data', (d: string) => (out += d))
  child.once('exit', () => (exitAt = nowUs()))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', () => {
      const [pid, mono] = out.trim().split(' ')
      resolve({ pid: Number(pid), stampUs: Number(BigInt(mono!)) / 1000, exitAt })
    })
  })
}

const p = (values: number[], q: number) => quantile(values, q)

// Warm-up: not counted.
for (let i = 0; i < 10; i++) await spawnOne()
await execFileBatch()
for (let i = 0; i < 10; i++) await pipedOne()

const call: number[] = []
const toExit: number[] = []
for (let i = 0; i < COUNT; i++) {
  const s = await spawnOne()
  call.push(s.callUs)
  toExit.push(s.exitUs)
}

const batchMs = await execFileBatch()

callbacks.clear()
const piped: { pid: number; stampUs: number; exitAt: number }[] = []
for (let i = 0; i < COUNT; i++) piped.push(await pipedOne())
if (mode !== 'plain') await until(() => piped.every((c) => callbacks.has(c.pid)), 10_000, 'every piped child’s callback')
const pipedExit = piped.map((c) => c.exitAt - c.stampUs)
const pipedCallback = mode === 'plain' ? [] : piped.map((c) => callbacks.get(c.pid)! - c.stampUs)

release()
report({
  mode,
  count: COUNT,
  spawnCallUs: { p50: p(call, 0.5), p99: p(call, 0.99) },
  spawnToExitUs: { p50: p(toExit, 0.5), p99: p(toExit, 0.99) },
  execFileBatchMs: batchMs,
  pipedExitUs: { p50: p(pipedExit, 0.5), p99: p(pipedExit, 0.99) },
  ...(mode === 'plain' ? {} : { pipedCallbackUs: { p50: p(pipedCallback, 0.5), p99: p(pipedCallback, 0.99) } }),
})
