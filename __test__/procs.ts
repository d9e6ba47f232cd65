// The children of a spec as the package sees them: event counting on ChildProcess objects, their
// identities, recording subscribers and the exits they got, and the checks that nothing is left.
import { type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'

import { describeChild, monitor, reaperStats, type Exit, type Monitor, type Subscription } from 'subreaper'

import { identify, isExitOf, type ExitLike, type ProcessId } from './fixtures/process-identity.mjs'
import { liveChildren, until, zombieChildren } from './helpers.ts'
import { readStat } from './proc-stat.mjs'

/** The exit and close events of one ChildProcess, counted. */
export interface Events {
  exits: Array<[number | null, NodeJS.Signals | null]>
  closes: Array<[number | null, NodeJS.Signals | null]>
  errors: Error[]
  stdout: string
  stderr: string
  /** Resolves at the first 'close' (or 'error' when the spawn failed). */
  closed: Promise<void>
}

// The identity (pid and start time) of each ChildProcess, read as soon as a spec had it.
const identities = new WeakMap<ChildProcess, ProcessId>()

/**
 * The identity (pid and start time) of a child_process child. Read it right after the spawn call
 * (track() does): until its 'exit', libuv has not reaped it, so its pid is still its own.
 */
export function idOf(child: ChildProcess): ProcessId {
  let id = identities.get(child)
  if (id) return id
  if (child.pid === undefined) throw new Error('the ChildProcess has no pid: it never started')
  if (child.exitCode !== null || child.signalCode !== null) {
    throw new Error(`child ${child.pid} was reaped before its start time was read: call idOf() or track() right after spawning it`)
  }
  id = identify(child.pid)
  if (!id) throw new Error(`child ${child.pid} is gone from /proc before its 'exit'`)
  identities.set(child, id)
  return id
}

/** A process to look an exit up for: its identity, or a ChildProcess (see idOf). */
export type Target = ProcessId | ChildProcess

const toId = (target: Target): ProcessId => ('startTicks' in target ? target : idOf(target))

/** Counts the events of `child`; collects its output as text unless `raw` (then read it yourself). */
export function track(child: ChildProcess, options?: { raw?: boolean }): Events {
  if (child.pid !== undefined) idOf(child)
  const ev: Events = { exits: [], closes: [], errors: [], stdout: '', stderr: '', closed: Promise.resolve() }
  if (!options?.raw) child.stdout?.setEncoding('utf8').on('data', (d: string) => (ev.stdout += d))
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (ev.stderr += d))
  ev.closed = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => ev.exits.push([code, signal]))
    child.on('close', (code, signal) => {
      ev.closes.push([code, signal])
      resolve()
    })
    child.on('error', (err) => {
      ev.errors.push(err)
      if (child.pid === undefined) resolve()
    })
  })
  return ev
}

/**
 * The exits a recorder got from a mark on (by default, since this was made: one test's counts
 * must not include an earlier test's). Exits are matched to processes by pid *and* start time:
 * pids are recycled over a long file (this machine hands out all 32k of them in well under a
 * minute under load).
 */
export class Since<E extends ExitLike> {
  readonly #mark: number
  constructor(
    readonly recorder: { readonly exits: readonly E[] },
    mark = recorder.exits.length,
  ) {
    this.#mark = mark
  }

  get exits(): readonly E[] {
    return this.#mark === 0 ? this.recorder.exits : this.recorder.exits.slice(this.#mark)
  }

  /** Exits of that process seen since the mark. */
  of(target: Target): E[] {
    const id = toId(target)
    return this.exits.filter((e) => isExitOf(e, id))
  }

  /** How many times each process was seen (for the exactly-once checks). */
  counts(targets: ReadonlyArray<Target>): number[] {
    return targets.map((t) => this.of(t).length)
  }

  /** Waits (generously) until each process has been seen since the mark. */
  waitFor(targets: ReadonlyArray<Target>, ms = 30_000): Promise<boolean> {
    const ids = targets.map(toId)
    return until(() => ids.every((id) => this.exits.some((e) => isExitOf(e, id))), ms, 10)
  }
}

