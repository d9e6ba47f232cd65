// A stream of exits for one subscriber, over the engine's bounded queue for it: a callback
// (`Subscription`), or an async iterator (`IterableSubscription`). Two types, so that iterating a
// callback subscription is a compile error rather than a runtime one.
import { deliverBeforeExit, stopDelivering } from './deliver-before-exit.cjs'
import {
  callNative,
  SubscriptionLaggedError,
  typeError,
  validateDuration,
  validateFunction,
  validateInteger,
  validateObject,
} from './errors.cjs'
import { DELIVERY_CHUNK, decodedExitAt, decodeExitAt, decodeExits, exitSeqAt, forgetDecoded, type Exit } from './exit.cjs'
// A const enum: inlined at compile time (see exit.cts).
import { ExitField } from '../native/binding.cjs'
import { hold } from './keepalive.cjs'
import { native, type NativeSubscription } from './native.cjs'

export interface SubscribeOptions {
  /** Exits held for this subscriber before it counts as full. Default 32 (1 to 1,048,576). */
  bufferSize?: number
  /** How long (ms) it may stay full before it is closed with a SubscriptionLaggedError. Default 1000. */
  lagTimeout?: number
  /** How many exits may wait beyond the buffer during that time. Default 16,384. */
  maxOverflow?: number
}

/** Options of the callback form. */
export interface CallbackSubscribeOptions extends SubscribeOptions {
  /**
   * Receives the SubscriptionLaggedError if the subscription is closed for lagging. Without it,
   * the error is emitted as a process warning.
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

// Where callback deliveries are drained into: one buffer for the environment. Its header is the
// count, the closed flag and the number missed when lagged (crates/subreaper-node/src/
// exit_record.rs), then up to DELIVERY_CHUNK exits. JavaScript runs one callback delivery at a
// time (`deliverQueued` does not nest), and the callbacks of a chunk run before the next drain.
const HEADER = 3
const scratch = new Float64Array(HEADER + DELIVERY_CHUNK * ExitField.Count)
let delivering = false

/** Where the command name that starts at `from` in what `drainInto` returned ends (NUL-separated). */
function commEnd(joined: string, from: number): number {
  const end = joined.indexOf('\0', from)
  return end < 0 ? joined.length : end
}

/** The command name between `from` and `end` in what `drainInto` returned (U+0001: none). */
function commAt(joined: string, from: number, end: number): string | null {
  const comm = joined.slice(from, end)
  return comm === '\u0001' ? null : comm
}

/** @internal What a subscription is made from. */
export interface SubscriptionInit {
  owner: number
  callback: ExitCallback | undefined
  options: CallbackSubscribeOptions | undefined
  onClose: (s: Subscription) => void
}

// `using sub = monitor.subscribe(...)` must type-check: the method is installed under
// Symbol.dispose (where the runtime has it; every Node >= 20.4 does), which a computed key of
// type `symbol` does not tell TypeScript.
export interface Subscription {
  [Symbol.dispose](): void
}

/** This environment's open callback subscriptions (see `Subscription.deliverQueued`). */
const callbackSubscriptions = new Set<Subscription>()

/** Exits delivered to a callback (`monitor.subscribe(callback)`). */
export class Subscription {
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
  /** This subscription, as the 'beforeExit' delivery sees it (callback form). */
  #delivery = { holdUntilDelivered: (recorded: number) => this.#holdUntilDelivered(recorded) }

