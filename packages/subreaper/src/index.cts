// subreaper: a child-process reaper for Node.js.
import { installChildProcessHooks } from './child-process-hooks.cjs'
import { UnsupportedError } from './errors.cjs'
import { Monitor, setEnvironmentOwner } from './monitor.cjs'
import { native } from './native.cjs'
import { setOwnershipOwner } from './ownership.cjs'

/**
 * Starts (or joins) the process's reaper. A second copy of the package in the same process
 * cannot: its addon refuses with a message starting `ERR_SUBREAPER_DUPLICATE`, which becomes the
 * error's code, as the README documents.
 */
function attach(): number {
  try {
    return native.attach()
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    if (message.startsWith('ERR_SUBREAPER_DUPLICATE')) {
      const duplicate = new Error(message.replace(/^ERR_SUBREAPER_DUPLICATE: /, ''))
      ;(duplicate as NodeJS.ErrnoException).code = 'ERR_SUBREAPER_DUPLICATE'
      throw duplicate
    }
    throw err
  }
}

const owner = attach()
setEnvironmentOwner(owner)
setOwnershipOwner(owner)
installChildProcessHooks(owner)

/** The process-wide monitor (containerd's `Default`). */
export const monitor = new Monitor()

function roleCall<T>(fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    if (message.startsWith('ERR_SUBREAPER_UNSUPPORTED')) {
      throw new UnsupportedError(message.replace(/^ERR_SUBREAPER_UNSUPPORTED: /, ''))
    }
    throw err
  }
}

/**
 * Makes this process the reaper of its orphaned descendants (Linux PR_SET_CHILD_SUBREAPER):
 * grandchildren whose parent exits are re-parented here, reaped, and broadcast.
 * Throws UnsupportedError on other platforms.
 */
export function setSubreaper(on = true): void {
  if (typeof on !== 'boolean') {
    throw Object.assign(new TypeError(`setSubreaper takes a boolean; got ${typeof on}`), { code: 'ERR_INVALID_ARG_TYPE' })
  }
  roleCall(() => native.setSubreaper(on))
}

/** Whether this process is a child subreaper. Throws UnsupportedError off Linux. */
export function isSubreaper(): boolean {
  return roleCall(() => native.isSubreaper())
}

/** Whether this process is PID 1 of its PID namespace (the init of a container). */
export function isInit(): boolean {
  return native.isInit()
}

/** Counters of the process's reaper, for diagnostics. */
export function reaperStats() {
  return native.stats()
}

export { Monitor } from './monitor.cjs'
export { configureReaping, declareChild } from './ownership.cjs'
export type { ReapingRules } from './ownership.cjs'
export type { WaitOptions } from './monitor.cjs'
export { Subscription } from './subscription.cjs'
export type { SubscribeOptions, ExitCallback } from './subscription.cjs'
export type { Exit, Rusage } from './exit.cjs'
export { signalName } from './exit.cjs'
export {
  AbortError,
  NotAChildError,
  SubscriptionLaggedError,
  UnsupportedError,
  WaitTimeoutError,
} from './errors.cjs'
export { SUPPORTED_PLATFORMS } from './native.cjs'
