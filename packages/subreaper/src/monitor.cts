// The API users call: start a child, wait for an exit, subscribe to every exit, sweep.
import { ChildProcess, spawn, type SpawnOptions } from 'node:child_process'

import { childStartTime, spawnFailure } from './child-process-hooks.cjs'
import {
  AbortError,
  NotAChildError,
  WaitTimeoutError,
  validateAbortSignal,
  validateDuration,
  validateObject,
  validatePid,
} from './errors.cjs'
import { signalNumber, toExit, type Exit } from './exit.cjs'
import { hold } from './keepalive.cjs'
import { native, type ExitRecord } from './native.cjs'
import { Subscription, type ExitCallback, type SubscribeOptions } from './subscription.cjs'

export interface WaitOptions {
  /** Aborts the wait (not the child): the promise rejects with an AbortError. */
  signal?: AbortSignal
  /** Gives up after this many milliseconds with a WaitTimeoutError (the child keeps running). */
  timeout?: number
}

let environmentOwner: number | undefined

/** @internal */
export function setEnvironmentOwner(owner: number): void {
  environmentOwner = owner
}

function owner(): number {
  if (environmentOwner === undefined) throw new Error('subreaper is not initialised in this environment')
  return environmentOwner
}

function validateSignal(signal: unknown): number {
  if (typeof signal === 'number' && Number.isInteger(signal) && signal >= 0 && signal <= 64) return signal
  const signo = typeof signal === 'string' ? signalNumber(signal) : undefined
  if (signo === undefined) {
    throw Object.assign(new TypeError(`unknown signal ${describe(signal)}: use a name such as 'SIGTERM' or a number from 0 to 64`), {
      code: 'ERR_UNKNOWN_SIGNAL',
    })
  }
  return signo
}

function findDescendant(pid: number) {
  return native.descendants(process.pid).find((p) => p.pid === pid)
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : typeof value
}

/**
 * A set of subscriptions over the process's single reaper. `monitor` is the process-wide
 * default; `new Monitor()` gives an independent set that `close()` ends at once.
 */
export class Monitor {
  #subscriptions = new Set<Subscription>()

  /**
   * Runs a command as `child_process.spawn` does (same arguments, same ChildProcess), with its
   * exit captured from the start: `wait(child)` gets it however late it is called.
   */
  start(command: string, args?: readonly string[], options?: SpawnOptions): ChildProcess
  start(command: string, options?: SpawnOptions): ChildProcess
  start(command: string, argsOrOptions?: readonly string[] | SpawnOptions, maybeOptions?: SpawnOptions): ChildProcess {
    if (typeof command !== 'string' || command.length === 0) {
      throw Object.assign(new TypeError(`command must be a non-empty string; got ${describe(command)}`), {
        code: 'ERR_INVALID_ARG_TYPE',
      })
    }
    let args: readonly string[] = []
    let options: SpawnOptions | undefined
    if (Array.isArray(argsOrOptions)) {
      args = argsOrOptions
      options = maybeOptions
    } else {
      if (argsOrOptions !== undefined && maybeOptions !== undefined) {
        throw Object.assign(new TypeError('args must be an array of strings when options are also given'), {
          code: 'ERR_INVALID_ARG_TYPE',
        })
      }
      options = argsOrOptions as SpawnOptions | undefined
    }
    validateObject(options, 'options')
    const child = spawn(command, args, options ?? {})
    if (child.pid !== undefined) captureExit(child, child.pid)
    return child
  }

