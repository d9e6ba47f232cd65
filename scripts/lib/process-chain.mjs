// What sits between this script and a command it starts through a launcher (npx, .bin, the
// native init): read from /proc while the command waits, for the install proofs.
import { spawn } from 'node:child_process'
import { readFileSync, readlinkSync } from 'node:fs'

/** Parent pid and executable of `pid`, from /proc. */
export function procInfo(pid) {
  const ppid = Number(/^PPid:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1])
  let exe = '?'
  try {
    exe = readlinkSync(`/proc/${pid}/exe`)
  } catch {
    // not ours to read
  }
  return { pid, ppid, exe }
}

/**
 * Runs `cmd args -- sh -c 'echo $PPID; read x'` and, while the command waits on its stdin,
 * walks /proc from the command's parent up to this process: the processes between, nearest
 * first, and the launcher's exit status.
 */
export function processChain(cmd, args, { cwd, env }) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args, '--', 'sh', '-c', 'echo "$PPID"; read x || :'], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] })
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000)
    let out = ''
    child.on('error', reject)
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d
      if (!out.includes('\n')) return
      const chain = []
      try {
        for (let p = Number(out.trim()); p > 1 && p !== process.pid && chain.length < 20;) {
          const info = procInfo(p)
          chain.push(info)
          p = info.ppid
        }
      } finally {
        child.stdin.end()
      }
      child.on('close', (status) => {
        clearTimeout(timer)
        resolve({ chain, status })
      })
    })
  })
}
