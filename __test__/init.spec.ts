// `subreaper/init`: a Node app that is its own init. As PID 1 of a PID namespace (unshare) it
// reaps the orphans it adopts, SIGTERM, SIGINT and SIGHUP end it with 128 + n unless it handles
// them, and its own child_process children still get their 'exit'; outside PID 1 it is a
// subreaper.
import test, { type ExecutionContext } from 'ava'
import { execFileSync, spawn } from 'node:child_process'
import { constants } from 'node:os'

import { fixture, liveChildren, root, until, zombieChildren } from './helpers.ts'

const app = fixture('init-app.cjs')
const { NODE_EXTRA_CA_CERTS: _extraCerts, ...env } = process.env

const namespaces = (() => {
  try {
    execFileSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'pipe', timeout: 20_000 })
    return null
  } catch (err) {
    return (err as Error).message.split('\n')[0]
  }
})()

interface Run {
  pid: number
  stdout: string
  line(text: string): Promise<void>
  result: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>
}

function start(t: ExecutionContext, file: string, args: string[]): Run {
  const child = spawn(file, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  const run: Run = {
    pid: child.pid!,
    stdout: '',
    line: async (text) => {
      if (!(await until(() => run.stdout.split('\n').includes(text), 30_000, 10))) {
        throw new Error(`no line "${text}" in 30 s:\n${run.stdout}\n${stderr}`)
      }
    },
    result: new Promise((done) => child.on('close', (code, signal) => done({ code, signal, stdout: run.stdout, stderr }))),
  }
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (run.stdout += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  t.teardown(() => {
    for (const pid of liveChildren(run.pid)) process.kill(pid, 'SIGKILL')
    child.kill('SIGKILL')
  })
  return run
}

/** The app as PID 1 of a new PID namespace with its own /proc; its host pid. */
async function asPid1(t: ExecutionContext, args: string[]): Promise<{ run: Run; host: number }> {
  const run = start(t, 'unshare', ['--pid', '--fork', '--mount-proc', process.execPath, ...args])
  await run.line('ready')
  const [host] = liveChildren(run.pid)
  return { run, host: host! }
}

const cases: Array<[string, string[], NodeJS.Signals]> = [
  ['node --import subreaper/init', ['--import', 'subreaper/init', app], 'SIGTERM'],
  ["require('subreaper/init')", [app, 'require'], 'SIGINT'],
  ["require('subreaper/init')", [app, 'require'], 'SIGHUP'],
]
for (const [how, args, signal] of cases) {
  test(`as PID 1 (${how}): orphans reaped, own child's 'exit' delivered, ${signal} ends it with ${128 + constants.signals[signal]}`, async (t) => {
    if (namespaces !== null) return (t.log(`skipped: unshare fails here (${namespaces})`), t.pass())
    const { run, host } = await asPid1(t, args)
    t.regex(run.stdout, /^role pid1 pid 1$/m)
    t.regex(run.stdout, /^own child exit 5$/m)
    t.regex(run.stdout, /^orphans reaped 20$/m)
    t.deepEqual(zombieChildren(host), [], 'no zombie under PID 1')
    process.kill(host, signal)
    const r = await run.result
    t.is(r.code, 128 + constants.signals[signal], r.stderr)
  })
}

test('as PID 1: an app that handles SIGTERM itself decides what it does', async (t) => {
  if (namespaces !== null) return (t.log(`skipped: unshare fails here (${namespaces})`), t.pass())
  const { run, host } = await asPid1(t, ['--import', 'subreaper/init', app, 'handles-term'])
  process.kill(host, 'SIGTERM')
  const r = await run.result
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /^app got SIGTERM$/m)
})

test('outside PID 1 the app becomes a subreaper and reaps the orphans of its descendants', async (t) => {
  const run = start(t, process.execPath, ['--import', 'subreaper/init', app])
  await run.line('ready')
  t.regex(run.stdout, new RegExp(`^role subreaper pid ${run.pid}$`, 'm'))
  t.regex(run.stdout, /^orphans reaped 20$/m)
  t.deepEqual(zombieChildren(run.pid), [])
  process.kill(run.pid, 'SIGTERM')
  const r = await run.result
  // Not PID 1: SIGTERM's default action, which subreaper/init leaves alone there.
  t.is(r.signal, 'SIGTERM')
})
