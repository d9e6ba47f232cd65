// What the kernel (or the sandbox the suite runs in) lets the engine know, for the specs whose
// expectations depend on it. CI runs the kernel-sensitive specs on Linux 6.1 and with pidfds
// refused as well as here (docs/compatibility.md).
import { release } from 'node:os'

const hidden = (process.env.SUBREAPER_HIDE ?? '').split(',').map((s) => s.trim())
const [major = 0, minor = 0] = release()
  .split(/[.-]/)
  .map((n) => Number(n))

/** pidfd_open is refused: by a seccomp filter (fixtures/refuse-pidfds.c), or hidden. */
export const pidfdsRefused = (process.env.SUBREAPER_TEST_PIDFDS ?? '').startsWith('refused') || hidden.includes('pidfd')

/**
 * Whether an exit another waiter reaps before the engine looks can be announced with status
 * -1: where the kernel keeps no status for a pidfd after the reap (before 6.15), or there are
 * no pidfds.
 */
export const exitStatusMayBeUnknown = pidfdsRefused || hidden.includes('pidfd-exit') || major < 6 || (major === 6 && minor < 15)

/** One line for a spec's log: what this run's kernel offers. */
export const kernelNote = `kernel ${release()}${pidfdsRefused ? ', pidfds refused' : ''}${hidden.length && hidden[0] ? `, SUBREAPER_HIDE=${hidden.join(',')}` : ''}`

/**
 * `want` for an exit `got`, unless the kernel may have lost its status and it was lost: then
 * the record of a lost status (status -1, no code, no signal). For t.like.
 */
export function orUnknown(got, want) {
  return exitStatusMayBeUnknown && got?.status === -1 ? { pid: want.pid, status: -1, code: null, signal: null } : want
}
