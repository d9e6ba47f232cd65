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
   * Maximum resident set size, KiB. `null` when the child was reaped by its owner (the engine
   * read its other figures from the zombie): the kernel only reports it to the waiter that reaps.
   */
  maxRSS: number | null
  minorFaults: number
  majorFaults: number
  /** `null` where the figures were read from the zombie (`/proc` keeps no context switches). */
  voluntaryContextSwitches: number | null
  /** `null` where the figures were read from the zombie. */
  involuntaryContextSwitches: number | null
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
  /**
   * Its resource usage: `wait4`'s where the engine reaped it; CPU times (10 ms resolution) and
   * faults read from the zombie where it announced an exit its owner reaps. `null` where
   * nobody could read it: a child reaped by its owner before the engine looked (every
   * `child_process` child; the kernel reports usage only to the waiter that reaps, and libuv
   * asks for none).
   */
  rusage: Rusage | null
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

// Exits decoded in this environment's current delivery turn, by sequence number: the callback
// subscribers of the environment take their exits in turns of at most `DELIVERY_CHUNK` each
// (subscription.cts), and all get the same (frozen) object, so fan-out costs one decode per
// exit, not one per subscriber. The ring is emptied after each turn: an exit it still held would
// survive V8's young-generation collections, and V8 grows its young generation by what survives
// them (holding the last 8,192 exits grew it by 16 MB over 100,000 exits to 8 subscribers,
// `npm run bench` section 5). Indexed by sequence number (no Map, no iterator per exit); a miss
// only costs a decode.
export const DELIVERY_CHUNK = 64
const DECODED_MAX = 2 * DELIVERY_CHUNK
const decodedSeq = new Float64Array(DECODED_MAX)
const decoded: (Exit | undefined)[] = new Array<Exit | undefined>(DECODED_MAX)

/** Lets go of the exits decoded so far (the end of a delivery turn). */
export function forgetDecoded(): void {
  decoded.fill(undefined)
}

/** A field that may be absent (NaN). */
function optional(value: number): number | null {
  return Number.isNaN(value) ? null : value
}

/** The exit whose numbers start at `at` in `fields`, if this turn decoded it already. */
export function decodedExitAt(fields: Float64Array, at: number): Exit | undefined {
  const seq = fields[at + ExitField.Seq]!
  return decodedSeq[seq % DECODED_MAX] === seq ? decoded[seq % DECODED_MAX] : undefined
}

/**
 * Decodes the exit whose numbers start at `at` in `fields`, packed as the addon packs them
 * (crates/subreaper-node/src/exit_record.rs), and keeps it for the rest of the turn (callers
 * look there first, `decodedExitAt`): every path (subscriptions, waits, sweeps) hands exits
 * over this way. `ExitField` comes from the declarations generated from the Rust code, so the
 * layout is written only there.
 */
export function decodeExitAt(fields: Float64Array, at: number, comm: string | null | undefined): Exit {
  const seq = fields[at + ExitField.Seq]!
  const signal = optional(fields[at + ExitField.Signal]!)
  const startTime = optional(fields[at + ExitField.StartTime]!)
  const exit: Exit = {
    pid: fields[at + ExitField.Pid]!,
    status: fields[at + ExitField.Status]!,
    code: optional(fields[at + ExitField.Code]!),
    signal: signal === null ? null : signalName(signal),
    coreDumped: fields[at + ExitField.CoreDumped] === 1,
    timestamp: fields[at + ExitField.Timestamp]!,
    rusage: Number.isNaN(fields[at + ExitField.UserCpuTime]) ? null : rusageAt(fields, at),
    reapedBy: fields[at + ExitField.ReapedByOwner] === 0 ? 'subreaper' : 'owner',
  }
  if (comm != null) exit.comm = comm
  if (startTime !== null) exit.startTime = startTime
  Object.freeze(exit)
  decodedSeq[seq % DECODED_MAX] = seq
  decoded[seq % DECODED_MAX] = exit
  return exit
}

function rusageAt(fields: Float64Array, at: number): Rusage {
  return Object.freeze({
    userCPUTime: fields[at + ExitField.UserCpuTime]!,
    systemCPUTime: fields[at + ExitField.SystemCpuTime]!,
    maxRSS: optional(fields[at + ExitField.MaxRss]!),
    minorFaults: fields[at + ExitField.MinorFaults]!,
    majorFaults: fields[at + ExitField.MajorFaults]!,
    voluntaryContextSwitches: optional(fields[at + ExitField.VoluntaryContextSwitches]!),
    involuntaryContextSwitches: optional(fields[at + ExitField.InvoluntaryContextSwitches]!),
  })
}

/** The sequence number of the exit whose numbers start at `at` in `fields`. */
export function exitSeqAt(fields: Float64Array, at: number): number {
  return fields[at + ExitField.Seq]!
}

/** Decodes a batch of exits (a wait's answer, a sweep's). */
export function decodeExits({ fields, comms }: ExitBatch): Exit[] {
  const exits: Exit[] = []
  for (let i = 0, at = 0; at + ExitField.Count <= fields.length; i++, at += ExitField.Count) {
    exits.push(decodedExitAt(fields, at) ?? decodeExitAt(fields, at, comms[i]))
  }
  return exits
}

/** The one exit of a batch the addon made for a single exit (a wait's answer). */
export function decodeExit(batch: ExitBatch): Exit {
  return decodeExits(batch)[0]!
}
