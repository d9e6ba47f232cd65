// The one reader of /proc/<pid>/stat for the specs, the fixtures and the bench. Plain JavaScript
// so that fixtures run by plain `node` share it (types in proc-stat.d.mts).
import { readdirSync, readFileSync } from 'node:fs'

/**
 * The fields of a stat line (proc(5)) that the tests read, or undefined if it is not one. The
 * command name may hold spaces and parentheses: the fields after it are counted from its last ')'.
 */
export function parseStat(text) {
  const open = text.indexOf('(')
  const close = text.lastIndexOf(')')
  if (open < 0 || close < open) return undefined
  const after = text
    .slice(close + 2)
    .trimEnd()
    .split(' ')
  // `after[0]` is field 3 (the state).
  const field = (n) => Number(after[n - 3])
  return {
    pid: Number(text.slice(0, open)),
    comm: text.slice(open + 1, close),
    state: after[0],
    ppid: field(4),
    pgrp: field(5),
    utime: field(14),
    stime: field(15),
    startTicks: field(22),
    policy: field(41),
  }
}

/**
 * `/proc/<pid>/stat` parsed (`pid` may be 'self' or 'thread-self'), or a thread's
 * (`/proc/<pid>/task/<tid>/stat`) when `tid` is given; undefined once it is gone.
 */
export function readStat(pid, tid) {
  let text
  try {
    text = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  return parseStat(text)
}

/** The children of `parent` (default: this process) in /proc, split into zombies and live ones. */
export function children(parent = process.pid) {
  const zombies = []
  const live = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const stat = readStat(name)
    if (stat?.ppid !== parent) continue
    ;(stat.state === 'Z' ? zombies : live).push(stat.pid)
  }
  return { zombies, live }
}
