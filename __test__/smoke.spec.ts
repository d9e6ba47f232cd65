import test from 'ava'
import { execFile } from 'node:child_process'

import { monitor, type Exit } from 'subreaper'

import { zombieChildren } from './helpers.ts'
import { idOf } from './procs.ts'
import { isExitOf } from './fixtures/process-identity.mjs'

test('start + wait gives the exit code, and child_process keeps its exit event', async (t) => {
  const seen: Exit[] = []
  const sub = monitor.subscribe((e) => seen.push(e))
  const child = monitor.start('sh', ['-c', 'exit 3'])
  const id = idOf(child)
  const [exit, cpCode] = await Promise.all([monitor.wait(child), new Promise<number | null>((r) => child.on('exit', (code) => r(code)))])
  t.is(exit.status, 3)
  t.is(exit.code, 3)
  t.is(cpCode, 3)
  const out = await new Promise<string>((resolve, reject) =>
    execFile('sh', ['-c', 'echo hello'], (err, stdout) => (err ? reject(err) : resolve(stdout))),
  )
  t.is(out, 'hello\n')
  sub.unsubscribe()
  t.true(seen.some((e) => isExitOf(e, id) && e.status === 3))
  t.deepEqual(zombieChildren(), [])
})
