// When the event loop empties, exits may still be on their way to callback subscribers: zombies
// the engine has yet to reap, exits it recorded and has not yet delivered. The addon's calls
// into JavaScript are weak (an idle reaper must never keep a process alive), so without this a
// script that subscribes with a callback could end after 129 of 10,001 exits. At 'beforeExit',
// while a callback subscription is open, the loop is held until the engine has nothing left:
// no zombie to reap, and every recorded exit delivered to each such subscription. Then the
// loop empties again, 'beforeExit' runs again, and the process ends once it finds no work.
import { hold } from './keepalive.cjs'
import { native } from './native.cjs'

/** A callback subscription, as seen from here. */
export interface CallbackDelivery {
  /** Holds the loop until the exits recorded up to `recorded` have been delivered to it. */
  holdUntilDelivered(recorded: number): void
}

const subscriptions = new Set<CallbackDelivery>()
let installed = false

/** How often the engine is asked again while it still has zombies to reap. */
const POLL_MS = 2
/** A zombie that stays this long with no new exit recorded is not waited for (nobody reaps it). */
const NO_PROGRESS_MS = 2000

/** The exit count at which zombies stopped being reaped; not waited for again at that count. */
let stuckAt: number | undefined
let reaping = false

export function deliverBeforeExit(sub: CallbackDelivery): void {
  subscriptions.add(sub)
  if (!installed) {
    installed = true
    process.on('beforeExit', onBeforeExit)
  }
}

export function stopDelivering(sub: CallbackDelivery): void {
  subscriptions.delete(sub)
}

function onBeforeExit(): void {
  if (subscriptions.size === 0 || reaping) return
  const work = native.workInFlight()
  if (work.zombie && work.exitsRecorded !== stuckAt) {
    holdWhileReaping(work.exitsRecorded)
    return
  }
  for (const sub of subscriptions) sub.holdUntilDelivered(work.exitsRecorded)
}

/** Holds the loop while the engine has zombies to reap (their exits then flow to subscribers). */
function holdWhileReaping(recorded: number): void {
  reaping = true
  const release = hold()
  let lastCount = recorded
  let lastProgress = Date.now()
  const check = () => {
    const work = native.workInFlight()
    if (work.exitsRecorded !== lastCount) {
      lastCount = work.exitsRecorded
      lastProgress = Date.now()
    }
    const stuck = Date.now() - lastProgress >= NO_PROGRESS_MS
    if (work.zombie && !stuck && subscriptions.size > 0) {
      setTimeout(check, POLL_MS)
      return
    }
    if (work.zombie && stuck) stuckAt = work.exitsRecorded
    reaping = false
    release()
  }
  setTimeout(check, POLL_MS)
}
