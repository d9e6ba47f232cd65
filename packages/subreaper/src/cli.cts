// The subreaper command: runs a command as its init, forwards signals, reaps every orphan,
// cleans up what the command left behind, and reports every process that exited under it.
import { writeFileSync } from 'node:fs'
import { constants } from 'node:os'

import { isInit, monitor, setSubreaper } from './index.cjs'
import type { Exit } from './exit.cjs'
import { native } from './native.cjs'

const VERSION: string = (require('../package.json') as { version: string }).version

const FORWARDED = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT'] as const

const USAGE = `Usage: subreaper [options] [--] command [args...]

Runs command as a child, as its init: reaps every orphan adopted while it runs, forwards
signals to it, terminates what it left behind, and exits with its status (code, or 128 + signal).

Options:
  -g, --group             forward signals to the command's whole process group
                          (the command then leads a process group of its own)
      --grace DURATION    time leftovers get between SIGTERM and SIGKILL (default 5s;
                          e.g. 500ms, 2s, 1m; a bare number is seconds)
  -w, --wait-leftovers    wait for leftover processes to exit instead of terminating them
      --report[=FORMAT]   print every process that exited under subreaper to stderr at the
                          end: FORMAT is table (default) or json
      --report-file PATH  write the report as JSON to PATH
  -h, --help              show this help
  -V, --version           show the version

Exit status: the command's status; 127 if it was not found, 126 if it could not be run,
2 for a usage error.`

class UsageError extends Error {}

interface Options {
  group: boolean
  graceMs: number
  waitLeftovers: boolean
  report: 'table' | 'json' | null
  reportFile: string | null
  command: string
  args: string[]
}

export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim())
  if (!m) throw new UsageError(`bad duration ${JSON.stringify(text)}: use a number with ms, s or m (e.g. 500ms, 5s, 1m)`)
  const value = Number(m[1])
  const ms = m[2] === 'ms' ? value : m[2] === 'm' ? value * 60_000 : value * 1000
  if (!Number.isFinite(ms) || ms > 2 ** 31 - 1) throw new UsageError(`duration ${JSON.stringify(text)} is too long`)
  return Math.round(ms)
}

export function parseArgs(argv: string[]): Options | 'help' | 'version' {
  const opts: Omit<Options, 'command' | 'args'> = {
    group: false,
    graceMs: 5000,
    waitLeftovers: false,
    report: null,
    reportFile: null,
  }
  let i = 0
  const value = (name: string, inline: string | undefined): string => {
    if (inline !== undefined) return inline
    const next = argv[++i]
    if (next === undefined) throw new UsageError(`${name} needs a value`)
    return next
  }
  for (; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') {
      i++
      break
    }
    if (!arg.startsWith('-') || arg === '-') break
    const eq = arg.indexOf('=')
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined
    switch (name) {
      case '-h':
      case '--help':
        return 'help'
      case '-V':
      case '--version':
        return 'version'
      case '-g':
      case '--group':
        opts.group = true
        break
      case '-w':
      case '--wait-leftovers':
        opts.waitLeftovers = true
        break
      case '--grace':
        opts.graceMs = parseDuration(value('--grace', inline))
        break
      case '--report': {
        const format = inline ?? 'table'
        if (format !== 'table' && format !== 'json') {
          throw new UsageError(`unknown report format ${JSON.stringify(format)}: use --report, --report=table or --report=json`)
        }
        opts.report = format
        break
      }
      case '--report-file':
        opts.reportFile = value('--report-file', inline)
        break
      default:
        throw new UsageError(`unknown option ${arg}`)
    }
  }
  const command = argv[i]
  if (command === undefined || command === '') throw new UsageError('no command given')
  return { ...opts, command, args: argv.slice(i + 1) }
}

/** One process of the report (`--report=json`, `--report-file`). */
export interface ProcessReport {
  pid: number
  comm: string | null
  main: boolean
  leftover: boolean
  /** What subreaper did to it after the command exited. */
  action: 'terminated' | 'killed' | null
  status: number
  code: number | null
  signal: string | null
  coreDumped: boolean
  userCPUTimeUs: number
  systemCPUTimeUs: number
  maxRSSKiB: number | null
  startTime: number | null
  exitTime: number
  lifetimeMs: number | null
}

const signo = (name: string): number => (constants.signals as Record<string, number>)[name]!

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

function fail(message: string, code: number): never {
  process.stderr.write(`subreaper: ${message}\n`)
  process.exit(code)
}

