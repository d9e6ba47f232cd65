// The Exit record users see, built from the addon's plain record.
import { constants } from 'node:os'

import type { ExitRecord } from './native.cjs'

/** Resource usage of the finished child. */
export interface Rusage {
  /** User CPU time, µs. */
  userCPUTime: number
  /** System CPU time, µs. */
  systemCPUTime: number
  /**
   * Maximum resident set size, KiB. `null` when the child was reaped by its owner (Node's
   * `child_process`): the kernel only reports it to the waiter that reaps.
   */
  maxRSS: number | null
  minorFaults: number
  majorFaults: number
  voluntaryContextSwitches: number
  involuntaryContextSwitches: number
}

/** One exited child. */
export interface Exit {
  pid: number
  /** The exit code, or 128 + the signal number when a signal killed it (as shells report it). */
  status: number
  /** The exit code, or `null` when a signal killed it. */
  code: number | null
  /** The signal that killed it, or `null` when it exited. */
  signal: NodeJS.Signals | null
  coreDumped: boolean
  /** Milliseconds since the epoch at which the exit was seen. */
  timestamp: number
  /** Milliseconds since the epoch at which the process started (Linux; 10 ms resolution). */
  startTime?: number
  rusage: Rusage
  /** Short command name (Linux `comm`, up to 15 characters), read while the child was a zombie. */
  comm?: string
  /** `'subreaper'` when the reaper took it, `'owner'` when its owner (libuv for `child_process`) did. */
  reapedBy: 'subreaper' | 'owner'
}

const signalNames = new Map<number, NodeJS.Signals>()
for (const [name, num] of Object.entries(constants.signals)) {
  if (!signalNames.has(num)) signalNames.set(num, name as NodeJS.Signals)
}

export function signalName(signal: number): NodeJS.Signals {
  return signalNames.get(signal) ?? (`SIG${signal}` as NodeJS.Signals)
}

export function signalNumber(signal: string): number | undefined {
  return (constants.signals as Record<string, number>)[signal]
}

export function toExit(r: ExitRecord): Exit {
  const exit: Exit = {
    pid: r.pid,
    status: r.status,
    code: r.code ?? null,
    signal: r.signal == null ? null : signalName(r.signal),
    coreDumped: r.coreDumped,
    timestamp: r.timestamp,
    rusage: {
      userCPUTime: r.rusage.userCpuTime,
      systemCPUTime: r.rusage.systemCpuTime,
      maxRSS: r.rusage.maxRss ?? null,
      minorFaults: r.rusage.minorFaults,
      majorFaults: r.rusage.majorFaults,
      voluntaryContextSwitches: r.rusage.voluntaryContextSwitches,
      involuntaryContextSwitches: r.rusage.involuntaryContextSwitches,
    },
    reapedBy: r.reapedBy === 'subreaper' ? 'subreaper' : 'owner',
  }
  if (r.comm != null) exit.comm = r.comm
  if (r.startTime != null) exit.startTime = r.startTime
  return exit
}

/** Numbers per exit in a drained batch (the addon's `EXIT_FIELDS`). */
const FIELDS = 17

// Exits already decoded in this environment, by sequence number: every subscriber of the
// environment gets the same (frozen) object, so fan-out costs one decode per exit, not one per
// subscriber. Bounded; a miss only costs a decode.
const decoded = new Map<number, Exit>()
const DECODED_MAX = 8192

/** Decodes a batch the addon packed (see crates/subreaper-node/src/delivery.rs, `pack`). */
export function decodeExits(fields: Float64Array, comms: ReadonlyArray<string | null | undefined>): { exits: Exit[]; lastSeq: number } {
  const exits: Exit[] = []
  let lastSeq = 0
  for (let i = 0, at = 0; at + FIELDS <= fields.length; i++, at += FIELDS) {
    const seq = fields[at + 16]!
    lastSeq = seq
    let exit = decoded.get(seq)
    if (exit === undefined) {
      const num = (k: number) => fields[at + k]!
      const opt = (k: number) => (Number.isNaN(fields[at + k]) ? null : fields[at + k]!)
      const signal = opt(3)
      const startTime = opt(7)
      const comm = comms[i]
      exit = {
        pid: num(0),
        status: num(1),
        code: opt(2),
        signal: signal === null ? null : signalName(signal),
        coreDumped: num(4) === 1,
        timestamp: num(6),
        rusage: Object.freeze({
          userCPUTime: num(8),
          systemCPUTime: num(9),
          maxRSS: opt(10),
          minorFaults: num(11),
          majorFaults: num(12),
          voluntaryContextSwitches: num(13),
          involuntaryContextSwitches: num(14),
        }),
        reapedBy: num(15) === 0 ? 'subreaper' : 'owner',
      }
      if (comm != null) exit.comm = comm
      if (startTime !== null) exit.startTime = startTime
      Object.freeze(exit)
      decoded.set(seq, exit)
      if (decoded.size > DECODED_MAX) decoded.delete(decoded.keys().next().value!)
    }
    exits.push(exit)
  }
  return { exits, lastSeq }
}
