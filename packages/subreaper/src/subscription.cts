// A stream of exits for one subscriber: a callback, or an async iterator, over the engine's
// bounded queue for it.
import { SubscriptionLaggedError, validateDuration, validateFunction, validateInteger, validateObject } from './errors.cjs'
import { decodeExits, type Exit } from './exit.cjs'
import { hold } from './keepalive.cjs'
import { native, type NativeSubscription } from './native.cjs'

export interface SubscribeOptions {
  /** Exits held for this subscriber before it counts as full. Default 32 (1 to 1,048,576). */
  bufferSize?: number
  /** How long (ms) it may stay full before it is closed with a SubscriptionLaggedError. Default 1000. */
  lagTimeout?: number
  /** How many exits may wait beyond the buffer during that time. Default 16,384. */
  maxOverflow?: number
  /**
   * Callback form only: receives the SubscriptionLaggedError if the subscription is closed for
   * lagging. Without it, the error is emitted as a process warning.
   */
  onError?: (error: SubscriptionLaggedError) => void
}

export type ExitCallback = (exit: Exit) => void

const disposeSymbol: symbol = (Symbol as { dispose?: symbol }).dispose ?? Symbol.for('nodejs.dispose')

interface PendingRead {
  resolve: (r: IteratorResult<Exit>) => void
  reject: (e: Error) => void
  release: () => void
}

const BATCH = 1024

// Callback subscriptions still open in this environment. The engine resolves a wait as soon as
// it records an exit, but hands the exit to subscribers on its broadcast thread, which may run
// a little later; and the subscriptions' calls into JavaScript are weak. So a process whose
// last wait just resolved could exit before its callback subscribers got exits the engine had
// already recorded. When the loop empties, each callback subscription that has not yet been
// given every exit recorded since it subscribed holds the loop until it has (or it closes).
const callbackSubscriptions = new Set<Subscription>()
let flushInstalled = false

// `using sub = monitor.subscribe()` must type-check: the method is installed under
// Symbol.dispose (where the runtime has it; every Node >= 20.4 does), which a computed key of
// type `symbol` does not tell TypeScript.
export interface Subscription {
  [Symbol.dispose](): void
}

export class Subscription implements AsyncIterableIterator<Exit> {
  #native: NativeSubscription | null
  #callback: ExitCallback | undefined
  #onError: ((error: SubscriptionLaggedError) => void) | undefined
  #reads: PendingRead[] = []
  #error: SubscriptionLaggedError | null = null
  #done = false
  #onClose: (s: Subscription) => void
  /** Exits recorded by the engine before this subscription was registered (callback form). */
  #startSeq = 0
  /** The engine's sequence number of the last exit delivered to the callback. */
  #lastSeq = 0
  /** Held at 'beforeExit' until the exits recorded by then are delivered. */
  #flush: { upTo: number; release: () => void } | null = null

