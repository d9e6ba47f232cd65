// `subreaper/init`: makes a Node app its own correct init, with no wrapper process.
//
//   node --import subreaper/init app.js        (or require('subreaper/init') as a first line)
//
// Loading the package starts its reaper, which reaps every child no other waiter owns: the
// orphans a PID 1 (or a subreaper) adopts. The app's own child_process children stay Node's.
//
// - As PID 1 of a PID namespace (a container's init): the kernel gives PID 1 no default action
//   for a signal it does not handle, so SIGTERM, SIGINT and SIGHUP would be ignored. Each gets a
//   listener that, when the app has no listener of its own for it, exits with 128 + the signal
//   number (143 for SIGTERM), as the process would end outside PID 1 (a shell or a container
//   runtime reads that status the same way). An app that handles the signal decides itself.
// - Anywhere else (Linux): the process becomes a subreaper, so orphans of its descendants come
//   back to it and are reaped. Elsewhere (macOS) this is not available: a warning says so.
import { constants } from 'node:os'

import { isInit, setSubreaper } from './index.cjs'

/** What `subreaper/init` made of this process. */
export type InitRole = 'pid1' | 'subreaper' | 'none'

/** The signals whose default action PID 1 would lack. */
export const DEFAULT_ACTION_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const

function exitLikeDefault(signal: (typeof DEFAULT_ACTION_SIGNALS)[number]): void {
  const listener = (): void => {
    // This listener is always one of them: the app's own are the others.
    if (process.listenerCount(signal) > 1) return
    process.exit(128 + constants.signals[signal])
  }
  process.on(signal, listener)
}

function becomeInit(): InitRole {
  if (isInit()) {
    for (const signal of DEFAULT_ACTION_SIGNALS) exitLikeDefault(signal)
    return 'pid1'
  }
  try {
    setSubreaper(true)
    return 'subreaper'
  } catch (err) {
    process.emitWarning(`subreaper/init: orphans will not be adopted: ${(err as Error).message}`, { code: 'SUBREAPER_INIT' })
    return 'none'
  }
}

/** What this process became: PID 1 with default signal actions, a subreaper, or neither. */
export const role: InitRole = becomeInit()