async function run(opts: Options): Promise<number> {
  const me = process.pid
  if (!isInit()) {
    try {
      setSubreaper(true)
    } catch (err) {
      process.stderr.write(`subreaper: warning: orphans will not be adopted: ${(err as Error).message}\n`)
    }
  }

  const exits = new Map<number, Exit[]>()
  const order: Exit[] = []
  const sub = monitor.subscribe(
    (e) => {
      order.push(e)
      const list = exits.get(e.pid) ?? []
      list.push(e)
      exits.set(e.pid, list)
    },
    { bufferSize: 4096, lagTimeout: 60_000 },
  )
  // Every exit the engine records from now on is offered to `sub` (the count closes the report).
  const recordedBefore = native.stats().exitsRecorded

  let pid: number
  try {
    pid = native.spawnCommand(opts.command, opts.args, opts.group)
  } catch (err) {
    sub.unsubscribe()
    const message = (err as Error).message
    const errno = message.split(':', 1)[0]
    if (errno === 'ENOENT' || errno === 'ENOTDIR') fail(`${opts.command}: command not found`, 127)
    // The addon's message is "ERRNO: cannot run FILE: reason": keep the reason only.
    const prefix = `${errno}: cannot run ${opts.command}: `
    fail(`${opts.command}: cannot run: ${message.startsWith(prefix) ? message.slice(prefix.length) : message}`, 126)
  }
  const mainStart = native.processStartTime(pid)

  let mainExited = false
  const actions = new Map<number, 'terminated' | 'killed'>()
  const sentTerm = new Set<number>()
  let escalate: (() => void) | null = null
  for (const sig of FORWARDED) {
    process.on(sig, () => {
      if (!mainExited) {
        try {
          if (opts.group) native.signalGroup(pid, signo(sig))
          else if (mainStart !== null && mainStart !== undefined) native.signalProcess(pid, mainStart, signo(sig))
        } catch {
          // The child is gone: nothing to forward to.
        }
      } else if (sig === 'SIGTERM' || sig === 'SIGINT' || sig === 'SIGQUIT') {
        // Asked to stop while leftovers are being cleaned up: stop waiting and kill them.
        escalate?.()
      }
    })
  }

  const mainExit = await monitor.wait(pid)
  mainExited = true

  // What the command left behind: every process still below us.
  const leftovers = native.descendants(me).filter((p) => !p.zombie)
  const leftoverPids = new Set(leftovers.map((p) => p.pid))
  const alive = () => native.descendants(me).filter((p) => !p.zombie)

  if (leftovers.length > 0) {
    let targets = leftovers
    if (opts.waitLeftovers) {
      // Asked to stop while waiting (TERM, INT, QUIT): terminate what is left, as without -w.
      let stop = false
      escalate = () => {
        stop = true
      }
      while (!stop && alive().length > 0) await sleep(25)
      targets = stop ? alive() : []
    }
    if (targets.length > 0) {
      let killNow = false
      escalate = () => {
        killNow = true
      }
      for (const p of targets) {
        leftoverPids.add(p.pid)
        if (native.signalProcess(p.pid, p.startTime, signo('SIGTERM'))) {
          actions.set(p.pid, 'terminated')
          sentTerm.add(p.pid)
        }
      }
      const deadline = Date.now() + opts.graceMs
      while (!killNow && Date.now() < deadline && alive().length > 0) await sleep(20)
      // Kill until nothing is left: killed processes' children are adopted here in turn.
      for (let rest = alive(); rest.length > 0; rest = alive()) {
        for (const p of rest) {
          leftoverPids.add(p.pid)
          if (native.signalProcess(p.pid, p.startTime, signo('SIGKILL'))) actions.set(p.pid, 'killed')
        }
        await sleep(20)
      }
    }
  }

  // Let the reaper take and broadcast the last zombies.
  const settleUntil = Date.now() + 2000
  while (Date.now() < settleUntil && native.descendants(me).length > 0) await sleep(10)
  await monitor.reap()
  // The engine hands exits to subscribers on its broadcast thread, which on a busy machine may
  // run well after the exit was recorded: unsubscribing after a fixed short sleep could leave
  // the last exits (typically the leftovers') out of the report. Wait until every exit recorded
  // has been delivered (bounded, in case some subscriber lagged).
  const deliveredBy = Date.now() + 5000
  while (order.length < native.stats().exitsRecorded - recordedBefore && Date.now() < deliveredBy) await sleep(10)
  sub.unsubscribe()

  // A leftover still running when the grace period ends gets SIGKILL, but on a busy machine it
  // may only not have been scheduled yet to die of the SIGTERM it got (the kernel decides a fatal
  // signal's outcome when it is sent): it then ends with SIGTERM, and it was terminated, not killed.
  const actionOf = (e: Exit): 'terminated' | 'killed' | null => {
    const action = actions.get(e.pid) ?? null
    return action === 'killed' && e.signal !== 'SIGKILL' && sentTerm.has(e.pid) ? 'terminated' : action
  }

  if (opts.report || opts.reportFile) {
    const row = (e: Exit, isMainRow: boolean): ProcessReport => {
      const start = e.startTime ?? null
      return {
        pid: e.pid,
        comm: e.comm ?? null,
        main: isMainRow,
        leftover: !isMainRow && leftoverPids.has(e.pid),
        action: isMainRow ? null : actionOf(e),
        status: e.status,
        code: e.code,
        signal: e.signal,
        coreDumped: e.coreDumped,
        userCPUTimeUs: e.rusage.userCPUTime,
        systemCPUTimeUs: e.rusage.systemCPUTime,
        maxRSSKiB: e.rusage.maxRSS,
        startTime: start,
        exitTime: e.timestamp,
        lifetimeMs: start === null ? null : Math.max(0, e.timestamp - start),
      }
    }
    const isMain = (e: Exit) => e === mainExit || (e.pid === pid && e.timestamp === mainExit.timestamp)
    const processes = order.map((e) => row(e, isMain(e)))
    // The main exit always reaches subscribers too, but the report must not depend on it.
    if (!processes.some((p) => p.main)) processes.unshift(row(mainExit, true))
    const summary = {
      exited: processes.length,
      leftovers: processes.filter((p) => p.leftover).length,
      terminated: processes.filter((p) => p.action === 'terminated').length,
      killed: processes.filter((p) => p.action === 'killed').length,
    }
    const report = {
      command: [opts.command, ...opts.args],
      pid,
      status: mainExit.status,
      code: mainExit.code,
      signal: mainExit.signal,
      pid1: isInit(),
      processes,
      summary,
    }
    if (opts.reportFile) {
      try {
        writeFileSync(opts.reportFile, JSON.stringify(report, null, 2) + '\n')
      } catch (err) {
        // The command ran: its status still decides the exit code.
        process.stderr.write(`subreaper: cannot write the report to ${opts.reportFile}: ${(err as Error).message}\n`)
      }
    }
    if (opts.report === 'json') process.stderr.write(JSON.stringify(report, null, 2) + '\n')
    if (opts.report === 'table') process.stderr.write(formatTable(report.command, mainExit, processes, summary))
  }
  return mainExit.status
}

