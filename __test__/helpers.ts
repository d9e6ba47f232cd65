// The basics every spec shares: where things are, waiting for a condition, and this process's
// children and fds as /proc shows them.
import { readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

import { children } from './proc-stat.mjs'

// AVA runs every test file with the project root (where package.json is) as its cwd.
export const root = process.cwd()
export const fixtures = join(root, '__test__', 'fixtures')
export const fixture = (name: string) => join(fixtures, name)
/** The native `subreaper` init, as `npm run build` places it. */
export const cliPath = join(root, 'packages', 'subreaper', 'native', 'subreaper')
export const bindingPath = join(root, 'packages', 'subreaper', 'native', 'binding.cjs')
/** The package's own copy of the addon (requiring it again returns the same module), as a spec calls it. */
export const binding = <T>(): T => createRequire(join(root, 'package.json'))(bindingPath) as T

/** Pids of zombie children of `parent` (default: this process). */
export function zombieChildren(parent = process.pid): number[] {
  return children(parent).zombies
}

/** Pids of live (non-zombie) children of `parent`. */
export function liveChildren(parent = process.pid): number[] {
  return children(parent).live
}

/** Open file descriptors of a process (default: this one). */
export function openFds(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length
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