  /**
   * Resolves with the exit of a child (a ChildProcess or a pid): at once if it already exited,
   * else when it does. Rejects with NotAChildError for a pid that is not a child, with the
   * spawn error for a ChildProcess that never started, AbortError or WaitTimeoutError.
   */
  wait(target: ChildProcess | number, options?: WaitOptions): Promise<Exit> {
    try {
      validateObject(options, 'options')
      validateAbortSignal(options?.signal, 'options.signal')
      if (options?.timeout !== undefined) validateDuration(options.timeout, 'options.timeout')
      if (target instanceof ChildProcess) return waitForChild(target, options)
      return waitForPid(validatePid(target), options)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Every exit from now on, in reap order, to a callback. */
  subscribe(callback: ExitCallback, options?: SubscribeOptions): Subscription
  /** Every exit from now on, in reap order, as an async iterator. */
  subscribe(options?: SubscribeOptions): Subscription
  subscribe(callbackOrOptions?: ExitCallback | SubscribeOptions, maybeOptions?: SubscribeOptions): Subscription {
    const callback = typeof callbackOrOptions === 'function' ? callbackOrOptions : undefined
    const options = typeof callbackOrOptions === 'function' ? maybeOptions : (callbackOrOptions ?? maybeOptions)
    const sub = new Subscription(owner(), callback, options, (s) => this.#subscriptions.delete(s))
    this.#subscriptions.add(sub)
    return sub
  }

  /**
   * Sends a signal (default SIGTERM) to a child or descendant, never to a recycled pid: the
   * process is named by its pid *and* start time, and signalled through a pidfd (Linux 5.3+).
   * Returns false when it has already exited. Throws NotAChildError for a pid that is not a
   * descendant of this process, and TypeError for an unknown signal.
   */
  kill(target: ChildProcess | number, signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    const signo = validateSignal(signal)
    if (target instanceof ChildProcess) {
      const pid = target.pid
      if (pid === undefined || target.exitCode !== null || target.signalCode !== null) return false
      const start = childStartTime(target)
      const entry = start === undefined ? undefined : findDescendant(pid)
      // Gone, exited, or the pid now names another process: refuse.
      if (!entry || entry.zombie || entry.startTime !== start) return false
      return native.signalProcess(pid, entry.startTime, signo)
    }
    const pid = validatePid(target)
    const entry = findDescendant(pid)
    if (!entry) throw new NotAChildError(pid)
    if (entry.zombie) return false
    return native.signalProcess(pid, entry.startTime, signo)
  }

  /** Reaps every child that has exited by now (the seed's `Reap`); resolves with those exits. */
  reap(): Promise<Exit[]> {
    try {
      // Swept on a thread of libuv's pool: the event loop keeps running meanwhile.
      return native.sweep().then((records) => records.map(toExit))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** The subscriptions of this monitor still open. */
  get subscriptions(): number {
    return this.#subscriptions.size
  }

  /** Unsubscribes every subscription of this monitor. */
  close(): void {
    for (const sub of [...this.#subscriptions]) sub.unsubscribe()
  }
}

// Exits of children started with `start`, captured from the moment they were spawned, so a
// late `wait(child)` never depends on the recent-exit table. Keyed by the ChildProcess object
// (not the pid, which the kernel recycles) and dropped with it.
const captured = new WeakMap<ChildProcess, Promise<Exit>>()

function captureExit(child: ChildProcess, pid: number): void {
  const exit = new Promise<Exit>((resolve, reject) => {
    const r = native.wait(pid, (record: ExitRecord) => resolve(toExit(record)))
    if (r.exit) resolve(toExit(r.exit))
    else if (r.notAChild) reject(new NotAChildError(pid))
  })
  exit.catch(() => {})
  captured.set(child, exit)
}

function waitForChild(child: ChildProcess, options: WaitOptions | undefined): Promise<Exit> {
  if (child.pid !== undefined) {
    const exit = captured.get(child)
    return exit ? bounded(child.pid, exit, options, () => {}) : waitForPid(child.pid, options)
  }
  const failure = spawnFailure(child)
  if (!failure) {
    return Promise.reject(
      Object.assign(new TypeError('the ChildProcess has no pid and no spawn error: it was never spawned'), {
        code: 'ERR_INVALID_ARG_VALUE',
      }),
    )
  }
  if (failure.emitted) return Promise.reject(failure.error)
  // Node emits the spawn error on the next tick: reject with that very error object.
  return new Promise((_, reject) => child.once('error', reject))
}

function waitForPid(pid: number, options: WaitOptions | undefined): Promise<Exit> {
  if (options?.signal?.aborted) return Promise.reject(new AbortError(options.signal.reason))
  let waitId: number | undefined
  let onExit: (e: Exit) => void = () => {}
  const r = native.wait(pid, (record: ExitRecord) => onExit(toExit(record)))
  if (r.exit) return Promise.resolve(toExit(r.exit))
  if (r.notAChild) return Promise.reject(new NotAChildError(pid))
  waitId = r.waitId!
  const exit = new Promise<Exit>((resolve) => {
    onExit = resolve
  })
  return bounded(pid, exit, options, () => {
    if (waitId !== undefined) native.cancelWait(pid, waitId)
    waitId = undefined
  })
}

/** Holds the event loop while `exit` is pending, and applies the abort signal and timeout. */
function bounded(pid: number, exit: Promise<Exit>, options: WaitOptions | undefined, cancel: () => void): Promise<Exit> {
  const signal = options?.signal
  if (signal?.aborted) {
    cancel()
    return Promise.reject(new AbortError(signal.reason))
  }
  return new Promise<Exit>((resolve, reject) => {
    const release = hold()
    let timer: NodeJS.Timeout | undefined
    const cleanup = () => {
      release()
      if (timer) clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
    const giveUp = (err: Error) => {
      cancel()
      cleanup()
      reject(err)
    }
    const onAbort = () => giveUp(new AbortError(signal?.reason))
    signal?.addEventListener('abort', onAbort, { once: true })
    if (options?.timeout !== undefined) {
      const ms = options.timeout
      timer = setTimeout(() => giveUp(new WaitTimeoutError(pid, ms)), ms)
    }
    exit.then(
      (e) => {
        cleanup()
        resolve(e)
      },
      (err) => {
        cleanup()
        reject(err)
      },
    )
  })
}
