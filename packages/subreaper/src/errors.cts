// Typed errors: each says what was wrong and what is accepted. The codes of the errors the
// addon throws are generated from the Rust code (`ErrorCode`); `nativeErrors` maps each one to
// its class here.
import { ErrorCode } from '../native/binding.cjs'

/**
 * `wait` was given a pid that is not a child of this process (and whose exit is not known), or
 * `kill` a pid that is not a descendant of this process.
 */
export class NotAChildError extends Error {
  readonly code: `${ErrorCode.NotAChild}` = ErrorCode.NotAChild
  constructor(
    readonly pid: number,
    operation: 'wait' | 'kill' = 'wait',
  ) {
    super(
      operation === 'kill'
        ? `pid ${pid} is not a descendant of this process: ` +
            'only its children and their descendants (and, in subreaper or PID 1 mode, adopted orphans) can be signalled'
        : `pid ${pid} is not a child of this process, and no recent exit of it is known: ` +
            'only children (and, in subreaper or PID 1 mode, adopted orphans) can be waited for',
    )
    this.name = 'NotAChildError'
  }
}

/** `subscribe()` on a Monitor after its `close()`. */
export class MonitorClosedError extends Error {
  readonly code = 'ERR_SUBREAPER_MONITOR_CLOSED'
  constructor() {
    super('this Monitor was closed, and a closed Monitor takes no new subscriptions: subscribe on a new Monitor()')
    this.name = 'MonitorClosedError'
  }
}

/** A subscriber stayed full past its deadline and was closed; `missed` exits never reached it. */
export class SubscriptionLaggedError extends Error {
  readonly code = 'ERR_SUBREAPER_LAGGED'
  constructor(readonly missed: number) {
    super(
      `subscription lagged: its buffer stayed full past its deadline and it was closed, ` +
        `missing ${missed} exit${missed === 1 ? '' : 's'}; read faster, or subscribe with a larger bufferSize or lagTimeout`,
    )
    this.name = 'SubscriptionLaggedError'
  }
}

/** The wait was aborted through its AbortSignal. */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR'
  constructor(cause?: unknown) {
    super('the wait was aborted', { cause })
    this.name = 'AbortError'
  }
}

/** The wait's timeout passed before the child exited. */
export class WaitTimeoutError extends Error {
  readonly code = 'ERR_SUBREAPER_WAIT_TIMEOUT'
  constructor(
    readonly pid: number,
    readonly timeout: number,
  ) {
    super(`pid ${pid} did not exit within ${timeout} ms`)
    this.name = 'WaitTimeoutError'
  }
}

/** An error the addon threw, with the addon's message (which says what to do). */
abstract class AddonError extends Error {
  constructor(message: string) {
    super(message)
    this.name = new.target.name
  }
}

/** Subreaper mode is not available on this platform. */
export class UnsupportedError extends AddonError {
  readonly code: `${ErrorCode.Unsupported}` = ErrorCode.Unsupported
}

/**
 * A second copy of the package (with its own copy of the addon) was loaded in a process where
 * the first already runs the reaper: two reapers would race for the same children.
 */
export class DuplicateError extends AddonError {
  readonly code: `${ErrorCode.Duplicate}` = ErrorCode.Duplicate
}

/** The system refused: `setSubreaper`'s prctl failed, or a signal `kill` sent was refused. */
export class OsError extends AddonError {
  readonly code: `${ErrorCode.Os}` = ErrorCode.Os
}

/**
 * The addon failed where it should not: N-API refused a call (`cause` holds its error), or the
 * package called the addon against its contract. A bug in subreaper, never a wrong argument of
 * yours (those are TypeError and RangeError): please report it.
 */
export class NativeError extends Error {
  readonly code: `${ErrorCode.Native}` = ErrorCode.Native
  constructor(reason: string, cause?: unknown) {
    super(`the subreaper addon failed: ${reason}. This is a bug in subreaper: please report it`, { cause })
    this.name = 'NativeError'
  }
}

/**
 * The package's error for each code the addon throws, made from the addon's message and the pid
 * the call was about. Its type requires an entry for every code: a code added in Rust fails the
 * type check until it is mapped here.
 */
