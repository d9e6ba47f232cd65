// Types of kernel.mjs (plain JavaScript, shared by the specs and the node fixtures).
export const pidfdsRefused: boolean
export const exitStatusMayBeUnknown: boolean
export const kernelNote: string
export function orUnknown<T extends { pid: number }>(
  got: { status: number } | undefined,
  want: T,
): T | { pid: number; status: -1; code: null; signal: null }
