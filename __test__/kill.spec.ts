import test from 'ava'
import { spawn } from 'node:child_process'
import { once } from 'node:events'

import { monitor, NotAChildError } from 'subreaper'

import { noLiveChildren, noZombies } from './procs.ts'

test('kill signals a live child and reports it', async (t) => {
  const child = monitor.start('sleep', ['30'])
  t.true(monitor.kill(child, 'SIGUSR1'))
  const exit = await monitor.wait(child)
  t.is(exit.signal, 'SIGUSR1')
  t.is(exit.status, 128 + 10)
})

test('kill refuses once the child has exited: false, nothing is signalled', async (t) => {
  const child = monitor.start('sh', ['-c', 'exit 0'])
  await monitor.wait(child)
  if (child.exitCode === null) await once(child, 'exit')
  t.false(monitor.kill(child))
  t.false(monitor.kill(child, 'SIGKILL'))
})

test('kill works on a child_process child and on a descendant pid', async (t) => {
  const child = spawn('sleep', ['30'])
  const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, signal) => r(signal)))
  t.true(monitor.kill(child.pid!, 'SIGTERM'))
  t.is(await exited, 'SIGTERM')
})

test('kill throws NotAChildError for a process that is not a descendant, and TypeError for a bad signal', (t) => {
  t.throws(() => monitor.kill(1), { instanceOf: NotAChildError })
  t.throws(() => monitor.kill(process.pid), { instanceOf: NotAChildError })
  const child = monitor.start('sleep', ['30'])
  t.throws(() => monitor.kill(child, 'SIGNOPE' as NodeJS.Signals), { instanceOf: TypeError, message: /unknown signal/ })
  t.throws(() => monitor.kill(child, 99), { instanceOf: TypeError })
  t.throws(() => monitor.kill(-5), { instanceOf: RangeError })
  t.true(monitor.kill(child, 'SIGKILL'))
})

test.after.always('no zombie and no live child is left', async (t) => {
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
})
