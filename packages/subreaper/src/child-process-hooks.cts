// Where Node's own child_process is kept working while the reaper runs.
//
// A reaper that took every exited child would steal libuv's children: their 'exit' would never
// fire. So every child that child_process creates is registered with the engine as owned by
// libuv: the engine announces its exit (subscribers and waits see it) but leaves the zombie for
// libuv to reap, exactly as without subreaper. Reaping is paused while a spawn is in flight,
// because the pid is only known once spawn returns. Synchronous spawns (spawnSync, execSync,
// execFileSync) run a private libuv loop whose child's pid is only known when it is over: the
// engine is paused for their whole duration, and their exit is announced afterwards.
import { ChildProcess } from 'node:child_process'
import { isMainThread } from 'node:worker_threads'
import { getSystemErrorName } from 'node:util'

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

type SpawnFn = (this: ChildProcess, options: unknown) => unknown

/** Node's native process handle (`ChildProcess._handle`): its spawn runs libuv's uv_spawn. */
interface ProcessHandle {
  spawn: (this: ProcessHandle, options: unknown) => unknown
  /** Set by the native spawn when it succeeded. */
  pid?: number
}

function report(pid: number, code: number | null, signal: NodeJS.Signals | null): void {
  const signo = signal ? signalNumber(signal) : undefined
  native.report(pid, code ?? undefined, signo)
}

export function installChildProcessHooks(owner: number): void {
  const proto = ChildProcess.prototype as unknown as Record<PropertyKey, unknown> & { spawn: SpawnFn }
  if (proto[INSTALLED]) return
  proto[INSTALLED] = true

  const originalSpawn = proto.spawn
  proto.spawn = function spawn(this: ChildProcess, options: unknown) {
    const child = this
    // The engine is paused around the native spawn only (libuv's fork and exec), not around
    // ChildProcess.prototype.spawn: a worker terminated while JavaScript runs skips `finally`
    // blocks, so a pause spanning JavaScript function calls could be left held forever, and the
    // engine would stop reaping for the whole process. Between pause() and resume() below only
    // native functions are called, and V8 acts on a termination only when JavaScript enters a
    // function or loops: it lands before the pause or after the resume.
    const handle = (this as unknown as { _handle?: ProcessHandle | null })._handle
    const wrapped = handle != null && typeof handle.spawn === 'function'
    if (wrapped) {
      const nativeSpawn = handle.spawn
      handle.spawn = function spawnPaused(this: ProcessHandle, opts: unknown): unknown {
        native.pause(owner)
        try {
          return nativeSpawn.call(this, opts)
        } finally {
          // Also when the native spawn threw: it can start the child and then throw (an argument
          // that does not convert to a string, such as a Symbol), and libuv reaps that child
          // like any other. Unowned, the engine would take it from libuv, and the ChildProcess
          // would never emit 'exit' and would hold the event loop forever.
          try {
            const pid = this.pid
            if (typeof pid === 'number' && pid > 0) {
              const start = native.own(pid, owner)
              if (start != null) startTimes.set(child, start)
            }
          } finally {
            native.resume(owner)
          }
        }
      }
    } else {
      native.pause(owner)
    }
    let result: unknown
    try {
      result = originalSpawn.call(this, options)
    } finally {
      try {
        // The handle's pid when the spawn threw after starting the child (see spawnPaused).
        const pid = this.pid ?? (wrapped && typeof handle.pid === 'number' && handle.pid > 0 ? handle.pid : undefined)
        if (pid !== undefined) {
          if (!wrapped) {
            const start = native.own(pid, owner)
            if (start != null) startTimes.set(child, start)
          }
          this.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
            report(pid, code, signal)
            // The exit is now in this environment's subscriber queues (announced by the engine
            // or by this report): hand it to callback subscribers before the 'exit' listeners.
            Subscription.deliverQueued()
          })
        } else if (typeof result === 'number' && result < 0) {
          recordSpawnFailure(this, result)
        }
      } finally {
        if (!wrapped) native.resume(owner)
      }
    }
    return result
  }

  hookSpawnSync(owner)

  if (isMainThread) {
    // A SIGCHLD from a child the engine was not told about (forked by native code) wakes it
    // at once instead of at its next timed sweep. Node's signal watchers do not hold the loop.
    process.on('SIGCHLD', () => native.kick())
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
  // Node emits the 'error' event on the next tick; this tick runs after it.
  process.nextTick(() => {
    failure.emitted = true
  })
}

interface SpawnSyncResult {
  pid?: number
  status?: number | null
  signal?: string | null
}

function hookSpawnSync(owner: number): void {
  let binding: { spawn: (options: unknown) => SpawnSyncResult } | undefined
  try {
    // The object child_process itself calls for spawnSync, execSync and execFileSync.
    const bindingFn = (process as unknown as { binding?: (name: string) => unknown }).binding
    binding = bindingFn?.call(process, 'spawn_sync') as typeof binding
  } catch {
    binding = undefined
  }
  if (!binding || typeof binding.spawn !== 'function') return
  const originalSpawnSync = binding.spawn
  binding.spawn = function spawnSync(options: unknown): SpawnSyncResult {
    native.pause(owner)
    let result: SpawnSyncResult
    try {
      result = originalSpawnSync.call(this, options)
    } finally {
      native.resume(owner)
    }
    if (result && typeof result.pid === 'number' && result.pid > 0) {
      const signal = typeof result.signal === 'string' ? (result.signal as NodeJS.Signals) : null
      if (signal || typeof result.status === 'number') report(result.pid, result.status ?? null, signal)
    }
    return result
  }
}
