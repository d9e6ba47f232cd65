// Typed errors: each says what was wrong and what is accepted.

/** `wait` was given a pid that is not a child of this process (and whose exit is not known). */
export class NotAChildError extends Error {
  readonly code = 'ERR_SUBREAPER_NOT_A_CHILD'
  constructor(readonly pid: number) {
    super(
      `pid ${pid} is not a child of this process, and no recent exit of it is known: ` +
        'only children (and, in subreaper or PID 1 mode, adopted orphans) can be waited for',
    )
    this.name = 'NotAChildError'
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

/** Subreaper mode is not available on this platform. */
export class UnsupportedError extends Error {
  readonly code = 'ERR_SUBREAPER_UNSUPPORTED'
  constructor(message: string) {
    super(message)
    this.name = 'UnsupportedError'
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`
  if (typeof value === 'number') return `the number ${value}`
  if (value === null) return 'null'
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value)})`
  return `${typeof value} ${String(value)}`
}

function typeError(message: string): TypeError {
  const err = new TypeError(message)
  ;(err as NodeJS.ErrnoException).code = 'ERR_INVALID_ARG_TYPE'
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
