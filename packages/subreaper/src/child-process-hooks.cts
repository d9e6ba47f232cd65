// What the package adds to Node's child_process in an environment that loads it, and why
// nothing of it is visible.
//
// Each ChildProcess is reached through the public `diagnostics_channel` channel
// `child_process`; two internals of its process handle (`spawn`, `onexit`) are wrapped only
// where they are what this module expects.
//
// The engine never needs these hooks to keep child_process working: every fork() in the
// process (libuv's, in every thread, whether that thread loaded subreaper or not) registers
// its child with the engine as that thread's, before fork() returns, and the engine never
// reaps a live thread's child. The hooks only add what the engine cannot know by itself:
// - the owner: the child is declared as this environment's, so that when the environment
//   is torn down (a worker terminated) its children become leftovers;
// - the start time, read once the child has exec'd, so that `monitor.kill` can refuse a
//   recycled pid;
// - libuv's own report of the exit, taken from the process handle's internal `onexit`
//   callback right after Node's own 'exit' listeners ran: the engine announces the exit from
//   it (it holds back its own announcement for that), and callback subscribers get it in
//   that same turn of the loop. Kernels before 6.15 also need it when libuv reaps before the
//   engine can look.
// No listener is added to the ChildProcess (its `eventNames()` stay as without subreaper,
// and `removeAllListeners()` cannot remove anything of ours), no `process.binding` is used,
// and synchronous spawns are not hooked at all: their child is registered by the fork hook
// like any other, so a long `execSync` holds nothing back.
import { ChildProcess } from 'node:child_process'
import { subscribe } from 'node:diagnostics_channel'
import { getSystemErrorName } from 'node:util'

import { owner } from './environment.cjs'
import { signalNumber } from './exit.cjs'
import { native } from './native.cjs'
import { Subscription } from './subscription.cjs'

const INSTALLED = Symbol.for('subreaper.childProcessHooks')

interface SpawnFailure {
  error: Error
  /** Node has already emitted the 'error' event for it. */
  emitted: boolean
}

const spawnFailures = new WeakMap<ChildProcess, SpawnFailure>()

// Start time (clock ticks since boot) of each child, read when it was registered: with the
// pid it names that one process, so a signal can be refused once the pid may be recycled.
const startTimes = new WeakMap<ChildProcess, number>()

/** The start time recorded for a child_process child, if any. */
export function childStartTime(child: ChildProcess): number | undefined {
  return startTimes.get(child)
}

/** The spawn error of a child whose spawn failed, and whether Node has emitted it yet. */
export function spawnFailure(child: ChildProcess): SpawnFailure | undefined {
  return spawnFailures.get(child)
}

type OnExit = (this: ProcessHandle, exitCode: number, signalCode: string | null) => unknown

/** Node's native process handle (`ChildProcess._handle`): its spawn runs libuv's uv_spawn. */
interface ProcessHandle {
  spawn: (this: ProcessHandle, ...args: unknown[]) => unknown
  /** Called by Node when libuv has reaped the child. */
  onexit?: OnExit
  /** Set by the native spawn when it succeeded. */
  pid?: number
}

/** Reports as this environment, whose callback subscriptions `deliverQueued` drains next. */
function report(pid: number, start: number | undefined, code: number | null, signal: string | null): void {
  const signo = signal ? signalNumber(signal as NodeJS.Signals) : undefined
  native.report(pid, signo === undefined ? (code ?? 0) : undefined, signo, start, owner)
}

function declare(child: ChildProcess, pid: number): void {
  const start = native.own(pid, owner)
  if (start != null) startTimes.set(child, start)
}

export function installChildProcessHooks(): void {
  const proto = ChildProcess.prototype as unknown as Record<PropertyKey, unknown>
  if (proto[INSTALLED]) return
  Object.defineProperty(proto, INSTALLED, { value: true })
  // Node publishes every ChildProcess on this channel at the end of its constructor (Node 16.17
  // and later, every line since), with its process handle already made: a public way to reach
  // each child before it is spawned. A throw in a subscriber would surface as an uncaught
  // exception, so nothing may escape.
  subscribe('child_process', (message) => {
    try {
      const child = (message as { process?: unknown } | null)?.process
      if (child instanceof ChildProcess) hookHandle(child)
    } catch {
      // Not the handle this package knows: the child is still registered by the fork hook.
    }
  })
}

/**
 * Wraps the two internals of one child's process handle that the package uses, only where
 * they are what it expects; otherwise the child is left as it is (registered by the fork hook,
 * not reported by its owner).
 */
function hookHandle(child: ChildProcess): void {
  const handle = (child as unknown as { _handle?: ProcessHandle | null })._handle
  if (handle == null || typeof handle.spawn !== 'function' || typeof handle.onexit !== 'function') return
  const nativeSpawn = handle.spawn
  // Pauses only the attribution of this thread's new children, for kernels without
  // per-thread children lists, and only around the native spawn: a worker terminated while
  // JavaScript runs skips `finally` blocks, but between pause() and resume() below only
  // native functions run, and V8 acts on a termination only when JavaScript enters a
  // function or loops. Every argument is passed on as given: their number and order differ
  // between Node lines (one options object up to Node 22, eight values from Node 24).
  handle.spawn = function spawnDeclared(this: ProcessHandle, ...args: unknown[]): unknown {
    native.pause()
    let result: unknown
    try {
      result = nativeSpawn.apply(this, args)
      return result
    } finally {
      // Also when the native spawn threw after starting the child (an argument that does
      // not convert to a string, such as a Symbol): libuv reaps that child like any other.
      try {
        const pid = this.pid
        if (typeof pid === 'number' && pid > 0) declare(child, pid)
        else if (typeof result === 'number' && result < 0) recordSpawnFailure(child, result)
      } finally {
        native.resume()
      }
    }
  }
  const onexit = handle.onexit
  // A property Node's handle calls, not an event target.
  // oxlint-disable-next-line unicorn/prefer-add-event-listener
  handle.onexit = function onexitReported(this: ProcessHandle, exitCode: number, signalCode: string | null) {
    const pid = this.pid ?? child.pid
    try {
      // Node's own 'exit' first: the report and the callbacks add nothing to its latency.
      return onexit.call(this, exitCode, signalCode)
    } finally {
      // Also when an 'exit' listener threw: the exit is never lost.
      if (typeof pid === 'number' && pid > 0) {
        try {
          report(pid, startTimes.get(child), exitCode, signalCode)
          // The exit is now in this environment's subscriber queues (announced by this
          // report, or by the engine if the loop was late): hand it to callback
          // subscribers now, in this turn of the loop.
          Subscription.deliverQueued()
        } catch {
          // Never let the report stand between libuv and the ChildProcess.
        }
      }
    }
  }
}

function recordSpawnFailure(child: ChildProcess, errno: number): void {
  const code = getSystemErrorName(errno)
  const file = (child as unknown as { spawnfile?: string }).spawnfile ?? ''
  const error = Object.assign(new Error(`spawn ${file} ${code}`), {
    errno,
    code,
    syscall: `spawn ${file}`,
    path: file,
    spawnargs: child.spawnargs.slice(1),
  })
  const failure: SpawnFailure = { error, emitted: false }
  spawnFailures.set(child, failure)
  // Node emits the 'error' event on the next tick: this tick runs after it.
  process.nextTick(() => {
    failure.emitted = true
  })
}
