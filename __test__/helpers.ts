// Shared helpers for the specs: real processes, and checks that nothing is left behind.
import { readdirSync, readFileSync } from 'node:fs'

/** Children of `parent` (default: this process), split into zombies and live ones. */
export function children(parent = process.pid): { zombies: number[]; live: number[] } {
  const zombies: number[] = []
  const live: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8')
    } catch {
      continue
    }
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(rest[1]) !== parent) continue
    ;(rest[0] === 'Z' ? zombies : live).push(Number(name))
  }
  return { zombies, live }
}

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
