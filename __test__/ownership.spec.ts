// Steal nothing: children made anywhere in the process stay their makers' — in threads that
// did not load subreaper, in native code that forks and waits, during synchronous spawns — and
// every exit is still announced once. Each scenario runs in a process of its own (fixtures),
// so that subreaper mode and worker threads cannot leak into the other specs.
import test from 'ava'
import { execFile, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

import { identityOf, isExitOf } from './fixtures/process-identity.mjs'
import { fixture, fixtures } from './helpers.ts'
import { exitStatusMayBeUnknown, kernelNote, pidfdsRefused } from './kernel.mjs'
import { noLiveChildren, noZombies } from './procs.ts'
import { type FixtureRun, runNode } from './fixtures/reliability-lib.ts'

interface ChildReport {
  pid: number
  /** Start time, ms since the epoch, read from /proc while the child ran. */
  start: number | null
  code: number
  got: { code: number; fired: number }
}

interface SeenExit {
  pid: number
  status: number
  startTime: number | null
}

function parse<T>(t: import('ava').ExecutionContext, run: FixtureRun): T {
  t.false(run.timedOut, `the fixture did not finish; stderr: ${run.stderr}`)
  t.is(run.code, 0, `fixture failed: ${run.stderr}`)
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as T
}

/** The exits of `pid` that are this process: same pid, and a start time within a second. */
function exitsOf(exits: SeenExit[], pid: number, start: number | null): SeenExit[] {
  return exits.filter((e) => e.pid === pid && (start === null || e.startTime === null || Math.abs(e.startTime - start) < 1000))
}

test.after.always('no zombie, no live child', async (t) => {
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
})

for (const mode of ['default', 'subreaper'] as const) {
  for (const loaded of ['main', 'worker-running', 'worker-ended'] as const) {
    const where = loaded === 'main' ? 'in a worker that did not load subreaper' : 'in the main thread'
    const by = {
      main: 'loaded in the main thread',
      'worker-running': 'loaded only in a running worker',
      'worker-ended': 'loaded only in a worker that has ended',
    }[loaded]
    test(`${mode} mode, ${by}: 50 spawn/execFile/exec children ${where} each report their code once`, async (t) => {
      const run = await runNode([fixture('ownership-threads.mjs'), loaded, mode, '50'], { timeout: 90_000 })
      const { children, exits } = parse<{ children: ChildReport[] | 'timeout'; exits: SeenExit[] }>(t, run)
      t.not(children, 'timeout', 'some child_process callbacks never fired')
      if (children === 'timeout') return
      t.is(children.length, 50)
      for (const c of children) {
        t.deepEqual(c.got, { code: c.code, fired: 1 }, `pid ${c.pid}`)
      }
      if (loaded === 'worker-ended') return // nobody left to subscribe
      let unknown = 0
      for (const c of children) {
        const seen = exitsOf(exits, c.pid, c.start)
        t.is(seen.length, 1, `pid ${c.pid} seen ${seen.length} times by the subscriber`)
        // -1 only where the kernel keeps no status for a child its waiter reaped first.
        if (seen[0]?.status === -1 && exitStatusMayBeUnknown) unknown++
        else t.is(seen[0]?.status, c.code, `pid ${c.pid}`)
      }
      t.log(`${kernelNote}: ${unknown} of ${children.length} statuses unknown`)
    })
  }
}

let addon: string | undefined
let addonDir: string | undefined

test.before('build the native forker addon', () => {
  addonDir = mkdtempSync(join(tmpdir(), 'subreaper-forker-'))
  addon = join(addonDir, 'native-forker.node')
  const include = join(dirname(process.execPath), '..', 'include', 'node')
  execFileSync('gcc', ['-shared', '-fPIC', '-O2', `-I${include}`, '-o', addon, fixture('native-forker.c'), '-lpthread'])
})

test.after.always('remove the addon', () => {
  if (addonDir) rmSync(addonDir, { recursive: true, force: true })
})

for (const mode of ['default', 'subreaper'] as const) {
  test(`${mode} mode: a native addon's 500 children waited by a blocked waitpid(pid) and 500 by WNOHANG polling all get their own status; each exit announced once`, async (t) => {
    const run = await runNode([fixture('native-forker.mjs'), addon!, mode, '500'], { timeout: 180_000 })
    const { runs, exits, stats } = parse<{
      runs: Array<{ style: string; firstCode: number; results: Array<[number, number, number]> | null }>
      exits: SeenExit[]
      stats: { known: number; watched: number }
    }>(t, run)
    t.deepEqual(stats, { known: 0, watched: 0 }, 'the engine kept entries of children that are gone')
    for (const r of runs) {
      t.truthy(r.results, `${r.style}: the addon's waiters did not finish`)
      if (!r.results) continue
      t.is(r.results.length, 500)
      const wrong = r.results.flatMap(([pid, status], i) => {
        const want = (r.firstCode + i) % 256
        // -1: the addon's waitpid failed with ECHILD: something else reaped its child.
        return status >= 0 && (status & 0x7f) === 0 && status >> 8 === want ? [] : [{ pid, status, want }]
      })
      t.deepEqual(wrong, [], `${r.style}: children taken from their waiter or with a wrong status`)
      let unknown = 0
      for (const [pid, status, ticks] of r.results) {
        // By pid and start time: under load the kernel hands a pid out again within a run.
        t.true(ticks >= 0, `${r.style}: pid ${pid}: its start time could not be read`)
        const seen = exits.filter((e) => isExitOf(e, identityOf(pid, ticks)))
        t.is(seen.length, 1, `${r.style}: pid ${pid}@${ticks} announced ${seen.length} times`)
        // -1 only where the kernel keeps no status for a child its waiter reaped first.
        if (seen[0]?.status === -1 && exitStatusMayBeUnknown) unknown++
        else t.is(seen[0]?.status, status >> 8, `${r.style}: pid ${pid}`)
      }
      t.log(`${kernelNote}: ${r.style}: ${unknown} of ${r.results.length} statuses unknown`)
    }
  })
}

for (const spawnMode of ['spawn-declared', 'spawn-grace'] as const) {
  test(`subreaper mode: 100 posix_spawn children of the main thread (no fork hook sees them), ${spawnMode === 'spawn-declared' ? 'declared with declareChild()' : 'under an orphanGrace of 5 s'}, stay their waiter's`, async (t) => {
    const run = await runNode([fixture('native-forker.mjs'), addon!, 'subreaper', '100', spawnMode], { timeout: 120_000 })
    const { runs, exits } = parse<{
      runs: Array<{ style: string; firstCode: number; results: Array<[number, number, number]> | null }>
      exits: SeenExit[]
    }>(t, run)
    const results = runs[0]!.results
    t.truthy(results, "the addon's waiters did not finish")
    if (!results) return
    const wrong = results.filter(([, status], i) => status < 0 || status >> 8 !== (7 + i) % 256)
    t.deepEqual(wrong, [], 'children taken from their waiter')
    for (const [pid, , ticks] of results) {
      const seen = exits.filter((e) => isExitOf(e, identityOf(pid, ticks))).length
      // A declared child is watched from its declaration: its exit is always seen. An
      // undeclared one is seen only if the engine looks before its waiter reaps it.
      if (spawnMode === 'spawn-declared') t.is(seen, 1, `pid ${pid} announced ${seen} times`)
      else t.true(seen <= 1, `pid ${pid} announced ${seen} times`)
    }
  })
}

test('reaperStats().kernel says whether pidfds are refused here, once a child was watched', async (t) => {
  const code =
    "const sr = require('subreaper'); require('child_process').execFile('true', () => console.log(JSON.stringify(sr.reaperStats().kernel)))"
  const run = await runNode(['-e', code])
  t.is(run.code, 0, run.stderr)
  const kernel = JSON.parse(run.stdout) as string
  t.log(kernel)
  t.is(kernel.startsWith('pidfds refused'), pidfdsRefused, kernel)
})

test('nothing of the hooks is visible: eventNames(), removeAllListeners() and 10 or 20 exit listeners behave as without subreaper, and no engine entry is left', async (t) => {
  const without = parse<Record<string, unknown>>(t, await runNode([fixture('hooks-invisible.mjs')]))
  const withIt = parse<Record<string, unknown>>(t, await runNode([fixture('hooks-invisible.mjs'), 'load']))
  t.deepEqual(withIt.eventNames, without.eventNames)
  t.deepEqual(withIt.eventNames, ['[]'])
  t.deepEqual(withIt.warnings, [])
  t.deepEqual(without.warnings, [])
  t.is(withIt.wrongCodes, 0)
  t.is(withIt.exits, 200)
  t.is(withIt.owned, 0, 'entries of children libuv reaped were left in the engine')
  t.is(withIt.known, 0)
})

test('node --pending-deprecation --throw-deprecation: loads, runs execSync, exits 0 with nothing on stderr', async (t) => {
  const code = "require('subreaper'); process.stdout.write(String(require('child_process').execSync('echo hi')))"
  const run = await runNode(['--pending-deprecation', '--throw-deprecation', '-e', code])
  t.is(run.code, 0, run.stderr)
  t.is(run.stderr, '')
  t.is(run.stdout, 'hi\n')
})

test('subreaper mode: orphans exiting during a 5 s execSync are reaped and recorded during it', async (t) => {
  const out = parse<{
    orphans: number[]
    execStart: number
    execEnd: number
    exits: Array<{ pid: number; status: number; timestamp: number; reapedBy: string }>
  }>(t, await runNode([fixture('execsync-orphans.mjs')]))
  t.is(out.orphans.length, 3)
  out.orphans.forEach((pid, i) => {
    const seen = out.exits.filter((e) => e.pid === pid)
    t.is(seen.length, 1, `orphan ${pid}`)
    t.like(seen[0], { status: 7 + i, reapedBy: 'subreaper' })
    // Recorded while execSync still ran (delivered to JavaScript once it returned).
    t.true(seen[0]!.timestamp > out.execStart && seen[0]!.timestamp < out.execEnd, `orphan ${pid} recorded after the execSync`)
  })
})

test('a real AVA run with its default worker threads: one test file uses subreaper, six others only spawn children; all pass', async (t) => {
  const project = join(fixtures, 'ava-project')
  const cli = join(process.cwd(), 'node_modules', 'ava', 'entrypoints', 'cli.mjs')
  const out = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    execFile(process.execPath, [cli], { cwd: project, timeout: 120_000, env: { ...process.env, CI: '1' } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: stdout + stderr }),
    )
  })
  t.is(out.code, 0, out.stdout)
  t.regex(out.stdout, /8 tests passed/)
})
