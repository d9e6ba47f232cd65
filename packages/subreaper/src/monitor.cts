// The API users call: start a child, wait for an exit, subscribe to every exit, sweep.
import { ChildProcess, spawn, type SpawnOptions } from 'node:child_process'

import { childStartTime, spawnFailure } from './child-process-hooks.cjs'
import { owner } from './environment.cjs'
import {
  AbortError,
  callNative,
  describe,
  fromNative,
  MonitorClosedError,
  NotAChildError,
  typeError,
  WaitTimeoutError,
  validateAbortSignal,
  validateDuration,
  validateObject,
  validatePid,
} from './errors.cjs'
import { decodeExit, decodeExits, signalNumber, type Exit } from './exit.cjs'
import { hold } from './keepalive.cjs'
import { native, type ExitBatch } from './native.cjs'
import {
  IterableSubscription,
  Subscription,
  type CallbackSubscribeOptions,
  type ExitCallback,
  type SubscribeOptions,
} from './subscription.cjs'

export interface WaitOptions {
  /** Aborts the wait (not the child): the promise rejects with an AbortError. */
  signal?: AbortSignal
  /** Gives up after this many milliseconds with a WaitTimeoutError (the child keeps running). */
  timeout?: number
}

function validateSignal(signal: unknown): number {
  if (typeof signal === 'number' && Number.isInteger(signal) && signal >= 0 && signal <= 64) return signal
  const signo = typeof signal === 'string' ? signalNumber(signal) : undefined
  if (signo === undefined) {
    const shown = typeof signal === 'string' ? JSON.stringify(signal) : typeof signal === 'number' ? String(signal) : describe(signal)
    throw typeError(`unknown signal ${shown}: use a name such as 'SIGTERM' or a number from 0 to 64`, 'ERR_UNKNOWN_SIGNAL')
  }
  return signo
}

function findDescendant(pid: number) {
  return native.descendants(process.pid).find((p) => p.pid === pid)
}

/**
 * A set of subscriptions over the process's single reaper. `monitor` is the process-wide
 * default; `new Monitor()` gives an independent set that `close()` ends at once.
 */
export class Monitor {
  #subscriptions = new Set<Subscription>()
  #closed = false

  /**
   * Runs a command as `child_process.spawn` does (it is handed exactly the arguments given, and
   * returns its ChildProcess), with the exit captured from the start: `wait(child)` gets it
   * however late it is called.
   */
  start(command: string, args?: readonly string[] | null, options?: SpawnOptions): ChildProcess
  start(command: string, options?: SpawnOptions): ChildProcess
  start(...spawnArguments: unknown[]): ChildProcess {
    // spawn validates and normalises them itself (`args` null, options alone...), with its own
    // errors: `start` takes exactly what it takes.
    const child = (spawn as (...a: unknown[]) => ChildProcess)(...spawnArguments)
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

  /**
   * Every exit recorded from now on (not those before this call), in reap order, to a
   * callback. Subscribe before starting the children whose exits you want.
   */
  subscribe(callback: ExitCallback, options?: CallbackSubscribeOptions): Subscription
  /**
   * Every exit recorded from now on (not those before this call), in reap order, as an async
   * iterator. Subscribe before starting the children whose exits you want.
   */
  subscribe(options?: SubscribeOptions): IterableSubscription
  subscribe(callbackOrOptions?: ExitCallback | SubscribeOptions, maybeOptions?: CallbackSubscribeOptions): Subscription {
    if (this.#closed) throw new MonitorClosedError()
    const first: unknown = callbackOrOptions
    if (first !== undefined && typeof first !== 'function' && (typeof first !== 'object' || first === null)) {
      // Both forms in one sentence: the first argument is a callback, or the options of the
      // iterator form (`subscribe(123)` is neither).
      throw typeError(
        `subscribe() takes a callback (a function, then optional options), an options object, or nothing; got ${describe(first)}`,
      )
    }
    const callback = typeof callbackOrOptions === 'function' ? callbackOrOptions : undefined
    const options = typeof callbackOrOptions === 'function' ? maybeOptions : (callbackOrOptions ?? maybeOptions)
    const init = { owner, callback, options, onClose: (s: Subscription) => this.#subscriptions.delete(s) }
    const sub = callback ? new Subscription(init) : new IterableSubscription(init)
    this.#subscriptions.add(sub)
    return sub
  }

  /**
   * Sends a signal (default SIGTERM) to a child or descendant, never to a recycled pid: the
   * process is named by its pid *and* start time, and signalled through a pidfd (Linux 5.3+).
   * Returns false when it has already exited. Throws NotAChildError for a pid that is not a
   * descendant of this process, TypeError for an unknown signal, and OsError when the system
   * refuses the signal.
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
      return callNative(() => native.signalProcess(pid, entry.startTime, signo))
    }
    const pid = validatePid(target)
    const entry = findDescendant(pid)
    if (!entry) throw new NotAChildError(pid, 'kill')
    if (entry.zombie) return false
    return callNative(() => native.signalProcess(pid, entry.startTime, signo))
  }

  /** Reaps every child that has exited by now (containerd's `Reap`); resolves with those exits. */
  reap(): Promise<Exit[]> {
    try {
      // Swept on a thread of libuv's pool: the event loop keeps running meanwhile.
      return native.sweep().then((batch) => decodeExits(batch))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** The subscriptions of this monitor still open. */
  get subscriptions(): number {
    return this.#subscriptions.size
  }

  /** Unsubscribes every subscription of this monitor; `subscribe()` then throws MonitorClosedError. */
  close(): void {
    this.#closed = true
    // unsubscribe() deletes from the set: iterate a copy.
    for (const sub of Array.from(this.#subscriptions)) sub.unsubscribe()
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed
  }
}

// Exits of children started with `start`, captured from the moment they were spawned, so a
// late `wait(child)` never depends on the recent-exit table. Keyed by the ChildProcess object
// (not the pid, which the kernel recycles) and dropped with it.
const captured = new WeakMap<ChildProcess, Promise<Exit>>()

function captureExit(child: ChildProcess, pid: number): void {
  const exit = new Promise<Exit>((resolve, reject) => {
    try {
      const r = native.wait(pid, (batch: ExitBatch) => resolve(decodeExit(batch)))
      if (r.exit) resolve(decodeExit(r.exit))
    } catch (err) {
      reject(fromNative(err, pid))
    }
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
    return Promise.reject(typeError('the ChildProcess has no pid and no spawn error: it was never spawned', 'ERR_INVALID_ARG_VALUE'))
  }
  if (failure.emitted) return Promise.reject(failure.error)
  // Node emits the spawn error on the next tick: reject with that very error object.
  return new Promise((_, reject) => child.once('error', reject))
}

function waitForPid(pid: number, options: WaitOptions | undefined): Promise<Exit> {
  if (options?.signal?.aborted) return Promise.reject(new AbortError(options.signal.reason))
  let waitId: number | undefined
  let onExit: (e: Exit) => void = () => {}
  let r: ReturnType<typeof native.wait>
  try {
    r = callNative(() => native.wait(pid, (batch: ExitBatch) => onExit(decodeExit(batch))), pid)
  } catch (err) {
    return Promise.reject(err)
  }
  if (r.exit) return Promise.resolve(decodeExit(r.exit))
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
