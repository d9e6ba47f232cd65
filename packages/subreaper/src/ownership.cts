// Who reaps which child, as users can adjust it: declaring a child that native code waits
// for itself, and the graces of subreaper and PID 1 mode. The rules are in docs/design.md.
import { owner } from './environment.cjs'
import { NotAChildError, validatePid } from './errors.cjs'
import { native } from './native.cjs'

/**
 * Declares `pid`, a child this process made outside `child_process` and waits for itself (a
 * native addon that uses `posix_spawn`, `vfork` or `clone` rather than `fork`): subreaper
 * announces its exit and never reaps it, in any mode. Children made with `fork()` (libuv,
 * node-pty, most native code) need no declaration. Throws NotAChildError for a pid that is
 * not a child of this process.
 */
export function declareChild(pid: number): void {
  const checked = validatePid(pid)
  if (!native.declareChild(checked, owner)) throw new NotAChildError(checked)
}

export interface ReapingRules {
  /**
   * Subreaper or PID 1 mode: how long, in milliseconds, an unclaimed zombie (an adopted
   * orphan, or a child native code made on the main thread without fork() and did not
   * declare) is left before subreaper reaps it. Default 0: orphans are reaped at once.
   */
  orphanGrace?: number
  /**
   * How long, in milliseconds, a child whose forking thread has ended (and that nobody
   * declared) is left for a native waiter before subreaper reaps it, in subreaper or PID 1
   * mode (and for the threads of torn-down workers that loaded subreaper, in any mode).
   * Default 1000.
   */
  leftoverGrace?: number
  /**
   * How long, in milliseconds, the zombie of a `child_process` child waits for libuv's own
   * report of its exit (which reaches callback subscribers right after the child's 'exit'
   * listeners) before subreaper announces the exit from the zombie itself, for an event loop
   * that is busy. Default 20.
   */
  reportGrace?: number
}

function validateGrace(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 3_600_000) {
    throw Object.assign(
      new RangeError(`${name} must be a number of milliseconds from 0 to 3600000; got ${typeof value === 'number' ? value : typeof value}`),
      { code: 'ERR_OUT_OF_RANGE' },
    )
  }
  return value
}

/** Changes the reaping rules for the whole process (every thread shares one reaper). */
export function configureReaping(rules: ReapingRules): void {
  if (rules === null || typeof rules !== 'object') {
    throw Object.assign(
      new TypeError(`configureReaping takes an object such as { orphanGrace: 0 }; got ${rules === null ? 'null' : typeof rules}`),
      {
        code: 'ERR_INVALID_ARG_TYPE',
      },
    )
  }
  const orphan = validateGrace(rules.orphanGrace, 'orphanGrace')
  const leftover = validateGrace(rules.leftoverGrace, 'leftoverGrace')
  const report = validateGrace(rules.reportGrace, 'reportGrace')
  const now = native.stats()
  native.setGraces(orphan ?? now.orphanGraceMs, leftover ?? now.leftoverGraceMs)
  if (report !== undefined) native.setReportGrace(report)
}