  /** @internal Use `monitor.subscribe()`. */
  constructor(owner: number, callback: ExitCallback | undefined, options: SubscribeOptions | undefined, onClose: (s: Subscription) => void) {
    validateObject(options, 'options')
    if (callback !== undefined) validateFunction(callback, 'callback')
    const bufferSize = options?.bufferSize === undefined ? 32 : validateInteger(options.bufferSize, 'options.bufferSize', 1, 1 << 20)
    const lagTimeout = options?.lagTimeout === undefined ? 1000 : validateDuration(options.lagTimeout, 'options.lagTimeout')
    const maxOverflow =
      options?.maxOverflow === undefined ? 16_384 : validateInteger(options.maxOverflow, 'options.maxOverflow', 0, 1 << 24)
    if (options?.onError !== undefined) validateFunction(options.onError, 'options.onError')
    this.#callback = callback
    this.#onError = options?.onError
    this.#onClose = onClose
    this.#native = native.subscribe(owner, () => this.#onReadable(), bufferSize, lagTimeout, maxOverflow)
    if (callback) {
      // Read after registering: every exit numbered above this is offered to this subscriber.
      this.#startSeq = native.stats().exitsRecorded
      callbackSubscriptions.add(this)
      if (!flushInstalled) {
        flushInstalled = true
        process.on('beforeExit', Subscription.#flushBeforeExit)
      }
    }
  }

  /** True once no more exits will be delivered (unsubscribed, or lagged). */
  get closed(): boolean {
    return this.#done || this.#native === null
  }

  /** Exits queued for this subscriber and not yet read. */
  get pending(): number {
    return this.#native?.pending ?? 0
  }

  /** Stops delivery. Pending reads of the iterator end with `done: true`. Safe to call twice. */
  unsubscribe(): void {
    if (this.#native) {
      this.#native.unsubscribe()
      this.#native = null
    }
    this.#finish()
  }

  next(): Promise<IteratorResult<Exit>> {
    if (this.#callback) {
      return Promise.reject(
        Object.assign(
          new TypeError('this subscription delivers to its callback: subscribe without a callback to iterate it'),
          { code: 'ERR_INVALID_STATE' },
        ),
      )
    }
    if (this.#error) {
      const err = this.#error
      this.#error = null
      return Promise.reject(err)
    }
    if (this.#done || !this.#native) return Promise.resolve({ done: true, value: undefined })
    const now = this.#pull()
    if (now) return Promise.resolve(now)
    if (this.#error) return this.next()
    if (this.#done) return Promise.resolve({ done: true, value: undefined })
    return new Promise((resolve, reject) => {
      this.#reads.push({ resolve, reject, release: hold() })
    })
  }

  return(): Promise<IteratorResult<Exit>> {
    this.unsubscribe()
    return Promise.resolve({ done: true, value: undefined })
  }

  [Symbol.asyncIterator](): this {
    return this
  }

  [disposeSymbol](): void {
    this.unsubscribe()
  }

  /**
   * @internal Delivers what is already queued to this environment's callback subscribers, now.
   * Called when a child's 'exit' is reported, before the user's own 'exit' listeners run.
   */
  static deliverQueued(): void {
    for (const sub of callbackSubscriptions) if (sub.#native && sub.#native.pending > 0) sub.#deliverToCallback()
  }

  static #flushBeforeExit(): void {
    if (callbackSubscriptions.size === 0) return
    const recorded = native.stats().exitsRecorded
    for (const sub of callbackSubscriptions) sub.#holdUntilDelivered(recorded)
  }

  /** Holds the loop until the exits recorded up to `recorded` have been delivered. */
  #holdUntilDelivered(recorded: number): void {
    if (this.#flush || !this.#native || recorded <= Math.max(this.#startSeq, this.#lastSeq)) return
    this.#flush = { upTo: recorded, release: hold() }
    // Some may already be queued, their notification still on its way.
    this.#deliverToCallback()
  }

  #releaseFlush(): void {
    if (this.#flush && (!this.#native || this.#lastSeq >= this.#flush.upTo)) {
      this.#flush.release()
      this.#flush = null
    }
  }

  /** Takes one queued exit for the iterator, noting the end of the stream if it came. */
  #pull(): IteratorResult<Exit> | undefined {
    if (!this.#native) return undefined
    const r = this.#native.drain(1)
    const { exits } = decodeExits(r.fields, r.comms)
    if (exits.length > 0) return { done: false, value: exits[0]! }
    if (r.closed) this.#closedBy(r.laggedMissed)
    return undefined
  }

  #onReadable(): void {
    if (this.#callback) {
      this.#deliverToCallback()
      return
    }
    while (this.#reads.length > 0) {
      const got = this.#pull()
      if (!got) break
      const read = this.#reads.shift()!
      read.release()
      read.resolve(got)
    }
  }

  #deliverToCallback(): void {
    const callback = this.#callback!
    while (this.#native) {
      const r = this.#native.drain(BATCH)
      const { exits, lastSeq } = decodeExits(r.fields, r.comms)
      if (lastSeq > this.#lastSeq) this.#lastSeq = lastSeq
      for (const exit of exits) {
        try {
          callback(exit)
        } catch (err) {
          // Surfaces as an uncaught exception, as an EventEmitter listener's would; the
          // remaining exits are still delivered.
          process.nextTick(() => {
            throw err
          })
        }
      }
      if (r.closed) {
        this.#closedBy(r.laggedMissed)
        return
      }
      if (exits.length < BATCH) break
    }
    this.#releaseFlush()
  }

  #closedBy(laggedMissed: number | undefined): void {
    if (this.#native) {
      this.#native.unsubscribe()
      this.#native = null
    }
    if (laggedMissed !== undefined) {
      const err = new SubscriptionLaggedError(laggedMissed)
      if (this.#callback) {
        if (this.#onError) this.#onError(err)
        else process.emitWarning(err)
      } else if (this.#reads.length > 0) {
        const read = this.#reads.shift()!
        read.release()
        read.reject(err)
      } else {
        this.#error = err
      }
    }
    this.#finish()
  }

  #finish(): void {
    if (this.#done) return
    this.#done = true
    callbackSubscriptions.delete(this)
    this.#flush?.release()
    this.#flush = null
    for (const read of this.#reads.splice(0)) {
      read.release()
      read.resolve({ done: true, value: undefined })
    }
    this.#onClose(this)
  }
}
