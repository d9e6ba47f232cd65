#!/usr/bin/env node
// The kernel-sensitive checks as one plain Node script, for places where the ava suite is too
// slow to run: a VM booting another kernel under emulation (scripts/test-compat.sh vm). Each
// check runs a fixture of the suite in a node process of its own and judges what it printed:
//   1. a native addon's 600 children (300 waited by a blocked waitpid, 300 by WNOHANG polling),
//      in default and in subreaper mode: every waiter gets its own status; every exit is
//      announced once (pid and start time), with its status or -1 where the kernel kept none;
//      afterwards the engine holds no entry;
//   2. 30 child_process children of a worker that did not load subreaper: every callback
//      once with its code, every exit announced once (status exact or -1);
//   3. 30 orphans adopted in subreaper mode: each announced once, reaped by subreaper, with
//      its exact status.
// Prints one line per check and "N passed, M failed" last; exits 1 if any failed.
//
//   node scripts/kernel-checks.mjs ADDON   (ADDON: __test__/fixtures/native-forker.c, built)
import { execFile } from 'node:child_process'
import { release } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { identityOf, isExitOf } from '../__test__/fixtures/process-identity.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const fixture = (name) => join(root, '__test__', 'fixtures', name)
const addon = process.argv[2]
let passed = 0
let failed = 0

function report(what, problems, note = '') {
  if (problems.length === 0) {
    passed++
    console.log(`ok - ${what}${note ? ` (${note})` : ''}`)
  } else {
    failed++
    console.log(`not ok - ${what}\n  ${problems.slice(0, 10).join('\n  ')}`)
  }
}

function runNode(args, timeoutMs = 600_000) {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: root, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const last = stdout.trim().split('\n').pop()
      try {
        resolve({ out: JSON.parse(last), err: null })
      } catch {
        resolve({ out: null, err: `${err ? err.message : 'no JSON'}\n${stderr.slice(-2000)}` })
      }
    })
  })
}

async function nativeForker(mode) {
  const what = `${mode} mode: a native addon's 600 children keep their statuses, each exit announced once, nothing left`
  const { out, err } = await runNode([fixture('native-forker.mjs'), addon, mode, '300'])
  if (!out) return report(what, [err])
  const problems = []
  let unknown = 0
  for (const run of out.runs) {
    if (!run.results) {
      problems.push(`${run.style}: the addon's waiters did not finish`)
      continue
    }
    run.results.forEach(([pid, status, ticks], i) => {
      const want = (run.firstCode + i) % 256
      if (status < 0 || status >> 8 !== want) problems.push(`${run.style}: pid ${pid} taken from its waiter (${status})`)
      const seen = out.exits.filter((e) => isExitOf(e, identityOf(pid, ticks)))
      if (seen.length !== 1) problems.push(`${run.style}: pid ${pid} announced ${seen.length} times`)
      else if (seen[0].status === -1) unknown++
      else if (seen[0].status !== want) problems.push(`${run.style}: pid ${pid} announced with ${seen[0].status}, not ${want}`)
    })
  }
  if (out.stats.known !== 0 || out.stats.watched !== 0) problems.push(`entries left: ${JSON.stringify(out.stats)}`)
  report(what, problems, `${unknown} of 600 statuses unknown`)
}

async function workerChildren() {
  const what = 'default mode: 30 child_process children of a worker that did not load subreaper, each exit announced once'
  const { out, err } = await runNode([fixture('ownership-threads.mjs'), 'main', 'default', '30'])
  if (!out) return report(what, [err])
  if (out.children === 'timeout') return report(what, ['some child_process callbacks never fired'])
  const problems = []
  let unknown = 0
  for (const c of out.children) {
    if (c.got.code !== c.code || c.got.fired !== 1)
      problems.push(`pid ${c.pid}: callback ${JSON.stringify(c.got)}, want code ${c.code} once`)
    const seen = out.exits.filter(
      (e) => e.pid === c.pid && (c.start === null || e.startTime === null || Math.abs(e.startTime - c.start) < 1000),
    )
    if (seen.length !== 1) problems.push(`pid ${c.pid} announced ${seen.length} times`)
    else if (seen[0].status === -1) unknown++
    else if (seen[0].status !== c.code) problems.push(`pid ${c.pid} announced with ${seen[0].status}, not ${c.code}`)
  }
  report(what, problems, `${unknown} of ${out.children.length} statuses unknown`)
}

async function orphans() {
  const what = 'subreaper mode: 30 orphans, each announced once and reaped by subreaper with its status'
  const code = `
    const { monitor, setSubreaper } = require('subreaper')
    setSubreaper(true)
    const exits = []
    const sub = monitor.subscribe((e) => exits.push({ pid: e.pid, status: e.status, reapedBy: e.reapedBy }))
    const script = Array.from({ length: 30 }, (_, i) => '(sleep 0.3; exit ' + i + ') & echo $!').join('\\n')
    const pids = require('child_process').execFileSync('sh', ['-c', script + '\\nexit 0'], { encoding: 'utf8' }).trim().split('\\n').map(Number)
    const deadline = Date.now() + 60000
    const tick = () => {
      if (pids.every((p) => exits.some((e) => e.pid === p)) || Date.now() > deadline) {
        sub.unsubscribe()
        console.log(JSON.stringify({ pids, exits }))
      } else setTimeout(tick, 20)
    }
    tick()`
  const { out, err } = await runNode(['-e', code])
  if (!out) return report(what, [err])
  const problems = []
  out.pids.forEach((pid, i) => {
    const seen = out.exits.filter((e) => e.pid === pid)
    if (seen.length !== 1) problems.push(`orphan ${pid} announced ${seen.length} times`)
    else if (seen[0].status !== i || seen[0].reapedBy !== 'subreaper')
      problems.push(`orphan ${pid}: ${JSON.stringify(seen[0])}, want status ${i} reaped by subreaper`)
  })
  report(what, problems)
}

console.log(
  `# Linux ${release()}, Node ${process.version}${process.env.SUBREAPER_HIDE ? `, SUBREAPER_HIDE=${process.env.SUBREAPER_HIDE}` : ''}`,
)
await nativeForker('default')
await nativeForker('subreaper')
await workerChildren()
await orphans()
console.log(`${passed} passed, ${failed} failed`)
process.exitCode = failed ? 1 : 0