export const nativeErrors: { readonly [C in ErrorCode]: (message: string, pid: number | undefined) => Error } = {
  [ErrorCode.Duplicate]: (message) => new DuplicateError(message),
  [ErrorCode.Unsupported]: (message) => new UnsupportedError(message),
  [ErrorCode.Os]: (message) => new OsError(message),
  [ErrorCode.NotAChild]: (message, pid) =>
    pid === undefined ? new NativeError(`${message}, for a call that named no pid`) : new NotAChildError(pid),
  [ErrorCode.Native]: (message) => new NativeError(message),
}

/**
 * The package's error for one the addon threw, chosen by the `code` the addon gave it (never by
 * its message); an error of napi-rs itself (a code of its own, such as `InvalidArg`) becomes a
 * NativeError. Anything else was not thrown by the addon and is returned as it is. `pid` is the
 * pid the call was about.
 */
export function fromNative(err: unknown, pid?: number): unknown {
  if (!(err instanceof Error)) return err
  const code = (err as { code?: unknown }).code
  if (typeof code !== 'string') return err
  const make = Object.hasOwn(nativeErrors, code) ? nativeErrors[code as ErrorCode] : undefined
  return make ? make(err.message, pid) : new NativeError(`${err.message} (${code})`, err)
}

/** Calls the addon, rethrowing its errors as the package's (see `fromNative`). */
export function callNative<T>(call: () => T, pid?: number): T {
  try {
    return call()
  } catch (err) {
    throw fromNative(err, pid)
  }
}

/** A value as an error message names it: `undefined`, `the number 999`, `the string "12"`. */
export function describe(value: unknown): string {
  if (value === undefined) return 'undefined'
  if (value === null) return 'null'
  switch (typeof value) {
    case 'string':
      return `the string ${JSON.stringify(value)}`
    case 'number':
      return `the number ${value}`
    case 'bigint':
      return `the bigint ${value}n`
    case 'boolean':
      return `the boolean ${value}`
    case 'symbol':
      return `the symbol ${String(value)}`
    case 'function':
      return 'a function'
    default:
      return `an object (${Object.prototype.toString.call(value)})`
  }
}

export function typeError(message: string, code = 'ERR_INVALID_ARG_TYPE'): TypeError {
  const err = new TypeError(message)
  ;(err as NodeJS.ErrnoException).code = code
  return err
}

function rangeError(message: string): RangeError {
  const err = new RangeError(message)
  ;(err as NodeJS.ErrnoException).code = 'ERR_OUT_OF_RANGE'
  return err
}

export const PID_MAX = 2 ** 31 - 1

export function validatePid(value: unknown, name = 'pid'): number {
  if (typeof value !== 'number') {
    throw typeError(`${name} must be a number (an integer from 1 to ${PID_MAX}) or a ChildProcess; got ${describe(value)}`)
  }
  if (!Number.isInteger(value) || value < 1 || value > PID_MAX) {
    throw rangeError(`${name} must be an integer from 1 to ${PID_MAX}; got ${value}`)
  }
  return value
}

export function validateInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') {
    throw typeError(`${name} must be a number (an integer from ${min} to ${max}); got ${describe(value)}`)
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw rangeError(`${name} must be an integer from ${min} to ${max}; got ${value}`)
  }
  return value
}

export function validateDuration(value: unknown, name: string, max = 2 ** 31 - 1): number {
  if (typeof value !== 'number') {
    throw typeError(`${name} must be a number of milliseconds (0 to ${max}); got ${describe(value)}`)
  }
  if (Number.isNaN(value) || value < 0 || value > max) {
    throw rangeError(`${name} must be a number of milliseconds from 0 to ${max}; got ${value}`)
  }
  return value
}

export function validateFunction(value: unknown, name: string): void {
  if (typeof value !== 'function') {
    throw typeError(`${name} must be a function; got ${describe(value)}`)
  }
}

export function validateObject(value: unknown, name: string): void {
  if (value !== undefined && (typeof value !== 'object' || value === null)) {
    throw typeError(`${name} must be an object or undefined; got ${describe(value)}`)
  }
}

export function validateAbortSignal(value: unknown, name: string): void {
  if (value !== undefined && !(value instanceof AbortSignal)) {
    throw typeError(`${name} must be an AbortSignal or undefined; got ${describe(value)}`)
  }
}
