// 2. Exit-to-subscriber latency of the baselines outside Node, one round (the runner interleaves
// them with latency.ts's rounds):
//
//   node latency-native.ts c             a bare C subreaper blocking in wait4(-1): the helper's
//                                        `latency` mode (the floor)
//   node latency-native.ts containerd1   containerd's reaper v1.4.13, wired as its shim wires it:
//   node latency-native.ts containerd2   SIGCHLD -> Reap(), one goroutine reading a subscriber
//                                        channel (bench/containerd), v1.4.13 or v2.4.2
//
// Each starts COUNT children one at a time (`helper stamp FILE`, 3 ms apart) and reports, per
// child, the CLOCK_MONOTONIC time its subscriber received the exit; the latency is that minus the
// child's own stamp, as in latency.ts.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { containerdPath, helperPath, intEnv, readStamps, report } from './lib.ts'

const mode = process.argv[2]
if (mode !== 'c' && mode !== 'containerd1' && mode !== 'containerd2') throw new Error('usage: latency-native.ts c|containerd1|containerd2')
const COUNT = intEnv('SUBREAPER_BENCH_LATENCY_N', 300)
const GAP_MS = 3
const helper = helperPath()
const dir = mkdtempSync(join(tmpdir(), 'subreaper-bench-'))
const stampFile = join(dir, 'stamps')

let received: [number, number][]
if (mode === 'c') {
  const out = execFileSync(helper, ['latency', String(COUNT), stampFile, String(GAP_MS * 1000)], { encoding: 'utf8' })
  received = out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(' ').map(Number) as [number, number])
} else {
  const program = containerdPath()
  if (!program) throw new Error('containerd baseline not built')
  const version = mode === 'containerd1' ? '1' : '2'
  const out = execFileSync(program, ['latency', version, String(COUNT), helper, stampFile, String(GAP_MS)], { encoding: 'utf8' })
  received = (JSON.parse(out) as { received: [number, number][] }).received
}
const stamps = readStamps(stampFile)
const samples: number[] = []
for (const [pid, ns] of received) {
  const stamp = stamps.get(pid)
  if (stamp) samples.push(ns / 1000 - stamp.mono)
}
rmSync(dir, { recursive: true, force: true })
report({ mode, samples, children: received.length })