  /** @internal Use `monitor.subscribe()`. */
  constructor({ owner, callback, options, onClose }: SubscriptionInit) {
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
    // A callback subscription is drained after every report of this environment (the
    // `onexit` hook calls `deliverQueued`), so those exits need no "readable" call.
    this.#native = callNative(() =>
      native.subscribe(owner, () => this.#onReadable(), bufferSize, lagTimeout, maxOverflow, callback !== undefined),
    )
    if (callback) {
      // Read after registering: every exit numbered above this is offered to this subscriber.
      this.#startSeq = native.stats().exitsRecorded
      deliverBeforeExit(this.#delivery)
      callbackSubscriptions.add(this)
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

  /** Stops delivery. Pending reads of an iterator end with `done: true`. Safe to call twice. */
  unsubscribe(): void {
    if (this.#native) {
      this.#native.unsubscribe()
      this.#native = null
    }
    this.#finish()
  }

  [disposeSymbol](): void {
    this.unsubscribe()
  }

  /** @internal The iterator's next(). */
  protected read(): Promise<IteratorResult<Exit>> {
    if (this.#error) {
      const err = this.#error
      this.#error = null
      return Promise.reject(err)
    }
    if (this.#done || !this.#native) return Promise.resolve({ done: true, value: undefined })
    const now = this.#pull()
    if (now) return Promise.resolve(now)
    if (this.#error) return this.read()
    if (this.#done) return Promise.resolve({ done: true, value: undefined })
    return new Promise((resolve, reject) => {
      this.#reads.push({ resolve, reject, release: hold() })
    })
  }

  /**
   * @internal Delivers what is already queued to this environment's callback subscribers, now:
   * after a child's exit was reported (once Node's own 'exit' listeners ran), when a queue
   * becomes readable (`readable`: that subscription), at 'beforeExit'. The subscribers take
   * turns of at most DELIVERY_CHUNK exits, so that each exit is decoded once for all of them and
   * dropped soon after.
   */
  static deliverQueued(readable?: Subscription): void {
    // A callback that leads here again (none of the package's own paths does) leaves its
    // exits to the turns already running.
    if (delivering) return
    delivering = true
    try {
      // Every subscriber whose queue fills gets a "readable" call of its own; the first one's
      // turns deliver to all, and the others then find their queue empty and look no further.
      let more = false
      if (readable) {
        const took = readable.#native ? readable.#deliverChunk() : 0
        if (took === 0) return
        more = took === DELIVERY_CHUNK
      }
      // `readable` has had its turn in the first round.
      let skip = readable
      for (let round = true; round; round = more, more = false, skip = undefined) {
        for (const sub of callbackSubscriptions) {
          // One native call per subscription (an empty drain is as cheap as asking whether it is).
          if (sub !== skip && sub.#native && sub.#deliverChunk() === DELIVERY_CHUNK) more = true
        }
        forgetDecoded()
      }
    } finally {
      forgetDecoded()
      delivering = false
    }
  }

  /** Holds the loop until the exits recorded up to `recorded` have been delivered. */
  #holdUntilDelivered(recorded: number): void {
    if (this.#flush || !this.#native || recorded <= Math.max(this.#startSeq, this.#lastSeq)) return
    this.#flush = { upTo: recorded, release: hold() }
    // Some may already be queued, their notification still on its way.
    Subscription.deliverQueued()
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
    const exits = decodeExits(r.exits)
    if (exits.length > 0) return { done: false, value: exits[0]! }
    if (r.closed) this.#closedBy(r.laggedMissed)
    return undefined
  }

  #onReadable(): void {
    if (this.#callback) {
      Subscription.deliverQueued(this)
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

  /**
   * Delivers one chunk of the queue to the callback: how many exits it took (DELIVERY_CHUNK:
   * more may wait), or 0 if none or if the subscription ended.
   */
  #deliverChunk(): number {
    const callback = this.#callback!
    const joined = this.#native!.drainInto(scratch)
    const count = scratch[0]!
    const closed = scratch[1] === 1
    const laggedMissed = Number.isNaN(scratch[2]) ? undefined : scratch[2]
    let from = 0
    // Until the callback unsubscribes.
    for (let i = 0, at = HEADER; i < count && this.#native; i++, at += ExitField.Count) {
      const end = commEnd(joined, from)
      // Decoded one at a time, just before its callback (no batch of exits outlives the
      // chunk), by the first subscriber of the turn to take it.
      const exit = decodedExitAt(scratch, at) ?? decodeExitAt(scratch, at, commAt(joined, from, end))
      from = end + 1
      const seq = exitSeqAt(scratch, at)
      if (seq > this.#lastSeq) this.#lastSeq = seq
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
    if (!this.#native) return 0
    if (closed) {
      this.#closedBy(laggedMissed)
      return 0
    }
    if (count < DELIVERY_CHUNK) this.#releaseFlush()
    return count
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
    stopDelivering(this.#delivery)
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

// Iterating a callback subscription from JavaScript (TypeScript refuses it at compile time:
// the type has no async iterator) fails at once with a message that says what to do instead.
Object.defineProperty(Subscription.prototype, Symbol.asyncIterator, {
  value(): never {
    throw typeError(
      'this subscription delivers its exits to its callback and cannot be iterated: ' +
        'iterate a subscription made without a callback, `for await (const exit of monitor.subscribe())`',
      'ERR_INVALID_STATE',
    )
  },
})

/**
 * Exits as an async iterator (`monitor.subscribe()`): `for await (const exit of sub)`. Leaving
 * the loop (break, return, throw) unsubscribes. A SubscriptionLaggedError is thrown from the
 * loop if the subscription is closed for lagging.
 */
export class IterableSubscription extends Subscription implements AsyncIterableIterator<Exit> {
  next(): Promise<IteratorResult<Exit>> {
    return this.read()
  }

  return(): Promise<IteratorResult<Exit>> {
    this.unsubscribe()
    return Promise.resolve({ done: true, value: undefined })
  }

  [Symbol.asyncIterator](): this {
    return this
  }
}
