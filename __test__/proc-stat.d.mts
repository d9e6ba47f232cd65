// Types of proc-stat.mjs (plain JavaScript, shared by the specs, the node fixtures and the bench).

/** The fields of /proc/<pid>/stat that the tests read (proc(5) numbers them from 1). */
export interface Stat {
  /** Field 1. */
  pid: number
  /** Field 2, without its parentheses. */
  comm: string
  /** Field 3: R, S, D, Z, T... */
  state: string
  /** Field 4. */
  ppid: number
  /** Field 5. */
  pgrp: number
  /** Fields 14 and 15: CPU time in user and kernel mode, clock ticks. */
  utime: number
  stime: number
  /** Field 22: start time, clock ticks since boot (with the pid, it names one process). */
  startTicks: number
  /** Field 41: scheduling policy (0 SCHED_OTHER, 3 SCHED_BATCH, 5 SCHED_IDLE). */
  policy: number
}

export function parseStat(text: string): Stat | undefined
export function readStat(pid: number | string, tid?: number | string): Stat | undefined
export function children(parent?: number): { zombies: number[]; live: number[] }