/** A subscriber that keeps every exit it is given, in order. */
export class Recorder {
  readonly exits: Exit[] = []
  readonly errors: Error[] = []
  readonly sub: Subscription
  readonly #all = new Since(this, 0)

  constructor(m: Monitor = monitor, options?: { bufferSize?: number; lagTimeout?: number }) {
    this.sub = m.subscribe((e) => this.exits.push(e), {
      bufferSize: 4096,
      lagTimeout: 60_000,
      ...options,
      onError: (err) => this.errors.push(err),
    })
  }

  /** Exits of that process (pid and start time: pids are recycled) seen so far. */
  of(target: Target): Exit[] {
    return this.#all.of(target)
  }

  /** Waits (generously) until every process has been seen, then returns the first exit of each. */
  async waitFor(targets: ReadonlyArray<Target>, ms = 30_000): Promise<Exit[]> {
    await this.#all.waitFor(targets, ms)
    return targets.map((t) => this.of(t)[0]!)
  }

  /** How many times each process was seen (for the exactly-once checks). */
  counts(targets: ReadonlyArray<Target>): number[] {
    return this.#all.counts(targets)
  }

  unsubscribe(): void {
    this.sub.unsubscribe()
  }
}

/** For a failure message: each zombie's state, the thread of this process whose children list
 * holds it (a dead thread's children move to another thread), what the engine holds for it,
 * and the engine's counters. */
export function describeZombies(pids: ReadonlyArray<number>): string {
  const holder = (pid: number): string => {
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        if (readFileSync(`/proc/self/task/${tid}/children`, 'utf8').split(' ').includes(String(pid))) {
          const comm = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim()
          return `thread ${tid} (${comm})`
        }
      } catch {
        // the thread ended meanwhile
      }
    }
    return 'no thread'
  }
  const zombies = pids.map((p) => `${p}: ${JSON.stringify(readStat(p))} on ${holder(p)}; the engine: ${describeChild(p) ?? 'no entry'}`)
  return `engine: ${JSON.stringify(reaperStats())}; zombies: ${zombies.join(', ')}`
}

/** Asserts that no zombie child is left after `ms`, logging where each one left is, if any. */
export async function assertNoZombies(t: import('ava').ExecutionContext, ms?: number, message?: string): Promise<void> {
  const zombies = await noZombies(ms)
  if (zombies.length > 0) t.log(describeZombies(zombies))
  t.deepEqual(zombies, [], message)
}

/**
 * Waits until this process has no zombie child left; returns those still there after `ms`.
 * The answer is the last reading the wait made: a reading taken after the wait succeeded could
 * find a child that exited just then (a worker's last spawn), which is not one left behind.
 */
export async function noZombies(ms = 15_000): Promise<number[]> {
  let left: number[] = []
  await until(() => (left = zombieChildren()).length === 0, ms, 20)
  return left
}

/** Waits until this process has no live child left; returns those still there after `ms`. */
export async function noLiveChildren(ms = 15_000): Promise<number[]> {
  let left: number[] = []
  await until(() => (left = liveChildren()).length === 0, ms, 20)
  return left
}

/**
 * Waits until `recorder` has been given every exit the engine recorded so far: a sentinel child
 * exits, and a subscriber gets exits in the order they were recorded, so once it has the
 * sentinel's, it has every earlier one (a duplicate, a false exit of a stopped child). Resolves
 * false if the sentinel's exit did not arrive within `ms`.
 */
export async function delivered(recorder: { readonly exits: readonly Exit[] }, ms = 30_000): Promise<boolean> {
  const sentinel = monitor.start('true', [], { stdio: 'ignore' })
  const id = idOf(sentinel)
  // Its 'exit' too: libuv has reaped it then (the engine announces it before that).
  await Promise.all([monitor.wait(sentinel), once(sentinel, 'exit')])
  return until(() => recorder.exits.some((e) => isExitOf(e, id)), ms, 5)
}
