// The Exit record users see, decoded from the addon's one encoding of exits.
import { constants } from 'node:os'

// A const enum: inlined at compile time, so this import is elided and the addon is loaded only
// through native.cts.
import { ExitField } from '../native/binding.cjs'
import type { ExitBatch } from './native.cjs'

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

// Exits already decoded in this environment, by sequence number: every subscriber of the
// environment gets the same (frozen) object, so fan-out costs one decode per exit, not one per
// subscriber. Bounded; a miss only costs a decode.
const decoded = new Map<number, Exit>()
const DECODED_MAX = 8192

/**
 * Decodes exits as the addon packs them (crates/subreaper-node/src/exit_record.rs): every path
 * (subscriptions, waits, sweeps) hands exits over this way. `ExitField` comes from the
 * declarations generated from the Rust code, so the layout is written only there.
 */
export function decodeExits({ fields, comms }: ExitBatch): { exits: Exit[]; lastSeq: number } {
  const exits: Exit[] = []
  let lastSeq = 0
  for (let i = 0, at = 0; at + ExitField.Count <= fields.length; i++, at += ExitField.Count) {
    const seq = fields[at + ExitField.Seq]!
    lastSeq = seq
    let exit = decoded.get(seq)
    if (exit === undefined) {
      const num = (k: ExitField) => fields[at + k]!
      const opt = (k: ExitField) => (Number.isNaN(fields[at + k]) ? null : fields[at + k]!)
      const signal = opt(ExitField.Signal)
      const startTime = opt(ExitField.StartTime)
      const comm = comms[i]
      exit = {
        pid: num(ExitField.Pid),
        status: num(ExitField.Status),
        code: opt(ExitField.Code),
        signal: signal === null ? null : signalName(signal),
        coreDumped: num(ExitField.CoreDumped) === 1,
        timestamp: num(ExitField.Timestamp),
        rusage: Object.freeze({
          userCPUTime: num(ExitField.UserCpuTime),
          systemCPUTime: num(ExitField.SystemCpuTime),
          maxRSS: opt(ExitField.MaxRss),
          minorFaults: num(ExitField.MinorFaults),
          majorFaults: num(ExitField.MajorFaults),
          voluntaryContextSwitches: num(ExitField.VoluntaryContextSwitches),
          involuntaryContextSwitches: num(ExitField.InvoluntaryContextSwitches),
        }),
        reapedBy: num(ExitField.ReapedByOwner) === 0 ? 'subreaper' : 'owner',
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

/** The one exit of a batch the addon made for a single exit (a wait's answer). */
export function decodeExit(batch: ExitBatch): Exit {
  return decodeExits(batch).exits[0]!
}
