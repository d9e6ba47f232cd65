// Shared helpers for the specs: real processes, and checks that nothing is left behind.
import { readdirSync } from 'node:fs'

import { children } from './proc-stat.mjs'

/** Pids of zombie children of `parent` (default: this process). */
export function zombieChildren(parent = process.pid): number[] {
  return children(parent).zombies
}

/** Pids of live (non-zombie) children of `parent`. */
export function liveChildren(parent = process.pid): number[] {
  return children(parent).live
}

/** Open file descriptors of this process. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Polls `cond` until it holds or `ms` passes. */
export async function until(cond: () => boolean, ms = 5000, step = 5): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (cond()) return true
    await sleep(step)
  }
  return cond()
}
