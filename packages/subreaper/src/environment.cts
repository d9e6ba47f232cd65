// This environment's id in the addon (the main thread's, or a worker's): the owner that its
// `child_process` children, declared children and subscriptions are registered under, and
// released with when the environment is torn down. Attaching starts (or joins) the process's
// reaper; in a second copy of the package in one process it throws DuplicateError.
import { callNative } from './errors.cjs'
import { native } from './native.cjs'

export const owner: number = callNative(() => native.attach())
