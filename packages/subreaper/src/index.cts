// subreaper: a child-process reaper for Node.js.
import { installChildProcessHooks } from './child-process-hooks.cjs'
import { callNative, describe, typeError } from './errors.cjs'
import { Monitor, setEnvironmentOwner } from './monitor.cjs'
import { native } from './native.cjs'
import { setOwnershipOwner } from './ownership.cjs'

// Starts (or joins) the process's reaper. A second copy of the package in the same process
// cannot: its addon throws an error whose code is ERR_SUBREAPER_DUPLICATE, as docs/api.md says.
const owner = native.attach()
setEnvironmentOwner(owner)
setOwnershipOwner(owner)
installChildProcessHooks(owner)

/** The process-wide monitor (containerd's `Default`). */
export const monitor = new Monitor()

/**
 * Makes this process the reaper of its orphaned descendants (Linux PR_SET_CHILD_SUBREAPER):
 * grandchildren whose parent exits are re-parented here, reaped, and broadcast.
 * Throws UnsupportedError on other platforms.
 */
export function setSubreaper(on: boolean): void {
  if (typeof on !== 'boolean') {
    throw typeError(`setSubreaper takes a boolean (true to become a subreaper, false to stop being one); got ${describe(on)}`)
  }
  callNative(() => native.setSubreaper(on))
}

/** Whether this process is a child subreaper. Throws UnsupportedError off Linux. */
export function isSubreaper(): boolean {
  return callNative(() => native.isSubreaper())
}

/** Whether this process is PID 1 of its PID namespace (the init of a container). */
export function isInit(): boolean {
  return native.isInit()
}

/** Counters of the process's reaper, for diagnostics. */
export function reaperStats() {
  return native.stats()
}

/**
 * What the engine holds for a pid, in words, or null when it has no entry for it: who it takes
 * to own the child, what has happened to it, and what its rules decide for it now. For bug
 * reports (a zombie nobody reaps); the wording is not a stable format.
 */
export function describeChild(pid: number): string | null {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 0x7fffffff) {
    throw typeError(`describeChild takes a pid (an integer from 1 to 2147483647); got ${describe(pid)}`)
  }
  return callNative(() => native.describeChild(pid)) ?? null
}

export { Monitor } from './monitor.cjs'
export { configureReaping, declareChild } from './ownership.cjs'
export type { ReapingRules } from './ownership.cjs'
export type { WaitOptions } from './monitor.cjs'
export { IterableSubscription, Subscription } from './subscription.cjs'
export type { CallbackSubscribeOptions, ExitCallback, SubscribeOptions } from './subscription.cjs'
export type { Exit, Rusage } from './exit.cjs'
export { signalName } from './exit.cjs'
export { AbortError, MonitorClosedError, NotAChildError, SubscriptionLaggedError, UnsupportedError, WaitTimeoutError } from './errors.cjs'
export { SUPPORTED_PLATFORMS } from './native.cjs'