function formatStatus(p: { code: number | null; signal: string | null; coreDumped: boolean }): string {
  if (p.signal) return p.signal + (p.coreDumped ? ' (core)' : '')
  return `exit ${p.code}`
}

function formatMs(ms: number | null): string {
  if (ms === null) return '-'
  if (ms < 1000) return `${ms.toFixed(0)}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`
  return `${(ms / 60_000).toFixed(1)}m`
}

function formatTable(
  command: string[],
  mainExit: Exit,
  processes: ProcessReport[],
  summary: { exited: number; leftovers: number; terminated: number; killed: number },
): string {
  const header = ['PID', 'COMMAND', 'STATUS', 'CPU', 'MAX RSS', 'LIFETIME', 'NOTE']
  const rows = processes.map((p) => [
    String(p.pid),
    p.comm ?? '?',
    formatStatus(p),
    formatMs((p.userCPUTimeUs + p.systemCPUTimeUs) / 1000),
    p.maxRSSKiB === null ? '-' : p.maxRSSKiB >= 10240 ? `${(p.maxRSSKiB / 1024).toFixed(1)}M` : `${p.maxRSSKiB}K`,
    formatMs(p.lifetimeMs),
    p.main ? 'main' : p.leftover ? `leftover${p.action ? `, ${p.action}` : ''}` : '',
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()
  const out = [line(header), ...rows.map(line)]
  const left =
    summary.leftovers === 0
      ? 'no leftovers'
      : `${summary.leftovers} leftover${summary.leftovers === 1 ? '' : 's'} (${summary.terminated} terminated, ${summary.killed} killed)`
  out.push(
    `subreaper: ${command.join(' ')} exited with ${formatStatus(mainExit)} (status ${mainExit.status}); ` +
      `${summary.exited} process${summary.exited === 1 ? '' : 'es'} exited under subreaper, ${left}`,
  )
  return out.join('\n') + '\n'
}

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs(process.argv.slice(2))
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`subreaper: ${err.message}\n\n${USAGE}\n`)
      process.exit(2)
    }
    throw err
  }
  if (parsed === 'help') {
    process.stdout.write(USAGE + '\n')
    return
  }
  if (parsed === 'version') {
    process.stdout.write(VERSION + '\n')
    return
  }
  const status = await run(parsed)
  process.exit(status)
}

if (require.main === module) {
  main().catch((err) => fail(err instanceof Error ? (err.stack ?? err.message) : String(err), 1))
}
